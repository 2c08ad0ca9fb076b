//! A rollout's health check on the node (`Rollout.Health: {Type: command, Command: ...}`):
//! after an ops job's command exited 0, the node runs the check until it has passed for
//! `MinHealthy` or `Deadline` has passed, and only then counts the execution as completed.
//!
//! The check is a host command, run by the node's `exec` engine under the node's own policy:
//! it needs `--enable-exec` and an `--exec-allow` rule like any other command (a health check
//! is no way around the allowlist). It is split on whitespace and run without a shell.

use std::time::{Duration, Instant};

use serde_json::json;
use shoal_executors::{ExecutionRequest, ExecutorError, LogSink};
use shoal_types::rollout::HealthType;
use shoal_types::{Job, JobType, SpecConfig};
use tokio_util::sync::CancellationToken;

use crate::node::NodeContext;

/// How often a failing check is tried again.
const RETRY: Duration = Duration::from_secs(1);

/// Output kept of the last failing try, for the message.
const TAIL: usize = 300;

/// One execution's health check.
pub(crate) struct HealthCheck {
    command: String,
    request: ExecutionRequest,
    min_healthy: Duration,
    deadline: Duration,
}

impl HealthCheck {
    /// The check `job` asks for, run with what `task` was run with; `None` when it asks for
    /// none on this node (no rollout, or a health type judged by the orchestrator).
    pub(crate) fn of(job: &Job, task: &ExecutionRequest) -> Option<HealthCheck> {
        let health = &job.rollout.as_ref()?.health;
        if health.kind != HealthType::Command || job.job_type != JobType::Ops {
            return None;
        }
        let words: Vec<&str> = health.command.split_whitespace().collect();
        let (program, args) = words.split_first()?;
        let mut request = task.clone();
        request.engine = SpecConfig {
            kind: "exec".into(),
            params: [
                ("Command".to_string(), json!(program)),
                ("Arguments".to_string(), json!(args)),
            ]
            .into_iter()
            .collect(),
        };
        request.inputs = Vec::new();
        request.result_paths = Vec::new();
        request.results_dir = task.results_dir.with_file_name("health");
        request.timeout = Some(Duration::from_nanos(health.deadline.nanos().max(0) as u64));
        Some(HealthCheck {
            command: health.command.trim().to_string(),
            request,
            min_healthy: Duration::from_nanos(health.min_healthy.nanos().max(0) as u64),
            deadline: Duration::from_nanos(health.deadline.nanos().max(0) as u64),
        })
    }

    /// Runs the check until it passed for `MinHealthy`; the error says why it did not.
    pub(crate) async fn run(
        &self,
        node: &NodeContext,
        cancel: &CancellationToken,
    ) -> Result<(), String> {
        let cmd = &self.command;
        let Some(exec) = node.executors.get("exec") else {
            return Err(format!(
                "health check `{cmd}` needs the exec engine on node {}: start the agent with --enable-exec and an --exec-allow rule for it",
                node.node_id
            ));
        };
        exec.check_policy(&self.request.engine)
            .map_err(|e| format!("health check `{cmd}` refused by node {}: {e}", node.node_id))?;
        let started = Instant::now();
        let mut passing_since: Option<Instant> = None;
        loop {
            let (sink, mut rx) = LogSink::channel();
            let outcome = exec
                .run(self.request.clone(), sink, cancel.child_token())
                .await;
            let mut said = String::new();
            while let Ok(chunk) = rx.try_recv() {
                said.push_str(&chunk.text);
            }
            let why = match outcome {
                Ok(exit) if exit.code == 0 => {
                    let since = *passing_since.get_or_insert_with(Instant::now);
                    if since.elapsed() >= self.min_healthy {
                        return Ok(());
                    }
                    None
                }
                Ok(exit) => Some(format!("exit code {}{}", exit.code, tail(&said))),
                Err(ExecutorError::Cancelled) => {
                    return Err(format!("cancelled during its health check `{cmd}`"));
                }
                Err(e) => Some(e.to_string()),
            };
            if let Some(why) = &why {
                passing_since = None;
                if started.elapsed() >= self.deadline {
                    return Err(format!(
                        "health check `{cmd}` did not pass within {}: {why}",
                        shoal_types::time::go_duration(self.deadline.as_nanos() as i64)
                    ));
                }
            }
            tokio::select! {
                _ = cancel.cancelled() => {
                    return Err(format!("cancelled during its health check `{cmd}`"));
                }
                _ = tokio::time::sleep(RETRY) => {}
            }
        }
    }
}

/// `: <the end of what the check printed>`, or nothing when it printed nothing.
fn tail(said: &str) -> String {
    let t = said.trim();
    if t.is_empty() {
        return String::new();
    }
    let skip = t.chars().count().saturating_sub(TAIL);
    format!(": {}", t.chars().skip(skip).collect::<String>())
}
