//! The `exec` engine: runs a command on the node's host, without a container, under the
//! node's [`ExecPolicy`].
//!
//! ```yaml
//! Engine:
//!   Type: exec
//!   Params: {Command: /usr/bin/systemctl, Arguments: [restart, nginx], User: www-data}
//! ```
//!
//! The node is the authority: the engine exists only on agents started with `--enable-exec`
//! ([`install`]), and a command runs only when a rule of the allowlist allows its exact
//! program path and arguments, as the default user (`nobody`) or one the operator listed.
//! [`Executor::check_policy`] answers at admission, so a refusal is reported per node before
//! anything starts; [`Executor::run`] checks again before it spawns.
//!
//! What a run does (see [`ExecParams`] for the parameters):
//!
//! - no shell: `argv` is `Command` then `Arguments`, as written. `Shell: true` runs
//!   `/bin/sh -c COMMAND`, which needs a rule for `/bin/sh`. A bare program name is looked up
//!   in the node's fixed [`EXEC_PATH`]; the rule check sees the path found.
//! - the command gets a process group of its own; on cancel, on the task's time limit, and when
//!   it exits, the whole group is killed with SIGKILL, so nothing it started stays behind.
//!   The log then ends with `killed: timeout after 2s` (or `killed: cancelled`).
//! - the environment is the node's (`PATH`, `HOME`, `USER`, `LOGNAME`) plus the task's, which
//!   may not set loader, shell or interpreter variables (`LD_PRELOAD` and the like).
//! - the working directory is `WorkingDirectory`, or `/`.
//! - `Files` are placed first, atomically, each only under a prefix the node allows
//!   (`--exec-write-allow`), the replaced file kept as `<path>.shoal-prev` ([`files`]).
//! - output streams as lines under the node's output cap; past it lines are dropped and one
//!   `[truncated N bytes]` marker is written at the end.
//! - at most [`ExecPolicy::max_concurrent`] commands run at once; the others wait (their time
//!   limit starts when they start).
//!
//! | command does | result |
//! |---|---|
//! | exits with code n | `Exit { code: n }` |
//! | is killed by a signal s it did not get from the engine | `Exit { code: 128 + s }` |
//! | runs past the time limit | `Timeout` |
//! | is cancelled | `Cancelled` |
//! | is refused by the policy, or cannot start | `User` error |

use std::path::{Path, PathBuf};
use std::sync::Arc;

use futures::future::BoxFuture;
use shoal_types::SpecConfig;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use crate::{ExecutionRequest, Executor, ExecutorError, ExecutorRegistry, Exit, LogSink};

pub mod files;
mod output;
mod params;
mod policy;
mod process;
mod user;

pub use params::{ExecParams, KNOWN_PARAMS};
pub use policy::{
    DEFAULT_MAX_CONCURRENT, DEFAULT_OUTPUT_CAP, DEFAULT_USER, EXEC_DISABLED, EXEC_PATH, ExecPolicy,
    ExecRule, SHELL, command_line,
};

use process::Plan;

/// Runs host commands under one node's policy.
///
/// Cheap to clone; clones share the policy and the concurrency slots.
#[derive(Debug, Clone)]
pub struct ExecExecutor {
    policy: Arc<ExecPolicy>,
    slots: Arc<Semaphore>,
}

impl ExecExecutor {
    /// An executor enforcing `policy`. A disabled policy refuses every command; agents offer
    /// the engine only when it is enabled ([`install`]).
    pub fn new(policy: ExecPolicy) -> Self {
        let slots = Arc::new(Semaphore::new(policy.max_concurrent.max(1)));
        ExecExecutor {
            policy: Arc::new(policy),
            slots,
        }
    }

    /// The policy this executor enforces.
    pub fn policy(&self) -> &ExecPolicy {
        &self.policy
    }

    /// What would run for `params` under the policy, on this node: the program found, the
    /// rule check, the user allowed and looked up. The error is the refusal, in the words
    /// [`Executor::check_policy`] reports.
    fn plan(&self, params: &ExecParams) -> Result<Plan, String> {
        if !self.policy.enabled {
            return Err(EXEC_DISABLED.to_string());
        }
        let argv = if params.shell {
            vec![SHELL.to_string(), "-c".to_string(), params.command.clone()]
        } else {
            let program = resolve(&params.command)?;
            std::iter::once(program)
                .chain(params.arguments.iter().cloned())
                .collect()
        };
        self.policy.check_command(&argv)?;
        files::check_allowed(&params.files, &self.policy.write_allow)?;
        for owner in params.files.iter().filter_map(|f| f.owner.as_deref()) {
            user::identity(owner).map_err(|e| format!("file owner: {e}"))?;
        }
        let user = self.policy.user_for(params.user.as_deref())?;
        let identity = user::identity(user)?;
        Ok(Plan {
            argv,
            identity,
            working_directory: params
                .working_directory
                .as_deref()
                .map_or_else(|| PathBuf::from("/"), PathBuf::from),
        })
    }
}

