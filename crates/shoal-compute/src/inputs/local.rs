//! `local` / `localDirectory` inputs: a host path under the node's allow-list, mounted in place.

use std::path::{Path, PathBuf};

use shoal_executors::PreparedInput;
use shoal_types::InputSource;

use super::InputError;
use crate::config::AllowedPath;

/// The `SourcePath` and `ReadWrite` of a local input.
pub(crate) fn params(input: &InputSource) -> Result<(&str, bool), InputError> {
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
    Ok((src, rw))
}

/// The allow-list as operators write it, for messages.
pub(crate) fn describe_allow_list(allowed: &[AllowedPath]) -> String {
    if allowed.is_empty() {
        return "empty".to_string();
    }
    allowed
        .iter()
        .map(AllowedPath::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

/// Checks a local input against the allow-list and that the path exists here.
///
/// Errors are [`InputError::User`] when no node could serve the input as written (outside the
/// allow-list, read-write on a read-only grant) and [`InputError::Missing`] when the path is
/// simply not on this node: another node may have it.
pub(crate) fn stage(
    input: &InputSource,
    allowed: &[AllowedPath],
) -> Result<PreparedInput, InputError> {
    let (src, rw) = params(input)?;
    let grant = allowed.iter().find(|a| under(Path::new(src), &a.path));
    let Some(grant) = grant else {
        return Err(InputError::User(format!(
            "local input {}: path {src} is not in this node's allow-list ({}); add it with --allow-path on the node",
            input.target,
            describe_allow_list(allowed)
        )));
    };
    if rw && !grant.read_write {
        return Err(InputError::User(format!(
            "local input {}: path {src} is allowed read-only on this node ({grant}), but the job asks for ReadWrite",
            input.target
        )));
    }
    let canonical = PathBuf::from(src).canonicalize().map_err(|e| {
        InputError::Missing(format!(
            "local input {}: source path {src} is not on this node: {e}",
            input.target
        ))
    })?;
    // Symlinks must not lead out of the grant.
    let inside = grant
        .path
        .canonicalize()
        .map(|g| canonical.starts_with(g))
        .unwrap_or(false);
    if !inside {
        return Err(InputError::User(format!(
            "local input {}: path {src} resolves to {}, outside this node's allow-list ({})",
            input.target,
            canonical.display(),
            describe_allow_list(allowed)
        )));
    }
    Ok(PreparedInput {
        host_path: canonical,
        target: input.target.clone(),
        read_write: rw,
    })
}

/// Whether `path` is `base` or below it, comparing normalised components (no IO).
pub(crate) fn under(path: &Path, base: &Path) -> bool {
    let norm = |p: &Path| -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        for c in p.components() {
            match c {
                std::path::Component::Normal(s) => out.push(s.to_string_lossy().into_owned()),
                std::path::Component::ParentDir => {
                    out.pop();
                }
                _ => {}
            }
        }
        out
    };
    path.is_absolute() && norm(path).starts_with(&norm(base))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn input(path: &Path) -> InputSource {
        InputSource {
            source: shoal_types::SpecConfig {
                kind: "local".into(),
                params: serde_json::json!({"SourcePath": path})
                    .as_object()
                    .unwrap()
                    .clone(),
            },
            alias: String::new(),
            target: "/data".into(),
        }
    }

    #[test]
    fn local_inputs_outside_the_allow_list_are_refused_naming_both() {
        let dir = tempfile::tempdir().unwrap();
        let err = stage(
            &input(dir.path()),
            &[AllowedPath::parse("/nonexistent-allowed:ro")],
        )
        .unwrap_err()
        .to_string();
        assert!(
            err.contains("is not in this node's allow-list (/nonexistent-allowed:ro)"),
            "{err}"
        );
        let ok = stage(
            &input(dir.path()),
            &[AllowedPath::parse(&dir.path().display().to_string())],
        )
        .unwrap();
        assert!(!ok.read_write);
    }

    #[test]
    fn an_allowed_path_missing_on_this_node_is_a_missing_not_a_user_error() {
        let dir = tempfile::tempdir().unwrap();
        let err = stage(
            &input(&dir.path().join("absent")),
            &[AllowedPath::parse(&dir.path().display().to_string())],
        )
        .unwrap_err();
        assert!(matches!(err, InputError::Missing(_)), "{err}");
    }

    #[test]
    fn dot_dot_cannot_climb_out_of_a_grant() {
        assert!(!under(Path::new("/data/../etc"), Path::new("/data")));
        assert!(under(Path::new("/data/x/../y"), Path::new("/data")));
    }
}
