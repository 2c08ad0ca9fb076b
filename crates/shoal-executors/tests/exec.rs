//! The `exec` engine running real commands on this host: output, exit codes, the time limit
//! and the kill of the whole process group, the output cap, users and the policy.
#![cfg(feature = "exec")]

use std::collections::BTreeMap;
use std::time::Duration;

use serde_json::{Value, json};
use shoal_executors::exec::{ExecExecutor, ExecPolicy};
use shoal_executors::{ExecutionRequest, Executor, ExecutorError, Exit, LogChunk, LogSink, Stream};
use shoal_types::{JobType, Network, Resources, SpecConfig};
use tokio::sync::mpsc::UnboundedReceiver;
use tokio_util::sync::CancellationToken;

fn spec(params: Value) -> SpecConfig {
    serde_json::from_value(json!({ "Type": "exec", "Params": params })).unwrap()
}

fn request(params: Value, timeout: Option<Duration>) -> ExecutionRequest {
    ExecutionRequest {
        job_id: "j-test".into(),
        execution_id: "e-test".into(),
        job_type: JobType::Ops,
        engine: spec(params),
        env: BTreeMap::new(),
        inputs: Vec::new(),
        results_dir: std::env::temp_dir(),
        result_paths: Vec::new(),
        resources: Resources::default(),
        network: Network::default(),
        timeout,
    }
}

/// A policy allowing these rules, running as this process's own user unless a test says
/// otherwise: tests that are not about users must pass as root and as anyone else.
fn policy(rules: &[&str]) -> ExecPolicy {
    let mut p = ExecPolicy::enabled_with(rules).unwrap();
    p.default_user = own_user();
    p
}