/// Offers the `exec` engine in `registry` when `policy` is enabled; otherwise marks it
/// unavailable with [`EXEC_DISABLED`], which the scheduler shows for each node a job needing
/// it cannot go to. Either way the node advertises the policy's summary.
pub fn install(registry: &mut ExecutorRegistry, policy: ExecPolicy) {
    registry.describe_policy("exec", policy.summary());
    if policy.enabled {
        registry.register(Arc::new(ExecExecutor::new(policy)));
    } else {
        registry.mark_unavailable("exec", EXEC_DISABLED);
    }
}

/// The absolute path of `command`: as written when it has a `/`, otherwise the first
/// executable of that name in [`EXEC_PATH`].
fn resolve(command: &str) -> Result<String, String> {
    if command.contains('/') {
        return Ok(command.to_string());
    }
    EXEC_PATH
        .split(':')
        .map(|dir| Path::new(dir).join(command))
        .find(|p| is_executable(p))
        .map(|p| p.display().to_string())
        .ok_or_else(|| {
            format!(
                "program {command} is not in the exec PATH ({EXEC_PATH}) on this node; give its absolute path"
            )
        })
}

fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    path.metadata()
        .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

impl Executor for ExecExecutor {
    fn engine(&self) -> &'static str {
        "exec"
    }

    fn validate(&self, engine: &SpecConfig) -> Result<(), ExecutorError> {
        ExecParams::parse(engine).map(|_| ())
    }

    fn check_policy(&self, engine: &SpecConfig) -> Result<(), String> {
        let params = ExecParams::parse(engine).map_err(|e| e.to_string())?;
        self.plan(&params).map(|_| ())
    }

    fn run(
        &self,
        request: ExecutionRequest,
        logs: LogSink,
        cancel: CancellationToken,
    ) -> BoxFuture<'static, Result<Exit, ExecutorError>> {
        let executor = self.clone();
        let span = tracing::info_span!(
            "exec_run",
            execution_id = %request.execution_id,
            job_id = %request.job_id,
        );
        Box::pin(
            async move {
                let params = ExecParams::parse(&request.engine)?;
                // Admission checked the policy already; the node may have changed since
                // (a user removed), and a run must never depend on that having happened.
                let plan = executor.plan(&params).map_err(|refusal| {
                    ExecutorError::user(format!("exec engine: refused by the node: {refusal}"))
                })?;
                if let Some(name) = request.env.keys().find(|k| process::forbidden_variable(k)) {
                    return Err(ExecutorError::user(format!(
                        "exec engine: the task sets {name}, which changes what an allowed program does; exec tasks may not set loader, shell or interpreter variables"
                    )));
                }
                let _slot = tokio::select! {
                    biased;
                    _ = cancel.cancelled() => return Err(ExecutorError::Cancelled),
                    slot = executor.slots.clone().acquire_owned() => slot.map_err(|_| {
                        ExecutorError::transient("exec engine: the node is shutting down")
                    })?,
                };
                if !params.files.is_empty() {
                    let placed = files::place(&params.files, &request.inputs, |name| {
                        user::identity(name).map(|i| (i.uid, i.gid))
                    })
                    .map_err(|e| ExecutorError::user(format!("exec engine: {e}")))?;
                    for line in placed {
                        logs.write(crate::Stream::Stdout, format!("{line}\n"));
                    }
                }
                let outcome = process::run(
                    &plan,
                    &request.env,
                    request.timeout,
                    executor.policy.output_cap,
                    logs,
                    cancel,
                )
                .await;
                match &outcome {
                    Ok(exit) => tracing::debug!(code = exit.code, "exec command exited"),
                    Err(e) => tracing::debug!(error = %e, "exec command failed"),
                }
                outcome
            }
            .instrument(span),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bare_program_names_are_found_in_the_exec_path() {
        let found = resolve("sh").unwrap();
        assert!(found.ends_with("/sh") && found.starts_with('/'), "{found}");
        assert_eq!(resolve("/opt/x/tool").unwrap(), "/opt/x/tool");
        let err = resolve("shoal-no-such-program").unwrap_err();
        assert!(err.contains("is not in the exec PATH"), "{err}");
    }

    #[test]
    fn a_disabled_policy_refuses_everything_with_the_reason_the_scheduler_shows() {
        let e = ExecExecutor::new(ExecPolicy::default());
        let spec = serde_json::from_value(serde_json::json!({
            "Type": "exec", "Params": {"Command": "/bin/true"}
        }))
        .unwrap();
        assert_eq!(e.check_policy(&spec), Err(EXEC_DISABLED.to_string()));
    }

    #[test]
    fn install_offers_the_engine_only_when_enabled_and_describes_the_policy_either_way() {
        let mut off = ExecutorRegistry::new();
        install(&mut off, ExecPolicy::default());
        assert!(off.get("exec").is_none());
        assert_eq!(off.unavailable()["exec"], EXEC_DISABLED);
        assert_eq!(off.policies()["exec"], "disabled");

        let mut on = ExecutorRegistry::new();
        install(&mut on, ExecPolicy::enabled_with(&["/bin/true"]).unwrap());
        assert!(on.get("exec").is_some());
        assert!(on.unavailable().is_empty());
        assert_eq!(on.policies()["exec"], "allowlist 1 rule");
    }
}
