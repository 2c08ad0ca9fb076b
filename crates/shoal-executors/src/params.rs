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

/// The params of the SQL engines (`query`, `analytics`; keys case-insensitive): `Query` (or
/// `SQL`), required; `MaxRows`; `TimeoutMs`.
#[cfg(any(feature = "query", feature = "analytics"))]
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct SqlParams {
    pub sql: String,
    pub max_rows: Option<usize>,
    pub timeout: Option<std::time::Duration>,
}

/// Reads [`SqlParams`]; errors name the engine and the param.
#[cfg(any(feature = "query", feature = "analytics"))]
pub(crate) fn sql_params(
    engine: &SpecConfig,
    engine_name: &str,
) -> Result<SqlParams, ExecutorError> {
    let sql = engine
        .param("Query")
        .or_else(|| engine.param("SQL"))
        .ok_or_else(|| {
            ExecutorError::user(format!(
                "{engine_name} engine: missing param Query: set Params.Query to one SELECT statement"
            ))
        })?;
    let sql = sql
        .as_str()
        .filter(|s| !s.trim().is_empty())
        .ok_or_else(|| {
            ExecutorError::user(format!(
                "{engine_name} engine: param Query must be a non-empty string holding one SELECT statement"
            ))
        })?
        .to_string();
    let max_rows =
        positive(engine, engine_name, "MaxRows")?.map(|n| usize::try_from(n).unwrap_or(usize::MAX));
    let timeout = positive(engine, engine_name, "TimeoutMs")?.map(std::time::Duration::from_millis);
    Ok(SqlParams {
        sql,
        max_rows,
        timeout,
    })
}

/// A positive integer param, given as a number or a numeric string.
#[cfg(any(feature = "query", feature = "analytics"))]
pub(crate) fn positive(
    engine: &SpecConfig,
    engine_name: &str,
    name: &str,
) -> Result<Option<u64>, ExecutorError> {
    let Some(v) = engine.param(name) else {
        return Ok(None);
    };
    let n = match v {
        Value::Number(n) => n.as_u64(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    };
    match n {
        Some(n) if n > 0 => Ok(Some(n)),
        _ => Err(ExecutorError::user(format!(
            "{engine_name} engine: param {name} must be a positive integer, got {v}"
        ))),
    }
}

/// What a SQL engine leaves of its answer: `rows` (one JSON object each) on stdout, the
/// answer's warnings on stderr, the rows as one JSON array in `<results>/query/rows.json`,
/// and the typed answer for the execution's report.
#[cfg(any(feature = "query", feature = "analytics"))]
pub(crate) fn write_answer(
    answer: shoal_types::Answer,
    rows: Vec<serde_json::Map<String, Value>>,
    logs: &crate::LogSink,
    results_dir: &std::path::Path,
) {
    use crate::Stream;
    for row in &rows {
        logs.write(Stream::Stdout, format!("{}\n", Value::Object(row.clone())));
    }
    for warning in &answer.warnings {
        logs.write(Stream::Stderr, format!("warning: {warning}\n"));
    }
    logs.answer(answer);
    let dir = results_dir.join("query");
    let written = std::fs::create_dir_all(&dir).and_then(|()| {
        let array = Value::Array(rows.into_iter().map(Value::Object).collect());
        std::fs::write(dir.join("rows.json"), array.to_string())
    });
    if let Err(e) = written {
        logs.write(
            Stream::Stderr,
            format!(
                "warning: could not write {}: {e}; the rows are on stdout only\n",
                dir.join("rows.json").display()
            ),
        );
    }
}
