//! The shape of a v1 job document, used to canonicalise a user's keys before serde sees them.
//!
//! Go's `encoding/json` matches struct fields case-insensitively and drops unknown keys. Shoal
//! matches the same way but reports an unknown key with its path and the closest known name, so
//! that a typo (`Constraits`) never silently drops a setting. Free-form maps (`Meta`, `Labels`,
//! `Env`, `Params`) keep their keys exactly as written.

use serde_json::{Map, Value};

use super::FieldError;
use crate::job::{JobType, NetworkType};
use crate::rollout::Amount;
use crate::time::parse_duration;

/// What a value at some place in the document must look like.
pub(crate) enum Shape {
    /// A struct with known fields.
    Struct(&'static [Field]),
    /// A list of one shape.
    List(&'static Shape),
    /// Text; numbers and booleans are turned into their text, as YAML users expect.
    Text,
    /// A whole number within a range; numeric strings are accepted.
    Int { min: i128, max: i128 },
    /// A resource amount: text, or a number that becomes text (`CPU: 6`).
    Quantity,
    /// A job type name, matched case-insensitively and stored lower-case.
    JobType,
    /// A network type name, matched case-insensitively and stored as Shoal spells it.
    NetworkType,
    /// A map of text to text whose keys are kept as written (`Meta`, `Labels`, `Env`).
    TextMap,
    /// Any mapping, kept as written (`Params`).
    AnyMap,
    /// A number of nodes or a percentage (`5`, `"25%"`), stored as an integer or `"N%"`.
    Amount,
    /// A Go duration (`30s`, `5m`; a bare number is seconds), kept as written.
    Duration,
    /// One of a few lower-case names, matched ignoring case (and `-` for `_`).
    Choice(&'static [&'static str]),
    /// `true` or `false`; the strings `"true"` and `"false"` are accepted too.
    Bool,
    /// Accepted and dropped: fields the server owns (`ID`, `State`, ...).
    Ignored,
}

/// One field of a struct shape.
pub(crate) struct Field {
    /// Canonical (PascalCase) key.
    pub name: &'static str,
    /// Shape of its value.
    pub shape: &'static Shape,
    /// `Some(hint)` when the field must be present; the hint says what to write.
    pub required: Option<&'static str>,
}

const fn opt(name: &'static str, shape: &'static Shape) -> Field {
    Field {
        name,
        shape,
        required: None,
    }
}

const fn req(name: &'static str, shape: &'static Shape, hint: &'static str) -> Field {
    Field {
        name,
        shape,
        required: Some(hint),
    }
}

const TEXT: Shape = Shape::Text;
const TEXTS: Shape = Shape::List(&TEXT);
const U64: Shape = Shape::Int {
    min: 0,
    max: u64::MAX as i128,
};
const U32: Shape = Shape::Int {
    min: 0,
    max: u32::MAX as i128,
};
const U16: Shape = Shape::Int {
    min: 0,
    max: u16::MAX as i128,
};
const I64: Shape = Shape::Int {
    min: i64::MIN as i128,
    max: i64::MAX as i128,
};

pub(crate) const SPEC_CONFIG: Shape =
    Shape::Struct(&[opt("Type", &TEXT), opt("Params", &Shape::AnyMap)]);

pub(crate) const INPUT_SOURCE: Shape = Shape::Struct(&[
    req(
        "Source",
        &SPEC_CONFIG,
        "say where the data comes from, e.g. Source: {Type: urlDownload, Params: {URL: ...}}",
    ),
    opt("Alias", &TEXT),
    opt("Target", &TEXT),
]);

const RESULT_PATH: Shape = Shape::Struct(&[
    req("Name", &TEXT, "name the result folder, e.g. Name: outputs"),
    req(
        "Path",
        &TEXT,
        "give the absolute path inside the task, e.g. Path: /outputs",
    ),
]);

const RESOURCES: Shape = Shape::Struct(&[
    opt("CPU", &Shape::Quantity),
    opt("Memory", &Shape::Quantity),
    opt("Disk", &Shape::Quantity),
    opt("GPU", &Shape::Quantity),
]);

const PORT: Shape = Shape::Struct(&[
    req("Name", &TEXT, "name the port, e.g. Name: http"),
    opt("Static", &U16),
    opt("Target", &U16),
    opt("HostNetwork", &TEXT),
]);

const NETWORK: Shape = Shape::Struct(&[
    opt("Type", &Shape::NetworkType),
    opt("Domains", &TEXTS),
    opt("Ports", &Shape::List(&PORT)),
]);

const TIMEOUTS: Shape = Shape::Struct(&[
    opt("ExecutionTimeout", &U64),
    opt("QueueTimeout", &U64),
    opt("TotalTimeout", &U64),
]);

const TASK: Shape = Shape::Struct(&[
    opt("Name", &TEXT),
    req(
        "Engine",
        &SPEC_CONFIG,
        "say what runs the task, e.g. Engine: {Type: docker, Params: {Image: ubuntu}}",
    ),
    opt("Publisher", &SPEC_CONFIG),
    opt("Env", &Shape::TextMap),
    opt("Meta", &Shape::TextMap),
    opt("InputSources", &Shape::List(&INPUT_SOURCE)),
    opt("ResultPaths", &Shape::List(&RESULT_PATH)),
    opt("Resources", &RESOURCES),
    opt("Network", &NETWORK),
    opt("Timeouts", &TIMEOUTS),
]);

const CONSTRAINT: Shape = Shape::Struct(&[
    req("Key", &TEXT, "name the node label, e.g. Key: region"),
    req(
        "Operator",
        &TEXT,
        "give an operator: in, notin, exists, !, =, ==, !=, gt or lt",
    ),
    opt("Values", &TEXTS),
]);

/// The wire names of the rollout enums (`crate::rollout`), in the order error messages list
/// them; a test checks that each one reads into its enum.
pub(crate) const ROLLOUT_MODES: &[&str] = &["waves", "window"];
pub(crate) const UNREACHABLE_POLICIES: &[&str] = &["skip", "count_as_failure"];
pub(crate) const ON_FAILURE: &[&str] = &["stop", "revert"];
pub(crate) const HEALTH_TYPES: &[&str] = &["exit_code", "command", "http"];

const HEALTH: Shape = Shape::Struct(&[
    opt("Type", &Shape::Choice(HEALTH_TYPES)),
    opt("Command", &TEXT),
    opt("MinHealthy", &Shape::Duration),
    opt("Deadline", &Shape::Duration),
]);

const ROLLOUT: Shape = Shape::Struct(&[
    opt("Batch", &Shape::Amount),
    opt("Mode", &Shape::Choice(ROLLOUT_MODES)),
    opt("Canary", &Shape::Amount),
    opt("AutoPromote", &Shape::Bool),
    opt("Pause", &Shape::Duration),
    opt("MaxFailures", &Shape::Amount),
    opt("Unreachable", &Shape::Choice(UNREACHABLE_POLICIES)),
    opt("OnFailure", &Shape::Choice(ON_FAILURE)),
    opt("Health", &HEALTH),
]);

/// The wire names of the schedule enums (`crate::schedule`); `forbid` is Kubernetes' name for
/// `skip`.
pub(crate) const OVERLAPS: &[&str] = &["skip", "allow", "replace", "forbid"];
pub(crate) const CATCH_UPS: &[&str] = &["none", "last", "all"];

const SCHEDULE: Shape = Shape::Struct(&[
    req(
        "Cron",
        &TEXT,
        "give the cron pattern, e.g. Cron: \"*/5 * * * *\" (or 6 fields with seconds first)",
    ),
    opt("TimeZone", &TEXT),
    opt("Overlap", &Shape::Choice(OVERLAPS)),
    opt("ConcurrencyPolicy", &Shape::Choice(OVERLAPS)),
    opt("StartingDeadline", &Shape::Duration),
    opt("CatchUp", &Shape::Choice(CATCH_UPS)),
    opt("MaxCatchUp", &U32),
    opt("Suspend", &Shape::Bool),
]);

pub(crate) const JOB: Shape = Shape::Struct(&[
    opt("ID", &Shape::Ignored),
    opt("Name", &TEXT),
    opt("Namespace", &TEXT),
    opt("Type", &Shape::JobType),
    opt("Priority", &I64),
    opt("Count", &U32),
    opt("Constraints", &Shape::List(&CONSTRAINT)),
    opt("Meta", &Shape::TextMap),
    opt("Labels", &Shape::TextMap),
    opt("Tasks", &Shape::List(&TASK)),
    opt("Rollout", &ROLLOUT),
    opt("Schedule", &SCHEDULE),
    opt("State", &Shape::Ignored),
    opt("Version", &Shape::Ignored),
    opt("Revision", &Shape::Ignored),
    opt("CreateTime", &Shape::Ignored),
    opt("ModifyTime", &Shape::Ignored),
]);

/// Where each struct's fields live, for suggestions that point to another level
/// (`Constraits` written inside a task belongs to the job).
const PLACES: [(&str, &Shape); 12] = [
    ("at the top level of the job", &JOB),
    ("in a task", &TASK),
    ("in Engine, Publisher or Source", &SPEC_CONFIG),
    ("in an input source", &INPUT_SOURCE),
    ("in a result path", &RESULT_PATH),
    ("in Resources", &RESOURCES),
    ("in Network", &NETWORK),
    ("in Timeouts", &TIMEOUTS),
    ("in a constraint", &CONSTRAINT),
    ("in Rollout", &ROLLOUT),
    ("in Rollout.Health", &HEALTH),
    ("in Schedule", &SCHEDULE),
];

/// Reads Kubernetes' `ConcurrencyPolicy` in a `Schedule` as Shoal's `Overlap`, refusing both
/// at once.
pub(crate) fn schedule_aliases(job: &mut Map<String, Value>, errs: &mut Vec<FieldError>) {
    let Some(Value::Object(schedule)) = job.get_mut("Schedule") else {
        return;
    };
    let Some(policy) = schedule.remove("ConcurrencyPolicy") else {
        return;
    };
    if schedule.contains_key("Overlap") {
        errs.push(FieldError::new(
            "Schedule.ConcurrencyPolicy",
            "given together with Overlap, which it is another name for; keep one",
        ));
    } else {
        schedule.insert("Overlap".into(), policy);
    }
}

/// Rewrites `value` to `shape`'s canonical form, collecting every problem found on the way.
///
/// Nulls in struct fields count as absent (Go leaves the zero value), so `Entrypoint: null`
/// style fields never trip the type checks.
pub(crate) fn normalise(
    value: Value,
    shape: &Shape,
    path: &str,
    errs: &mut Vec<FieldError>,
) -> Value {
    match shape {
        Shape::Struct(fields) => normalise_struct(value, fields, path, errs),
        Shape::List(item) => match value {
            Value::Array(items) => Value::Array(
                items
                    .into_iter()
                    .enumerate()
                    .map(|(i, v)| normalise(v, item, &format!("{path}[{i}]"), errs))
                    .collect(),
            ),
            other => type_error(path, "a list", &other, errs),
        },
        Shape::Text => match value {
            Value::String(_) => value,
            Value::Number(n) => Value::String(n.to_string()),
            Value::Bool(b) => Value::String(b.to_string()),
            other => type_error(path, "text", &other, errs),
        },
        Shape::Quantity => match value {
            Value::String(_) => value,
            Value::Number(n) => Value::String(n.to_string()),
            other => type_error(path, "an amount such as 500m, 2 or 1Gb", &other, errs),
        },
        Shape::Int { min, max } => normalise_int(value, *min, *max, path, errs),
        Shape::JobType => match &value {
            Value::String(s) => match JobType::parse(s.trim()) {
                Some(t) => Value::String(t.as_str().to_string()),
                None => {
                    errs.push(FieldError::new(
                        path,
                        format!("invalid job type {s:?} ({})", JOB_TYPES_HINT),
                    ));
                    value
                }
            },
            other => type_error(path, "a job type name", other, errs),
        },
        Shape::NetworkType => match &value {
            Value::String(s) => match NetworkType::parse(s.trim()) {
                Some(t) => serde_json::to_value(t).unwrap_or(value),
                None => {
                    errs.push(FieldError::new(
                        path,
                        format!("unknown network type {s:?} (known: None, Host, Full, HTTP, Bridge, Default)"),
                    ));
                    value
                }
            },
            other => type_error(path, "a network type name", other, errs),
        },
        Shape::TextMap => match value {
            Value::Object(map) => Value::Object(
                map.into_iter()
                    .map(|(k, v)| {
                        let p = format!("{path}.{k}");
                        let v = match v {
                            Value::Null => Value::String(String::new()),
                            v => normalise(v, &TEXT, &p, errs),
                        };
                        (k, v)
                    })
                    .collect(),
            ),
            other => type_error(path, "a mapping of names to text", &other, errs),
        },
        Shape::AnyMap => match value {
            Value::Object(_) => value,
            other => type_error(path, "a mapping", &other, errs),
        },
        Shape::Amount => normalise_amount(value, path, errs),
        Shape::Duration => match value {
            Value::String(ref s) => match parse_duration(s) {
                Ok(_) => Value::String(s.trim().to_string()),
                Err(why) => {
                    errs.push(FieldError::new(path, why));
                    value
                }
            },
            Value::Number(ref n) if n.as_u64().is_some() => value,
            other => type_error(path, "a duration such as 30s, 5m or 1h30m", &other, errs),
        },
        Shape::Choice(options) => match &value {
            Value::String(s) => {
                let wanted = s.trim().replace('-', "_");
                match options.iter().find(|o| o.eq_ignore_ascii_case(&wanted)) {
                    Some(o) => Value::String((*o).to_string()),
                    None => {
                        errs.push(FieldError::new(
                            path,
                            format!("unknown value {s:?} (one of {})", options.join(", ")),
                        ));
                        value
                    }
                }
            }
            other => type_error(path, &format!("one of {}", options.join(", ")), other, errs),
        },
        Shape::Bool => match &value {
            Value::Bool(_) => value,
            Value::String(s) if s.trim().eq_ignore_ascii_case("true") => Value::Bool(true),
            Value::String(s) if s.trim().eq_ignore_ascii_case("false") => Value::Bool(false),
            other => type_error(path, "true or false", other, errs),
        },
        Shape::Ignored => Value::Null,
    }
}

/// An amount of nodes in its canonical form: an integer, or a `"N%"` string.
fn normalise_amount(value: Value, path: &str, errs: &mut Vec<FieldError>) -> Value {
    let parsed = match &value {
        Value::Number(n) => match n.as_u64().and_then(|c| u32::try_from(c).ok()) {
            Some(c) => Ok(Amount::Count(c)),
            None if n.as_i64().is_some_and(|c| c < 0) => {
                return type_error(path, "a whole number ≥ 0", &value, errs);
            }
            None => {
                return type_error(
                    path,
                    "a whole number of nodes or a percentage such as 25%",
                    &value,
                    errs,
                );
            }
        },
        Value::String(s) => s.parse::<Amount>(),
        other => {
            return type_error(
                path,
                "a number of nodes or a percentage such as 25%",
                other,
                errs,
            );
        }
    };
    match parsed {
        Ok(amount) => serde_json::to_value(amount).unwrap_or(value),
        Err(why) => {
            errs.push(FieldError::new(path, why));
            value
        }
    }
}

/// The job types in the words error messages use.
pub(crate) const JOB_TYPES_HINT: &str = "one of batch, ops, daemon, service";

fn normalise_struct(
    value: Value,
    fields: &[Field],
    path: &str,
    errs: &mut Vec<FieldError>,
) -> Value {
    let map = match value {
        Value::Object(map) => map,
        other => return type_error(path, "a mapping", &other, errs),
    };
    let mut out = Map::new();
    let mut written: Vec<(&str, String)> = Vec::new();
    for (key, v) in map {
        let child = join(path, &key);
        let Some(field) = fields
            .iter()
            .find(|f| f.name.eq_ignore_ascii_case(key.trim()))
        else {
            errs.push(FieldError::new(&child, unknown_field_message(&key, fields)));
            continue;
        };
        if let Some((_, first)) = written.iter().find(|(name, _)| *name == field.name) {
            errs.push(FieldError::new(
                &join(path, field.name),
                format!("given twice (as {first} and {key}); keep one"),
            ));
            continue;
        }
        written.push((field.name, key.clone()));
        if v.is_null() || matches!(field.shape, Shape::Ignored) {
            continue;
        }
        let v = normalise(v, field.shape, &join(path, field.name), errs);
        out.insert(field.name.to_string(), v);
    }
    for field in fields {
        if let Some(hint) = field.required
            && !out.contains_key(field.name)
        {
            errs.push(FieldError::new(
                &join(path, field.name),
                format!("missing; {hint}"),
            ));
        }
    }
    Value::Object(out)
}

fn normalise_int(
    value: Value,
    min: i128,
    max: i128,
    path: &str,
    errs: &mut Vec<FieldError>,
) -> Value {
    let n: Option<i128> = match &value {
        Value::Number(n) => n
            .as_i64()
            .map(i128::from)
            .or_else(|| n.as_u64().map(i128::from)),
        Value::String(s) => s.trim().parse::<i128>().ok(),
        _ => None,
    };
    match n {
        Some(n) if (min..=max).contains(&n) => {
            if n < 0 {
                Value::from(n as i64)
            } else {
                Value::from(n as u64)
            }
        }
        Some(n) if n < 0 && min == 0 => type_error(path, "a whole number ≥ 0", &value, errs),
        Some(_) => type_error(
            path,
            &format!("an integer from {min} to {max}"),
            &value,
            errs,
        ),
        None => type_error(path, "an integer", &value, errs),
    }
}

fn type_error(path: &str, expected: &str, got: &Value, errs: &mut Vec<FieldError>) -> Value {
    errs.push(FieldError::new(
        path,
        format!("expected {expected}, got {}", describe(got)),
    ));
    Value::Null
}

/// A value in the words an error message uses.
pub(crate) fn describe(v: &Value) -> String {
    match v {
        Value::Null => "nothing".into(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => n.to_string(),
        Value::String(s) => format!("{s:?}"),
        Value::Array(_) => "a list".into(),
        Value::Object(_) => "a mapping".into(),
    }
}

fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_string()
    } else {
        format!("{path}.{key}")
    }
}

