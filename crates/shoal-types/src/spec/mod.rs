//! Reading and validating job specs written by people (YAML or JSON).
//!
//! The pipeline, each step a function of its own so that servers can enter it where their input
//! already is:
//!
//! ```text
//! text ──read_job──▶ Job ──apply_defaults──▶ Job ──validate_for_submit / validate──▶ errors
//!        (syntax, keys, types, legacy shapes)
//! ```
//!
//! Bacalhau matches keys case-insensitively (Go's `encoding/json`), so `name:` and `Name:` both
//! work; Shoal does the same, and additionally rejects unknown keys with their path and the
//! nearest known key, so that a typo never silently drops a setting. Go templates
//! (`bacalhau job run -V key=value`) are rendered before this by [`crate::template`].

mod legacy;
mod schema;
mod validate;

use serde_json::Value;

use crate::job::{Job, JobStateType, JobType};

pub use legacy::LEGACY_ENTRY_TARGET;
pub use validate::{validate, validate_for_submit};

/// One problem with a spec, located by its path (`Tasks[0].Engine.Type`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldError {
    /// Path of the offending field; empty for the document as a whole.
    pub path: String,
    /// What is wrong and how to fix it.
    pub message: String,
}

impl FieldError {
    /// An error at `path`.
    pub fn new(path: &str, message: impl Into<String>) -> Self {
        FieldError {
            path: path.to_string(),
            message: message.into(),
        }
    }
}

impl std::fmt::Display for FieldError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.path.is_empty() {
            f.write_str(&self.message)
        } else {
            write!(f, "{}: {}", self.path, self.message)
        }
    }
}

/// Why a spec could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SpecError {
    /// The text is not valid YAML/JSON; the message starts with `line L, column C:`.
    #[error("{0}")]
    Syntax(String),
    /// The document has the wrong shape or invalid values; one entry per problem.
    #[error("{}", .0.iter().map(|e| e.to_string()).collect::<Vec<_>>().join("\n"))]
    Invalid(Vec<FieldError>),
}

/// Engine types this build knows of; used in error messages.
pub const KNOWN_ENGINES: &[&str] = &["wasm", "docker", "exec", "query", "noop"];

/// Input source types the job language accepts. `ipfs` parses, but nodes refuse it at
/// placement; `local` and `localDirectory` are the same source under its new and old name.
pub const KNOWN_INPUT_SOURCES: &[&str] = &[
    "urlDownload",
    "s3",
    "localDirectory",
    "local",
    "inline",
    "ipfs",
    "noop",
];

/// Publisher types the job language accepts; an empty type means no publisher.
pub const KNOWN_PUBLISHERS: &[&str] = &["local", "s3", "s3managed", "ipfs", "noop"];

/// Reads a job from YAML or JSON text, applies defaults and checks it as a server checks a
/// submission ([`validate_for_submit`]).
///
/// Engine names are not checked here, so that a job for an engine no node has reaches the
/// orchestrator and fails there with per-node reasons (`does not support flibble`), as in
/// Bacalhau. `shoal job validate` adds [`validate`] on the result.
pub fn parse_job(text: &str) -> Result<Job, SpecError> {
    finish_job(read_job(text)?)
}

/// [`parse_job`] for an already-parsed JSON value (a job built by the CLI from flags, or a
/// REST body): [`read_job_value`], then [`finish_job`].
pub fn parse_job_value(value: Value) -> Result<Job, SpecError> {
    finish_job(read_job_value(value)?)
}

/// The last two steps of every submission path, in their one order: [`apply_defaults`], then
/// [`validate_for_submit`]. A caller that must look at the job between reading and defaults
/// (the API fills in a scoped user's namespace) calls [`read_job_value`] and then this.
pub fn finish_job(mut job: Job) -> Result<Job, SpecError> {
    apply_defaults(&mut job);
    let errors = validate_for_submit(&job);
    if errors.is_empty() {
        Ok(job)
    } else {
        Err(SpecError::Invalid(errors))
    }
}

/// Reads a job from YAML or JSON text without defaults or validation: syntax, key names,
/// value types, the `Type` field and legacy shapes only.
pub fn read_job(text: &str) -> Result<Job, SpecError> {
    let value = read_document(text)?;
    read_job_value(value)
}

