//! Publishing an execution's results folder (`stdout`, `stderr`, `exitCode` and the task's
//! result paths) once the task has ended.
//!
//! | type | what happens | published result |
//! |---|---|---|
//! | none, `noop` | nothing | none |
//! | `local` | a `.tar.gz` kept on the node, served over the agent link | `local` with `ExecutionID`, `NodeID`, `Size`, `ChecksumSHA256` |
//! | `s3` | uploaded (`gzip`: one `.tar.gz`; `plain`: one object per file) | `s3` with `Bucket`, `Key`, `Endpoint`, `Region`, `Encoding` |
//!
//! A `local` result is turned into a Bacalhau `urlDownload` pointing at the orchestrator when
//! clients list a job's results, so clients never need to reach the node.

use std::path::{Path, PathBuf};

use serde_json::{Map, Value, json};
use shoal_types::SpecConfig;

use crate::config::TransferPolicy;

pub(crate) mod archive;
mod s3;
pub(crate) mod serve;

/// Publisher types this node offers.
pub(crate) const SUPPORTED: &[&str] = &["noop", "local", "s3"];

/// Why results could not be published.
#[derive(Debug, thiserror::Error)]
pub(crate) enum PublishError {
    /// The spec or the destination is wrong: retrying will not help.
    #[error("{0}")]
    User(String),
    /// The destination failed in a way that may pass.
    #[error("{0}")]
    Transient(String),
}

/// What a publisher needs to know about the execution.
pub(crate) struct PublishContext<'a> {
    pub node_id: &'a str,
    pub job_id: &'a str,
    pub execution_id: &'a str,
    pub results_dir: &'a Path,
    /// Where `local` archives are kept: `<data>/compute/results/local-publisher`.
    pub local_dir: PathBuf,
    pub policy: &'a TransferPolicy,
}

/// Where the `local` publisher keeps an execution's archive.
pub(crate) fn local_archive(local_dir: &Path, execution_id: &str) -> PathBuf {
    local_dir.join(format!("{execution_id}.tar.gz"))
}

/// Publishes the results folder as the task's publisher says.
pub(crate) async fn publish(
    spec: Option<&SpecConfig>,
    cx: &PublishContext<'_>,
) -> Result<Option<SpecConfig>, PublishError> {
    let Some(spec) = spec.filter(|s| !s.kind.trim().is_empty() && !s.is("noop")) else {
        return Ok(None);
    };
    if spec.is("local") {
        let dest = local_archive(&cx.local_dir, cx.execution_id);
        let a = write_archive(cx.results_dir, &dest).await?;
        return Ok(Some(config(
            "local",
            json!({
                "ExecutionID": cx.execution_id,
                "NodeID": cx.node_id,
                "Size": a.size,
                "ChecksumSHA256": a.sha256,
            }),
        )));
    }
    if spec.is("s3") {
        return s3::publish(spec, cx).await.map(Some);
    }
    Err(PublishError::User(format!(
        "publisher {:?} is not supported on this node (supported: {})",
        spec.kind,
        SUPPORTED.join(", ")
    )))
}

pub(crate) async fn write_archive(
    dir: &Path,
    dest: &Path,
) -> Result<archive::Archive, PublishError> {
    let (dir, dest) = (dir.to_path_buf(), dest.to_path_buf());
    tokio::task::spawn_blocking(move || {
        archive::write(&dir, &dest).map_err(|e| {
            PublishError::Transient(format!(
                "cannot archive results {} into {}: {e}",
                dir.display(),
                dest.display()
            ))
        })
    })
    .await
    .map_err(|e| PublishError::Transient(format!("archiving results failed: {e}")))?
}

fn config(kind: &str, params: Value) -> SpecConfig {
    SpecConfig {
        kind: kind.into(),
        params: match params {
            Value::Object(m) => m,
            _ => Map::new(),
        },
    }
}
