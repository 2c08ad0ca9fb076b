//! Older spec shapes that Bacalhau users still have on disk.
//!
//! Two kinds: pre-v1 specs (`APIVersion: V1beta1`, a `Spec` with `Engine: Docker`), which have a
//! different model altogether and are rejected with directions to the v1 shape; and the legacy
//! WASM parameters, where `EntryModule`/`ImportModules` are whole input sources rather than
//! paths, which Bacalhau's orchestrator still translates (`transformer/wasm_legacy.go`) and so
//! does Shoal.

use serde_json::{Map, Value};

use super::FieldError;
use super::schema::{self, INPUT_SOURCE};

/// Where an entry module given as an input source lands when it names no target (Bacalhau's).
pub const LEGACY_ENTRY_TARGET: &str = "/wasm/entry.wasm";

const PRE_V1_MESSAGE: &str = "this is a pre-v1 job spec (APIVersion V1beta1 with a Spec block); \
Shoal speaks the Bacalhau v1 job format: put Type, Count and Tasks at the top level, e.g. \
`Type: batch`, `Count: 1`, `Tasks: [{Name: main, Engine: {Type: docker, Params: {Image: ubuntu, \
Entrypoint: [...]}}}]`, with Spec.Deal.Concurrency becoming Count and Spec.inputs becoming \
Tasks[0].InputSources";

/// Recognises a pre-v1 document: `APIVersion` anywhere at the top, or a `Job`/`Spec` wrapper.
pub(crate) fn pre_v1(top: &Map<String, Value>) -> Option<FieldError> {
    let get = |m: &Map<String, Value>, k: &str| {
        m.iter()
            .find(|(key, _)| key.eq_ignore_ascii_case(k))
            .map(|(key, v)| (key.clone(), v.clone()))
    };
    if let Some((key, _)) = get(top, "APIVersion") {
        return Some(FieldError::new(&key, PRE_V1_MESSAGE.to_string()));
    }
    if let Some((key, Value::Object(inner))) = get(top, "Job") {
        for marker in ["APIVersion", "Spec"] {
            if let Some((k, _)) = get(&inner, marker) {
                return Some(FieldError::new(
                    &format!("{key}.{k}"),
                    PRE_V1_MESSAGE.to_string(),
                ));
            }
        }
    }
    if let Some((key, Value::Object(spec))) = get(top, "Spec")
        && (get(&spec, "Engine").is_some()
            || get(&spec, "Docker").is_some()
            || get(&spec, "Deal").is_some())
    {
        return Some(FieldError::new(&key, PRE_V1_MESSAGE.to_string()));
    }
    None
}

/// Rewrites a wasm task whose `EntryModule`/`ImportModules` are input sources into the v1
/// shape: each source is appended to `InputSources` and its target path replaces it.
///
/// `task` is an already-canonicalised task object; keys inside `Params` are matched ignoring
/// case, as the wasm executor reads them.
pub(crate) fn upgrade_wasm_task(
    task: &mut Map<String, Value>,
    path: &str,
    errs: &mut Vec<FieldError>,
) {
    let is_wasm = task
        .get("Engine")
        .and_then(|e| e.get("Type"))
        .and_then(Value::as_str)
        .is_some_and(|t| t.eq_ignore_ascii_case("wasm"));
    if !is_wasm {
        return;
    }
    let Some(Value::Object(params)) = task.get_mut("Engine").and_then(|e| e.get_mut("Params"))
    else {
        return;
    };
    let mut moved = Vec::new();
    if let Some(key) = find_key(params, "EntryModule")
        && params[&key].is_object()
    {
        let p = format!("{path}.Engine.Params.{key}");
        let source = params.remove(&key).unwrap_or_default();
        let (target, source) = as_input_source(source, LEGACY_ENTRY_TARGET, &p, errs);
        params.insert("EntryModule".into(), Value::String(target));
        moved.push(source);
    }
    if let Some(key) = find_key(params, "ImportModules")
        && let Some(Value::Array(list)) = params.get(&key)
        && list.iter().any(Value::is_object)
    {
        let list = match params.remove(&key) {
            Some(Value::Array(list)) => list,
            _ => Vec::new(),
        };
        let mut targets = Vec::new();
        for (i, item) in list.into_iter().enumerate() {
            if item.is_object() {
                let default = format!("/wasm/imports/module_{i}.wasm");
                let (target, source) = as_input_source(
                    item,
                    &default,
                    &format!("{path}.Engine.Params.{key}[{i}]"),
                    errs,
                );
                targets.push(Value::String(target));
                moved.push(source);
            } else {
                targets.push(item);
            }
        }
        params.insert("ImportModules".into(), Value::Array(targets));
    }
    if moved.is_empty() {
        return;
    }
    // A non-list InputSources was already reported by the schema walk.
    if let Value::Array(list) = task
        .entry("InputSources")
        .or_insert_with(|| Value::Array(Vec::new()))
    {
        list.extend(moved);
    }
}

