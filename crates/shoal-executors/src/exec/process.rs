//! Running one command: spawned in a process group of its own, as the chosen user, with an
//! environment the node fixes, its output forwarded under the cap, and the whole group killed
//! when it is cancelled, runs past its time limit, or ends leaving children behind.

use std::collections::BTreeMap;
use std::future;
use std::io;
use std::os::unix::process::ExitStatusExt;
use std::path::PathBuf;
use std::process::{ExitStatus, Stdio};
use std::time::Duration;

use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;
use tokio_util::sync::CancellationToken;

use super::output::{OutputCap, forward};
use super::policy::{EXEC_PATH, command_line};
use super::user::Identity;
use crate::{ExecutorError, Exit, LogSink, Stream};

/// How long the output of a command that has ended (and whose group is killed) may take to
/// drain: only a process that left the group (`setsid`) and kept the pipes open holds it up.
const DRAIN_GRACE: Duration = Duration::from_secs(2);

/// What runs, decided by the policy: the program's absolute path first, then its arguments.
#[derive(Debug, Clone)]
pub(crate) struct Plan {
    /// `argv[0]` is the absolute path of the program.
    pub argv: Vec<String>,
    /// Who it runs as.
    pub identity: Identity,
    /// Where it runs.
    pub working_directory: PathBuf,
}

/// How the command ended, before the group is cleaned up.
enum Ending {
    Exited(io::Result<ExitStatus>),
    Cancelled,
    TimedOut(Duration),
}

/// The process group of a running command: killed (SIGKILL, every member) when dropped, so no
/// path out of [`run`], a dropped future included, leaves it running.
struct Group(Pid);

impl Group {
    fn kill(&self) {
        // ESRCH (every member is gone) is the common case after a normal exit. The id cannot
        // name another group meanwhile: the kernel does not reuse an id while a group has it.
        let _ = killpg(self.0, Signal::SIGKILL);
    }
}

impl Drop for Group {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Runs `plan` to its end; see the module documentation. `env` is the task's environment
/// (already checked by the caller), laid over the node's fixed `PATH`, `HOME`, `USER` and
/// `LOGNAME`.
pub(crate) async fn run(
    plan: &Plan,
    env: &BTreeMap<String, String>,
    timeout: Option<Duration>,
    output_cap: u64,
    logs: LogSink,
    cancel: CancellationToken,
) -> Result<Exit, ExecutorError> {
    if !plan.working_directory.is_dir() {
        return Err(ExecutorError::user(format!(
            "exec engine: WorkingDirectory {} does not exist on this node",
            plan.working_directory.display()
        )));
    }
    let id = &plan.identity;
    let mut cmd = tokio::process::Command::new(&plan.argv[0]);
    cmd.args(&plan.argv[1..])
        .current_dir(&plan.working_directory)
        .env_clear()
        .env("PATH", EXEC_PATH)
        .env("HOME", &id.home)
        .env("USER", &id.name)
        .env("LOGNAME", &id.name)
        .envs(env)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0);
    if id.switch {
        // std drops the supplementary groups of a root parent before setuid.
        cmd.uid(id.uid).gid(id.gid);
    }
    let mut child = cmd.spawn().map_err(|e| spawn_error(plan, e))?;
    let Some(pid) = child.id() else {
        return Err(ExecutorError::transient(
            "exec engine: the command ended before its process id was read",
        ));
    };
    let group = Group(Pid::from_raw(pid as i32));
    tracing::debug!(pid, command = %command_line(&plan.argv), user = %id.name, "exec command started");
    let cap = OutputCap::new(output_cap);
    let readers = [
        child
            .stdout
            .take()
            .map(|p| tokio::spawn(forward(p, Stream::Stdout, logs.clone(), cap.clone()))),
        child
            .stderr
            .take()
            .map(|p| tokio::spawn(forward(p, Stream::Stderr, logs.clone(), cap.clone()))),
    ];
    // Bacalhau's convention: a zero timeout means none.
    let timeout = timeout.filter(|t| !t.is_zero());
    let time_limit = async {
        match timeout {
            Some(limit) => tokio::time::sleep(limit).await,
            None => future::pending().await,
        }
    };
    let ending = tokio::select! {
        biased;
        _ = cancel.cancelled() => Ending::Cancelled,
        _ = time_limit => Ending::TimedOut(timeout.unwrap_or_default()),
        status = child.wait() => Ending::Exited(status),
    };
    // Children the command left behind go with it: the engine promises that nothing it
    // started is left running.
    group.kill();
    if !matches!(ending, Ending::Exited(_)) {
        let _ = child.wait().await;
    }
    drain(readers).await;
    if let Some((stream, dropped)) = cap.truncation() {
        logs.write(stream, format!("[truncated {dropped} bytes]\n"));
    }
    match ending {
        Ending::Exited(Ok(status)) => {
            let code = status
                .code()
                .unwrap_or_else(|| 128 + status.signal().unwrap_or(0));
            Ok(Exit { code })
        }
        Ending::Exited(Err(e)) => Err(ExecutorError::transient(format!(
            "exec engine: could not wait for {}: {e}",
            plan.argv[0]
        ))),
        Ending::Cancelled => {
            logs.write(Stream::Stderr, "killed: cancelled\n");
            Err(ExecutorError::Cancelled)
        }
        Ending::TimedOut(limit) => {
            logs.write(
                Stream::Stderr,
                format!("killed: timeout after {}\n", seconds(limit)),
            );
            Err(ExecutorError::Timeout(limit))
        }
    }
}