fn own_user() -> String {
    let out = std::process::Command::new("id")
        .arg("-un")
        .output()
        .unwrap();
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

fn is_root() -> bool {
    let out = std::process::Command::new("id").arg("-u").output().unwrap();
    String::from_utf8_lossy(&out.stdout).trim() == "0"
}

async fn run(
    policy: ExecPolicy,
    request: ExecutionRequest,
    cancel: CancellationToken,
) -> (Result<Exit, ExecutorError>, Vec<LogChunk>) {
    let executor = ExecExecutor::new(policy);
    let (sink, mut rx) = LogSink::channel();
    let outcome = executor.run(request, sink, cancel).await;
    (outcome, drain(&mut rx))
}

fn drain(rx: &mut UnboundedReceiver<LogChunk>) -> Vec<LogChunk> {
    std::iter::from_fn(|| rx.try_recv().ok()).collect()
}

fn text(chunks: &[LogChunk], stream: Stream) -> String {
    chunks
        .iter()
        .filter(|c| c.stream == stream)
        .map(|c| c.text.as_str())
        .collect()
}

/// Whether a process is running: present in /proc and not a zombie waiting to be reaped
/// (in a container, nothing may reap an orphan killed there).
/// Whether `pid` ends within a few seconds: SIGKILL is delivered asynchronously, so a process
/// of a group killed a moment ago may still show as running (more so on a loaded machine).
fn ends_soon(pid: u32) -> bool {
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while running(pid) {
        if std::time::Instant::now() > deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    true
}

fn running(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => {
            let state = stat.rsplit(')').next().unwrap_or("").trim_start();
            !state.starts_with('Z') && !state.starts_with('X')
        }
        Err(_) => false,
    }
}

#[tokio::test]
async fn echo_prints_its_arguments_and_exits_zero() {
    let (outcome, logs) = run(
        policy(&["/bin/echo"]),
        request(
            json!({"Command": "/bin/echo", "Arguments": ["hello", "exec world"]}),
            None,
        ),
        CancellationToken::new(),
    )
    .await;
    assert_eq!(outcome, Ok(Exit { code: 0 }));
    assert_eq!(text(&logs, Stream::Stdout), "hello exec world\n");
    assert_eq!(text(&logs, Stream::Stderr), "");
}

#[tokio::test]
async fn arguments_reach_the_program_unexpanded() {
    let (outcome, logs) = run(
        policy(&["/bin/echo"]),
        request(
            json!({"Command": "/bin/echo", "Arguments": ["$HOME", "*", "a;b"]}),
            None,
        ),
        CancellationToken::new(),
    )
    .await;
    assert_eq!(outcome, Ok(Exit { code: 0 }));
    assert_eq!(text(&logs, Stream::Stdout), "$HOME * a;b\n");
}

#[tokio::test]
async fn a_shell_script_streams_both_streams_and_passes_its_exit_code_on() {
    let (outcome, logs) = run(
        policy(&["/bin/sh"]),
        request(
            json!({"Command": "echo out; echo err >&2; exit 3", "Shell": true}),
            None,
        ),
        CancellationToken::new(),
    )
    .await;
    assert_eq!(outcome, Ok(Exit { code: 3 }));
    assert_eq!(text(&logs, Stream::Stdout), "out\n");
    assert_eq!(text(&logs, Stream::Stderr), "err\n");
}

#[tokio::test]
async fn yes_is_killed_at_its_time_limit_with_its_output_capped() {
    let mut p = policy(&["/bin/sh"]);
    p.output_cap = 64 * 1024;
    let (outcome, logs) = run(
        p,
        request(
            json!({"Command": "yes", "Shell": true}),
            Some(Duration::from_secs(2)),
        ),
        CancellationToken::new(),
    )
    .await;
    assert_eq!(outcome, Err(ExecutorError::Timeout(Duration::from_secs(2))));
    let stdout = text(&logs, Stream::Stdout);
    let (kept, marker) = stdout
        .rsplit_once("[truncated ")
        .expect("a truncation marker");
    assert!(kept.len() <= 64 * 1024, "{} bytes kept", kept.len());
    assert!(kept.lines().all(|l| l == "y"), "only whole lines are kept");
    let dropped: u64 = marker.trim_end_matches(" bytes]\n").parse().unwrap();
    assert!(dropped > 0, "{marker}");
    assert_eq!(stdout.matches("[truncated ").count(), 1);
    let last = logs.last().unwrap();
    assert_eq!(last.stream, Stream::Stderr);
    assert_eq!(last.text, "killed: timeout after 2s\n");
}

#[tokio::test]
async fn cancelling_kills_the_whole_process_group() {
    let cancel = CancellationToken::new();
    let executor = ExecExecutor::new(policy(&["/bin/sh"]));
    let (sink, mut rx) = LogSink::channel();
    let running_task = tokio::spawn(executor.run(
        request(
            json!({"Command": "sleep 1000 & echo $!; wait", "Shell": true}),
            None,
        ),
        sink,
        cancel.clone(),
    ));
    // The background sleep's pid is the first line: it is running before the cancel.
    let first = rx.recv().await.expect("the script prints its child's pid");
    let pid: u32 = first.text.trim().parse().unwrap();
    assert!(running(pid));
    cancel.cancel();
    assert_eq!(running_task.await.unwrap(), Err(ExecutorError::Cancelled));
    assert!(ends_soon(pid), "the child {pid} outlived the cancel");
    let rest = drain(&mut rx);
    assert_eq!(rest.last().unwrap().text, "killed: cancelled\n");
}

#[tokio::test]
async fn children_left_behind_by_a_command_that_exits_are_killed() {
    let (outcome, logs) = run(
        policy(&["/bin/sh"]),
        request(
            json!({"Command": "sleep 1000 & echo $!", "Shell": true}),
            None,
        ),
        CancellationToken::new(),
    )
    .await;
    assert_eq!(outcome, Ok(Exit { code: 0 }));
    let pid: u32 = text(&logs, Stream::Stdout).trim().parse().unwrap();
    assert!(
        ends_soon(pid),
        "the background child {pid} was left running"
    );
}

#[tokio::test]
async fn without_a_user_the_command_runs_as_nobody() {
    if !is_root() {
        eprintln!(
            "skipping: running as another user than nobody needs root, and this test does not run as root"
        );
        return;
    }
    let p = ExecPolicy::enabled_with(&["/usr/bin/id", "/bin/id"]).unwrap();
    let (outcome, logs) = run(
        p,
        request(json!({"Command": "id", "Arguments": ["-u"]}), None),
        CancellationToken::new(),
    )
    .await;
    assert_eq!(outcome, Ok(Exit { code: 0 }));
    assert_eq!(text(&logs, Stream::Stdout), "65534\n");
}

#[test]
fn root_is_refused_unless_the_node_lists_it() {
    let spec = spec(json!({"Command": "/bin/echo", "User": "root"}));
    // The real default user (nobody), whoever runs the test.
    let mut p = ExecPolicy::enabled_with(&["/bin/echo"]).unwrap();
    let refusal = ExecExecutor::new(p.clone())
        .check_policy(&spec)
        .unwrap_err();
    assert!(
        refusal.starts_with("user root is not allowed for exec"),
        "{refusal}"
    );
    p.allowed_users.push("root".into());
    let listed = ExecExecutor::new(p).check_policy(&spec);
    if is_root() {
        assert_eq!(listed, Ok(()));
    } else {
        let err = listed.unwrap_err();
        assert!(err.contains("not root"), "{err}");
    }
}

#[test]
fn a_command_outside_the_allowlist_is_refused_at_admission_with_its_command_line() {
    let executor = ExecExecutor::new(policy(&["/usr/bin/systemctl restart [a-z-]+"]));
    let refusal = executor
        .check_policy(&spec(
            json!({"Command": "/bin/rm", "Arguments": ["-rf", "/tmp/x"]}),
        ))
        .unwrap_err();
    assert!(
        refusal.starts_with("not in exec allowlist: /bin/rm -rf /tmp/x;"),
        "{refusal}"
    );
}

#[tokio::test]
async fn a_refused_command_never_starts_even_without_admission() {
    let dir = tempfile::tempdir().unwrap();
    let marker = dir.path().join("x");
    std::fs::write(&marker, "keep").unwrap();
    let (outcome, _) = run(
        policy(&["/bin/echo"]),
        request(
            json!({"Command": "/bin/rm", "Arguments": ["-f", marker.display().to_string()]}),
            None,
        ),
        CancellationToken::new(),
    )
    .await;
    let err = outcome.unwrap_err();
    assert!(!err.is_retryable());
    assert!(err.to_string().contains("not in exec allowlist"), "{err}");
    assert!(marker.exists());
}

#[tokio::test]
async fn a_task_may_not_set_loader_variables() {
    let mut r = request(json!({"Command": "/bin/echo"}), None);
    r.env.insert("LD_PRELOAD".into(), "/tmp/evil.so".into());
    let (outcome, logs) = run(policy(&["/bin/echo"]), r, CancellationToken::new()).await;
    let err = outcome.unwrap_err().to_string();
    assert!(err.contains("sets LD_PRELOAD"), "{err}");
    assert!(logs.is_empty());
}

#[tokio::test]
async fn the_command_sees_the_task_env_and_the_nodes_path_only() {
    let mut r = request(json!({"Command": "env", "Shell": true}), None);
    r.env.insert("GREETING".into(), "hi".into());
    let (outcome, logs) = run(policy(&["/bin/sh"]), r, CancellationToken::new()).await;
    assert_eq!(outcome, Ok(Exit { code: 0 }));
    let env = text(&logs, Stream::Stdout);
    assert!(env.contains("GREETING=hi\n"), "{env}");
    assert!(
        env.contains(&format!("PATH={}\n", shoal_executors::exec::EXEC_PATH)),
        "{env}"
    );
    assert!(
        !env.contains("CARGO"),
        "the agent's environment leaked: {env}"
    );
}