fn find_key(map: &Map<String, Value>, name: &str) -> Option<String> {
    map.keys().find(|k| k.eq_ignore_ascii_case(name)).cloned()
}

fn as_input_source(
    value: Value,
    default_target: &str,
    path: &str,
    errs: &mut Vec<FieldError>,
) -> (String, Value) {
    let mut source = schema::normalise(value, &INPUT_SOURCE, path, errs);
    let target = source
        .get("Target")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string();
    let target = if target.is_empty() {
        default_target.to_string()
    } else {
        target
    };
    if let Value::Object(m) = &mut source {
        m.insert("Target".into(), Value::String(target.clone()));
    }
    (target, source)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn entry_module_given_as_a_source_becomes_an_input_and_a_path() {
        let mut task = json!({
            "Engine": {"Type": "wasm", "Params": {
                "EntryModule": {"Alias": "", "Source": {"Type": "inline", "Params": {"URL": "data:,x"}}, "Target": ""},
                "Entrypoint": "_start",
                "ImportModules": []
            }}
        });
        let mut errs = Vec::new();
        upgrade_wasm_task(task.as_object_mut().unwrap(), "Tasks[0]", &mut errs);
        assert!(errs.is_empty(), "{errs:?}");
        assert_eq!(task["Engine"]["Params"]["EntryModule"], LEGACY_ENTRY_TARGET);
        assert_eq!(task["Engine"]["Params"]["ImportModules"], json!([]));
        assert_eq!(
            task["InputSources"],
            json!([{"Alias": "", "Source": {"Type": "inline", "Params": {"URL": "data:,x"}}, "Target": LEGACY_ENTRY_TARGET}])
        );
    }

    #[test]
    fn import_modules_given_as_sources_get_numbered_targets() {
        let mut task = json!({
            "Engine": {"Type": "WASM", "Params": {
                "entryModule": "/app/main.wasm",
                "importModules": [{"source": {"type": "urlDownload", "params": {"URL": "http://x/a.wasm"}}}]
            }}
        });
        let mut errs = Vec::new();
        upgrade_wasm_task(task.as_object_mut().unwrap(), "Tasks[0]", &mut errs);
        assert!(errs.is_empty(), "{errs:?}");
        assert_eq!(task["Engine"]["Params"]["entryModule"], "/app/main.wasm");
        assert_eq!(
            task["Engine"]["Params"]["ImportModules"],
            json!(["/wasm/imports/module_0.wasm"])
        );
        assert_eq!(task["InputSources"][0]["Source"]["Type"], "urlDownload");
    }

    #[test]
    fn a_v1_wasm_task_is_left_alone() {
        let before = json!({"Engine": {"Type": "wasm", "Params": {"EntryModule": "wasm.main"}}});
        let mut task = before.clone();
        upgrade_wasm_task(task.as_object_mut().unwrap(), "Tasks[0]", &mut Vec::new());
        assert_eq!(task, before);
    }

    #[test]
    fn pre_v1_wrapper_is_recognised() {
        let doc = json!({"Job": {"APIVersion": "V1beta1", "Spec": {"Engine": "Docker"}}});
        let err = pre_v1(doc.as_object().unwrap()).unwrap();
        assert_eq!(err.path, "Job.APIVersion");
        assert!(
            err.message.contains("pre-v1") && err.message.contains("v1 job format"),
            "{err}"
        );
        assert!(pre_v1(json!({"Type": "batch"}).as_object().unwrap()).is_none());
    }
}
