//! Reading engine `Params` that every engine shares: lists of strings, and what a wrong value
//! was, for the message.

use serde_json::Value;
use shoal_types::SpecConfig;

use crate::ExecutorError;

/// Reads the optional list of strings `key` of `engine`'s params (empty when absent). Numbers
/// and booleans are taken as their text, because YAML job files often leave arguments like `1`
/// or `true` unquoted. Errors name the engine, the key (and the entry) and show `example`.
pub(crate) fn string_list(
    engine: &SpecConfig,
    engine_name: &str,
    key: &str,
    example: &str,
) -> Result<Vec<String>, ExecutorError> {
    let items = match engine.param(key) {
        None | Some(Value::Null) => return Ok(Vec::new()),
        Some(Value::Array(items)) => items,
        Some(other) => {
            return Err(ExecutorError::user(format!(
                "{engine_name} engine: {key} must be a list of strings, got {}; write it like {key}: {example}",
                kind_of(other)
            )));
        }
    };
    items
        .iter()
        .enumerate()
        .map(|(i, item)| match item {
            Value::String(s) => Ok(s.clone()),
            Value::Number(n) => Ok(n.to_string()),
            Value::Bool(b) => Ok(b.to_string()),
            other => Err(ExecutorError::user(format!(
                "{engine_name} engine: {key}[{i}] must be a string, got {}; write it like {key}: {example}",
                kind_of(other)
            ))),
        })
        .collect()
}

/// Reads the optional absolute path `WorkingDirectory` (`None` when absent or empty); the
/// error names the engine and shows `example`. (The wasm engine has no working directory.)
#[cfg(any(feature = "docker", feature = "exec"))]
pub(crate) fn working_directory(
    engine: &SpecConfig,
    engine_name: &str,
    example: &str,
) -> Result<Option<String>, ExecutorError> {
    match engine.param("WorkingDirectory") {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) if s.is_empty() => Ok(None),
        Some(Value::String(s)) if s.starts_with('/') => Ok(Some(s.clone())),
        Some(other) => Err(ExecutorError::user(format!(
            "{engine_name} engine: WorkingDirectory must be an absolute path, got {other}; write it like {example}"
        ))),
    }
}

/// What kind of JSON value this is, in words.
pub(crate) fn kind_of(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "a map",
    }
}
