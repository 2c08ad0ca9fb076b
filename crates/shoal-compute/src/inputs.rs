//! Staging a task's inputs on the host before the engine runs.
//!
//! Supported here: `inline` (an RFC 2397 `data:` URL or plain text) and `local` /
//! `localDirectory` (a host path under the node's allow-list). Other types are not offered by
//! the node, so the scheduler never places such jobs here.

use std::path::{Path, PathBuf};

use base64::Engine as _;
use shoal_executors::PreparedInput;
use shoal_types::InputSource;

use crate::config::AllowedPath;

/// Input source types this node can stage.
pub(crate) const SUPPORTED: &[&str] = &["inline", "local", "localDirectory"];

/// Why an input could not be staged; always a user error (retrying elsewhere will not help),
/// except for IO errors on this node.
#[derive(Debug, thiserror::Error)]
pub(crate) enum InputError {
    #[error("{0}")]
    User(String),
    #[error("{0}")]
    Io(String),
}

pub(crate) fn prepare(
    inputs: &[InputSource],
    staging: &Path,
    allowed: &[AllowedPath],
) -> Result<Vec<PreparedInput>, InputError> {
    let mut prepared = Vec::new();
    for (i, input) in inputs.iter().enumerate() {
        let src = &input.source;
        let p = if src.is("inline") {
            inline(i, input, staging)?
        } else if src.is("local") || src.is("localDirectory") {
            local(input, allowed)?
        } else {
            return Err(InputError::User(format!(
                "input {} of type {:?} is not supported on this node (supported: {})",
                input.target,
                src.kind,
                SUPPORTED.join(", ")
            )));
        };
        prepared.push(p);
    }
    Ok(prepared)
}

fn inline(i: usize, input: &InputSource, staging: &Path) -> Result<PreparedInput, InputError> {
    let url = input.source.str_param("URL").ok_or_else(|| {
        InputError::User(format!(
            "inline input {}: Params.URL is required (a data: URL or text)",
            input.target
        ))
    })?;
    let bytes = decode_data_url(url)
        .map_err(|e| InputError::User(format!("inline input {}: {e}", input.target)))?;
    std::fs::create_dir_all(staging)
        .map_err(|e| InputError::Io(format!("cannot create {}: {e}", staging.display())))?;
    let name = Path::new(&input.target)
        .file_name()
        .map(|n| n.to_string_lossy().to_string())
        .unwrap_or_else(|| format!("input-{i}"));
    let dir = staging.join(format!("{i}"));
    std::fs::create_dir_all(&dir)
        .map_err(|e| InputError::Io(format!("cannot create {}: {e}", dir.display())))?;
    let path = dir.join(name);
    std::fs::write(&path, bytes)
        .map_err(|e| InputError::Io(format!("cannot write {}: {e}", path.display())))?;
    Ok(PreparedInput {
        host_path: path,
        target: input.target.clone(),
        read_write: false,
    })
}

/// Decodes `data:[<mediatype>][;base64],<data>`; text without the `data:` prefix is returned as is.
pub(crate) fn decode_data_url(url: &str) -> Result<Vec<u8>, String> {
    let Some(rest) = url.strip_prefix("data:") else {
        return Ok(url.as_bytes().to_vec());
    };
    let (meta, data) = rest
        .split_once(',')
        .ok_or("data URL has no ',' between its media type and its data")?;
    if meta.ends_with(";base64") {
        base64::engine::general_purpose::STANDARD
            // Data URLs in YAML files are often folded over several lines.
            .decode(
                data.chars()
                    .filter(|c| !c.is_whitespace())
                    .collect::<String>(),
            )
            .map_err(|e| format!("data URL is not valid base64: {e}"))
    } else {
        Ok(percent_decode(data))
    }
}

fn percent_decode(s: &str) -> Vec<u8> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%'
            && i + 2 < b.len()
            && let Some(v) = std::str::from_utf8(&b[i + 1..i + 3])
                .ok()
                .and_then(|h| u8::from_str_radix(h, 16).ok())
        {
            out.push(v);
            i += 3;
            continue;
        }
        out.push(b[i]);
        i += 1;
    }
    out
}

fn local(input: &InputSource, allowed: &[AllowedPath]) -> Result<PreparedInput, InputError> {
    let src = input.source.str_param("SourcePath").ok_or_else(|| {
        InputError::User(format!(
            "local input {}: Params.SourcePath is required",
            input.target
        ))
    })?;
    let rw = match input.source.param("ReadWrite") {
        Some(serde_json::Value::Bool(b)) => *b,
        Some(serde_json::Value::String(s)) => s.eq_ignore_ascii_case("true"),
        _ => false,
    };
    let path = PathBuf::from(src);
    let canonical = path.canonicalize().map_err(|e| {
        InputError::User(format!(
            "local input {}: source path {src} cannot be read on this node: {e}",
            input.target
        ))
    })?;
    let grant = allowed.iter().find(|a| {
        a.path
            .canonicalize()
            .map(|p| canonical.starts_with(p))
            .unwrap_or(false)
    });
    match grant {
        None => Err(InputError::User(format!(
            "local input {}: path {src} is not in this node's allow-list ({}); add it with --allow-path on the node",
            input.target,
            if allowed.is_empty() {
                "empty".to_string()
            } else {
                allowed
                    .iter()
                    .map(|a| {
                        format!(
                            "{}{}",
                            a.path.display(),
                            if a.read_write { ":rw" } else { ":ro" }
                        )
                    })
                    .collect::<Vec<_>>()
                    .join(", ")
            }
        ))),
        Some(a) if rw && !a.read_write => Err(InputError::User(format!(
            "local input {}: path {src} is allowed read-only on this node, but the job asks for ReadWrite",
            input.target
        ))),
        Some(_) => Ok(PreparedInput {
            host_path: canonical,
            target: input.target.clone(),
            read_write: rw,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn data_urls_decode_base64_and_plain_forms() {
        assert_eq!(
            decode_data_url("data:application/wasm;base64,AGFzbQ==").unwrap(),
            b"\0asm"
        );
        assert_eq!(
            decode_data_url("data:,hello%20world").unwrap(),
            b"hello world"
        );
        assert_eq!(decode_data_url("just text").unwrap(), b"just text");
        assert!(
            decode_data_url("data:;base64,@@@")
                .unwrap_err()
                .contains("base64")
        );
    }

    #[test]
    fn local_inputs_outside_the_allow_list_are_refused_naming_both() {
        let dir = tempfile::tempdir().unwrap();
        let input = InputSource {
            source: shoal_types::SpecConfig {
                kind: "local".into(),
                params: serde_json::json!({"SourcePath": dir.path()})
                    .as_object()
                    .unwrap()
                    .clone(),
            },
            alias: String::new(),
            target: "/data".into(),
        };
        let err = local(&input, &[AllowedPath::parse("/nonexistent-allowed:ro")])
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("is not in this node's allow-list (/nonexistent-allowed:ro)"),
            "{err}"
        );
        let ok = local(
            &input,
            &[AllowedPath::parse(&dir.path().display().to_string())],
        )
        .unwrap();
        assert!(!ok.read_write);
    }
}