/// Reads a job from an already-parsed JSON value (a REST request body), with the same key and
/// type rules as [`read_job`].
///
/// The server-owned keys `ID`, `State`, `Version`, `Revision`, `CreateTime` and `ModifyTime`
/// are accepted and cleared, as Bacalhau's server ignores them on submit. `Count` defaults to
/// 1 for batch and service jobs when omitted, which the `Job` struct could not tell from 0.
pub fn read_job_value(value: Value) -> Result<Job, SpecError> {
    let top = match value {
        Value::Object(map) => map,
        Value::Null => {
            return Err(invalid(
                "",
                "the spec is empty; a job needs at least Type and Tasks",
            ));
        }
        other => {
            let got = schema::describe(&other);
            return Err(invalid(
                "",
                format!("expected a mapping of job fields at the top level, got {got}"),
            ));
        }
    };
    if let Some(err) = legacy::pre_v1(&top) {
        return Err(SpecError::Invalid(vec![err]));
    }
    let mut errs = Vec::new();
    let mut job = match schema::normalise(Value::Object(top), &schema::JOB, "", &mut errs) {
        Value::Object(map) => map,
        _ => serde_json::Map::new(),
    };
    schema::schedule_aliases(&mut job, &mut errs);
    let type_reported = errs.iter().any(|e| e.path == "Type");
    match job
        .get("Type")
        .and_then(Value::as_str)
        .and_then(JobType::parse)
    {
        Some(JobType::Batch | JobType::Service) => {
            job.entry("Count").or_insert(Value::from(1));
        }
        Some(_) => {}
        None if !type_reported => {
            errs.push(FieldError::new(
                "Type",
                format!("missing job type ({})", schema::JOB_TYPES_HINT),
            ));
        }
        None => {}
    }
    if let Some(Value::Array(tasks)) = job.get_mut("Tasks") {
        for (i, task) in tasks.iter_mut().enumerate() {
            if let Value::Object(task) = task {
                legacy::upgrade_wasm_task(task, &format!("Tasks[{i}]"), &mut errs);
            }
        }
    }
    if !errs.is_empty() {
        return Err(SpecError::Invalid(errs));
    }
    // The walk above guarantees the shape, so a failure here is a gap in the schema; report it
    // rather than panic.
    serde_json::from_value(Value::Object(job))
        .map_err(|e| invalid("", format!("cannot read the job: {e}")))
}

/// Fills in what Bacalhau fills in on submit: namespace, task name, the count of ops and
/// daemon jobs (0 = every matching node). A Count above 1 on those is left for validation to
/// reject rather than silently dropped.
pub fn apply_defaults(job: &mut Job) {
    if job.namespace.is_empty() {
        job.namespace = "default".into();
    }
    if matches!(job.job_type, JobType::Ops | JobType::Daemon) && job.count <= 1 {
        job.count = 0;
    }
    for task in &mut job.tasks {
        if task.name.is_empty() {
            task.name = "main".into();
        }
    }
    job.state.state_type = JobStateType::Undefined;
}

fn invalid(path: &str, message: impl Into<String>) -> SpecError {
    SpecError::Invalid(vec![FieldError::new(path, message)])
}

/// Parses YAML or JSON into a JSON value, with errors that give line and column.
fn read_document(text: &str) -> Result<Value, SpecError> {
    let hint = if crate::template::has_actions(text) {
        "; the file contains Go template actions ({{...}}): render it first by passing -V key=value for each variable"
    } else {
        ""
    };
    // JSON first when it looks like JSON: YAML is a superset, but libyaml rejects tab
    // indentation that JSON allows.
    if text.trim_start().starts_with('{')
        && let Ok(v) = serde_json::from_str::<Value>(text)
    {
        return Ok(v);
    }
    let mut doc: serde_yaml::Value = serde_yaml::from_str(text).map_err(|e| {
        let msg = e.to_string();
        match e.location() {
            Some(loc) => {
                let suffix = format!(" at line {} column {}", loc.line(), loc.column());
                let msg = msg.replacen(&suffix, "", 1);
                SpecError::Syntax(format!(
                    "line {}, column {}: {msg}{hint}",
                    loc.line(),
                    loc.column()
                ))
            }
            None => SpecError::Syntax(format!("{msg}{hint}")),
        }
    })?;
    doc.apply_merge()
        .map_err(|e| SpecError::Syntax(format!("cannot apply YAML merge keys: {e}")))?;
    // An unrendered `- {{.x}}` is valid YAML (a mapping with a mapping as its key), so the
    // template hint belongs here too.
    yaml_to_json(doc, "").map_err(|e| match e {
        SpecError::Invalid(mut errs) => {
            if let Some(last) = errs.last_mut() {
                last.message.push_str(hint);
            }
            SpecError::Invalid(errs)
        }
        other => other,
    })
}

fn yaml_to_json(v: serde_yaml::Value, path: &str) -> Result<Value, SpecError> {
    use serde_yaml::Value as Y;
    Ok(match v {
        Y::Null => Value::Null,
        Y::Bool(b) => Value::Bool(b),
        Y::Number(n) => {
            if let Some(i) = n.as_i64() {
                Value::from(i)
            } else if let Some(u) = n.as_u64() {
                Value::from(u)
            } else {
                let f = n.as_f64().unwrap_or(f64::NAN);
                serde_json::Number::from_f64(f)
                    .map(Value::Number)
                    .unwrap_or_else(|| Value::String(n.to_string()))
            }
        }
        Y::String(s) => Value::String(s),
        Y::Sequence(items) => Value::Array(
            items
                .into_iter()
                .enumerate()
                .map(|(i, v)| yaml_to_json(v, &format!("{path}[{i}]")))
                .collect::<Result<_, _>>()?,
        ),
        Y::Mapping(m) => {
            let mut out = serde_json::Map::new();
            for (k, v) in m {
                let key = match k {
                    Y::String(s) => s,
                    Y::Number(n) => n.to_string(),
                    Y::Bool(b) => b.to_string(),
                    Y::Null => "null".to_string(),
                    _ => {
                        return Err(invalid(
                            path,
                            "a mapping key must be text, not a list or a mapping",
                        ));
                    }
                };
                let child = if path.is_empty() {
                    key.clone()
                } else {
                    format!("{path}.{key}")
                };
                out.insert(key, yaml_to_json(v, &child)?);
            }
            Value::Object(out)
        }
        Y::Tagged(t) => yaml_to_json(t.value, path)?,
    })
}

#[cfg(test)]
mod tests;