fn unknown_field_message(key: &str, fields: &[Field]) -> String {
    if let Some(near) = closest(key, fields.iter().map(|f| f.name)) {
        return format!("unknown field (did you mean {near}?)");
    }
    for (place, shape) in PLACES {
        let Shape::Struct(other) = shape else {
            continue;
        };
        if std::ptr::eq(*other, fields) {
            continue;
        }
        if let Some(near) = closest(key, other.iter().map(|f| f.name)) {
            return format!("unknown field (did you mean {near}? it belongs {place})");
        }
    }
    let known: Vec<&str> = fields.iter().map(|f| f.name).collect();
    format!("unknown field (known: {})", known.join(", "))
}

/// The candidate nearest to `key` by edit distance, ignoring case, if it is near enough to be
/// a typo rather than a different word.
fn closest<'a>(key: &str, candidates: impl Iterator<Item = &'a str>) -> Option<&'a str> {
    let key = key.trim().to_ascii_lowercase();
    let limit = (key.chars().count() / 3).clamp(1, 3);
    candidates
        .map(|c| (edit_distance(&key, &c.to_ascii_lowercase()), c))
        .filter(|(d, _)| *d <= limit)
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c)
}

fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1; b.len() + 1];
        for (j, cb) in b.iter().enumerate() {
            let sub = prev[j] + usize::from(ca != *cb);
            cur[j + 1] = sub.min(prev[j + 1] + 1).min(cur[j] + 1);
        }
        prev = cur;
    }
    prev[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(v: Value, shape: &Shape) -> (Value, Vec<String>) {
        let mut errs = Vec::new();
        let out = normalise(v, shape, "", &mut errs);
        (out, errs.iter().map(ToString::to_string).collect())
    }

    #[test]
    fn keys_are_matched_ignoring_case_and_rewritten_canonically() {
        let (out, errs) = run(
            serde_json::json!({"cpu": "1", "MEMORY": "1Gb", "gpu": 1}),
            &RESOURCES,
        );
        assert!(errs.is_empty(), "{errs:?}");
        assert_eq!(
            out,
            serde_json::json!({"CPU": "1", "Memory": "1Gb", "GPU": "1"})
        );
    }

    #[test]
    fn unknown_key_names_its_path_and_the_nearest_known_key() {
        let (_, errs) = run(
            serde_json::json!({"Coun": 1, "Tasks": [{"Engine": {"Typ": "docker"}}]}),
            &JOB,
        );
        assert_eq!(
            errs,
            [
                "Coun: unknown field (did you mean Count?)",
                "Tasks[0].Engine.Typ: unknown field (did you mean Type?)"
            ]
        );
    }

    #[test]
    fn a_key_from_another_level_is_pointed_to_its_place() {
        let (_, errs) = run(
            serde_json::json!({"Tasks": [{"Engine": {"Type": "docker"}, "Constraits": []}]}),
            &JOB,
        );
        assert_eq!(
            errs,
            [
                "Tasks[0].Constraits: unknown field (did you mean Constraints? it belongs at the top level of the job)"
            ]
        );
    }

    #[test]
    fn a_word_unlike_any_key_lists_the_known_keys() {
        let (_, errs) = run(serde_json::json!({"Zzzzzzzzzz": 1}), &TIMEOUTS);
        assert_eq!(
            errs,
            ["Zzzzzzzzzz: unknown field (known: ExecutionTimeout, QueueTimeout, TotalTimeout)"]
        );
    }

    #[test]
    fn free_form_maps_keep_their_keys_as_written() {
        let v = serde_json::json!({"Engine": {"type": "docker", "params": {"image": "x"}}, "env": {"lower": "1"}});
        let (out, errs) = run(v, &TASK);
        assert!(errs.is_empty(), "{errs:?}");
        assert_eq!(out["Engine"]["Params"], serde_json::json!({"image": "x"}));
        assert_eq!(out["Env"], serde_json::json!({"lower": "1"}));
    }

    #[test]
    fn wrong_value_types_are_reported_with_their_path() {
        let (_, errs) = run(
            serde_json::json!({"Count": "two", "Tasks": {"Name": "x"}}),
            &JOB,
        );
        assert_eq!(
            errs,
            [
                "Count: expected an integer, got \"two\"",
                "Tasks: expected a list, got a mapping"
            ]
        );
    }

    #[test]
    fn integers_are_range_checked() {
        let (_, errs) = run(serde_json::json!({"Name": "p", "Static": 70000}), &PORT);
        assert_eq!(
            errs,
            ["Static: expected an integer from 0 to 65535, got 70000"]
        );
        let (_, errs) = run(serde_json::json!({"Count": -1}), &JOB);
        assert_eq!(errs, ["Count: expected a whole number ≥ 0, got -1"]);
    }

    #[test]
    fn numeric_strings_count_as_integers() {
        let (out, errs) = run(serde_json::json!({"QueueTimeout": "30"}), &TIMEOUTS);
        assert!(errs.is_empty());
        assert_eq!(out, serde_json::json!({"QueueTimeout": 30}));
    }

    #[test]
    fn the_same_key_in_two_spellings_is_an_error() {
        let (_, errs) = run(serde_json::json!({"Name": "a", "name": "b"}), &RESULT_PATH);
        assert_eq!(errs.len(), 2, "{errs:?}");
        assert!(errs[0].starts_with("Name: given twice"), "{errs:?}");
        assert_eq!(
            errs[1],
            "Path: missing; give the absolute path inside the task, e.g. Path: /outputs"
        );
    }

    #[test]
    fn network_and_job_type_names_are_canonicalised() {
        let (out, errs) = run(serde_json::json!({"type": "bridge"}), &NETWORK);
        assert!(errs.is_empty());
        assert_eq!(out, serde_json::json!({"Type": "Bridge"}));
        let (out, _) = run(serde_json::json!({"type": "Batch"}), &JOB);
        assert_eq!(out["Type"], "batch");
        let (_, errs) = run(serde_json::json!({"Type": "cron"}), &JOB);
        assert_eq!(
            errs,
            ["Type: invalid job type \"cron\" (one of batch, ops, daemon, service)"]
        );
    }

    #[test]
    fn system_keys_are_accepted_and_dropped() {
        let (out, errs) = run(
            serde_json::json!({"id": "j-1", "State": {"StateType": "Running"}, "Version": 3}),
            &JOB,
        );
        assert!(errs.is_empty(), "{errs:?}");
        assert_eq!(out, serde_json::json!({}));
    }
}
