//! Staging a task's inputs on the host before the engine runs.
//!
//! One file per source type:
//!
//! | type | file | staged as |
//! |---|---|---|
//! | `inline` | [`inline`] | a file written from a `data:` URL or plain text |
//! | `local`, `localDirectory` | [`local`] | the host path itself, if under the allow-list |
//! | `urlDownload` | [`url`] | a file downloaded over HTTP(S) |
//! | `s3` | [`s3`] | a file (one object) or a folder (a prefix) |
//!
//! Every staged input is a [`PreparedInput`]: a host path and the `Target` it is mounted at,
//! which docker (bind mounts) and wasm (preopens) both consume. File inputs are staged each in
//! their own folder under the target's file name, so that engines that can only mount folders
//! expose that file and nothing else.

use std::path::{Path, PathBuf};

use shoal_executors::PreparedInput;
use shoal_types::InputSource;

use crate::config::{AllowedPath, TransferPolicy};

mod inline;
pub(crate) mod local;
pub(crate) mod retry;
pub mod s3;
mod spool;
pub(crate) mod url;

/// Input source types this node can stage.
pub(crate) const SUPPORTED: &[&str] = &["inline", "local", "localDirectory", "urlDownload", "s3"];

/// Why an input could not be staged.
#[derive(Debug, thiserror::Error)]
pub(crate) enum InputError {
    /// The job is wrong (bad params, path outside the allow-list, 404, missing key, refused
    /// credentials): retrying anywhere will not help.
    #[error("{0}")]
    User(String),
    /// The data is not on this node, but another node may have it.
    #[error("{0}")]
    Missing(String),
    /// The source failed in a way that may pass (still failing after retries).
    #[error("{0}")]
    Transient(String),
    /// This node could not write the staged data.
    #[error("{0}")]
    Io(String),
}

impl InputError {
    /// Whether running the execution elsewhere may succeed.
    pub fn retryable(&self) -> bool {
        !matches!(self, InputError::User(_))
    }
}

impl retry::Retryable for InputError {
    fn is_transient(&self) -> bool {
        matches!(self, InputError::Transient(_))
    }

    fn gave_up(self, attempts: u32) -> Self {
        match self {
            InputError::Transient(m) => {
                InputError::Transient(format!("{m} (gave up after {attempts} attempts)"))
            }
            other => other,
        }
    }
}

/// What staging needs from the agent.
pub(crate) struct InputContext {
    /// This execution's staging folder.
    pub staging: PathBuf,
    /// Host paths jobs may mount.
    pub allowed: Vec<AllowedPath>,
    /// Size cap, retries and timeouts of downloads.
    pub policy: TransferPolicy,
    /// The agent's HTTP client.
    pub http: reqwest::Client,
    /// How retries wait: a real sleep (tests record the schedule instead).
    pub pause: retry::Pause,
}

/// Stages every input, in order; the first failure ends staging.
pub(crate) async fn prepare(
    inputs: &[InputSource],
    cx: &InputContext,
) -> Result<Vec<PreparedInput>, InputError> {
    let mut prepared = Vec::new();
    for (i, input) in inputs.iter().enumerate() {
        let src = &input.source;
        let p = if src.is("inline") {
            inline::stage(i, input, &cx.staging)?
        } else if src.is("local") || src.is("localDirectory") {
            local::stage(input, &cx.allowed)?
        } else if src.is("urlDownload") {
            url::stage(i, input, cx).await?
        } else if src.is("s3") {
            s3::stage(i, input, cx).await?
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

/// The path a file input is staged at: `staging/<i>/<file name of target>` (or `fallback`).
pub(crate) fn file_slot(
    i: usize,
    target: &str,
    fallback: &str,
    staging: &Path,
) -> Result<PathBuf, InputError> {
    let name = Path::new(target)
        .file_name()
        .map(|n| n.to_string_lossy().to_string())
        .filter(|n| !n.is_empty())
        .unwrap_or_else(|| fallback.to_string());
    let dir = staging.join(i.to_string());
    std::fs::create_dir_all(&dir)
        .map_err(|e| InputError::Io(format!("cannot create {}: {e}", dir.display())))?;
    Ok(dir.join(name))
}

/// Whether a checksum given in a job (hex, or base64 as AWS writes it) is this digest.
pub(crate) fn checksum_matches(want: &str, digest: &[u8; 32]) -> bool {
    use base64::Engine as _;
    let want = want.trim();
    want.eq_ignore_ascii_case(&hex::encode(digest))
        || want == base64::engine::general_purpose::STANDARD.encode(digest)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checksums_are_accepted_in_hex_and_base64() {
        let d: [u8; 32] = {
            use sha2::Digest;
            sha2::Sha256::digest(b"abc").into()
        };
        assert!(checksum_matches(
            "BA7816BF8F01CFEA414140DE5DAE2223B00361A396177A9CB410FF61F20015AD",
            &d
        ));
        assert!(checksum_matches(
            "ungWv48Bz+pBQUDeXa4iI7ADYaOWF3qctBD/YfIAFa0=",
            &d
        ));
        assert!(!checksum_matches("00", &d));
    }
}