/// Waits for the output readers, giving up on those still open after [`DRAIN_GRACE`].
async fn drain(readers: [Option<tokio::task::JoinHandle<()>>; 2]) {
    for reader in readers.into_iter().flatten() {
        let abort = reader.abort_handle();
        if tokio::time::timeout(DRAIN_GRACE, reader).await.is_err() {
            tracing::warn!(
                "exec command's output pipe is still held open by a process outside its group; output after this point is not kept"
            );
            abort.abort();
        }
    }
}

fn spawn_error(plan: &Plan, e: io::Error) -> ExecutorError {
    let program = &plan.argv[0];
    match e.kind() {
        io::ErrorKind::NotFound => ExecutorError::user(format!(
            "exec engine: {program} does not exist on this node"
        )),
        io::ErrorKind::PermissionDenied => ExecutorError::user(format!(
            "exec engine: {program} cannot be run as {}: permission denied",
            plan.identity.name
        )),
        _ => ExecutorError::transient(format!("exec engine: {program} could not start: {e}")),
    }
}

/// `2s`, `1.5s`, `250ms`: a time limit as people write it.
fn seconds(d: Duration) -> String {
    if d.subsec_millis() == 0 {
        format!("{}s", d.as_secs())
    } else if d.as_secs() == 0 {
        format!("{}ms", d.as_millis())
    } else {
        format!("{}s", d.as_secs_f64())
    }
}

/// Names of variables a task may not set for a host command: they change what an allowed
/// program does (the dynamic loader's, the shell's, interpreters' search paths), which would
/// let a job run code no rule allows.
pub(crate) fn forbidden_variable(name: &str) -> bool {
    const PREFIXES: [&str; 3] = ["LD_", "DYLD_", "BASH_FUNC_"];
    const NAMES: [&str; 20] = [
        "PATH",
        "IFS",
        "ENV",
        "BASH_ENV",
        "SHELLOPTS",
        "BASHOPTS",
        "PS4",
        "CDPATH",
        "GCONV_PATH",
        "LOCPATH",
        "NLSPATH",
        "HOSTALIASES",
        "PYTHONPATH",
        "PYTHONSTARTUP",
        "PYTHONHOME",
        "PERL5LIB",
        "PERL5OPT",
        "RUBYLIB",
        "RUBYOPT",
        "NODE_OPTIONS",
    ];
    let upper = name.to_ascii_uppercase();
    PREFIXES.iter().any(|p| upper.starts_with(p)) || NAMES.contains(&upper.as_str())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn time_limits_are_written_as_people_write_them() {
        assert_eq!(seconds(Duration::from_secs(2)), "2s");
        assert_eq!(seconds(Duration::from_millis(1500)), "1.5s");
        assert_eq!(seconds(Duration::from_millis(250)), "250ms");
    }
}
