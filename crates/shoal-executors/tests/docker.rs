//! The `docker` engine against the node's real Docker daemon, with the locally built
//! `shoal-test/busybox:latest` image (`scripts/build-test-images.sh`; no registry is needed).
//! Every test skips with a printed reason when no daemon answers, and checks that no container
//! of its execution is left behind.
#![cfg(feature = "docker")]

use std::collections::{BTreeMap, HashSet};
use std::path::Path;
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use serde_json::{Value, json};
use shoal_executors::docker::{DockerExecutor, LABEL_EXECUTION_ID};
use shoal_executors::{
    ExecutionRequest, Executor, ExecutorError, Exit, LogChunk, LogSink, PreparedInput, Stream,
};
use shoal_types::{JobType, Network, NetworkType, Resources, ResultPath, SpecConfig};
use tempfile::TempDir;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{UnixListener, UnixStream};
use tokio::sync::mpsc::UnboundedReceiver;
use tokio_util::sync::CancellationToken;

const BUSYBOX: &str = "shoal-test/busybox:latest";

/// Whether a daemon answers; when one does, the test images are built (once per process).
fn docker_available() -> bool {
    static READY: OnceLock<Result<(), String>> = OnceLock::new();
    let ready = READY.get_or_init(|| {
        let info = Command::new("docker").arg("info").output();
        if !info.is_ok_and(|o| o.status.success()) {
            return Err("no Docker daemon answers `docker info`".to_string());
        }
        let script =
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scripts/build-test-images.sh");
        let status = Command::new("bash")
            .arg(&script)
            .status()
            .expect("run build-test-images.sh");
        assert!(status.success(), "{} failed: {status}", script.display());
        Ok(())
    });
    if let Err(reason) = ready {
        eprintln!("skipping: {reason}");
    }
    ready.is_ok()
}

macro_rules! require_docker {
    () => {
        if !docker_available() {
            return;
        }
    };
}

/// A unique execution id, so tests running side by side never touch each other's containers.
fn execution_id(test: &str) -> String {
    static N: AtomicU32 = AtomicU32::new(0);
    format!(
        "e-{test}-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

fn engine(params: Value) -> SpecConfig {
    serde_json::from_value(json!({ "Type": "docker", "Params": params })).unwrap()
}

fn sh(script: &str) -> SpecConfig {
    engine(json!({ "Image": BUSYBOX, "Entrypoint": ["sh", "-c"], "Parameters": [script] }))
}

struct Fixture {
    request: ExecutionRequest,
    dir: TempDir,
}

fn fixture(test: &str, engine: SpecConfig) -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let request = ExecutionRequest {
        job_id: format!("j-{test}"),
        execution_id: execution_id(test),
        job_type: JobType::Batch,
        engine,
        env: BTreeMap::new(),
        inputs: vec![],
        results_dir: dir.path().join("results"),
        result_paths: vec![],
        resources: Resources::default(),
        network: Network {
            kind: NetworkType::None,
            ..Default::default()
        },
        timeout: None,
    };
    Fixture { request, dir }
}

fn executor() -> DockerExecutor {
    DockerExecutor::connect().expect("docker executor")
}

/// Runs `request` to its end and cleans up after it, as the agent does.
async fn run(request: ExecutionRequest) -> (Result<Exit, ExecutorError>, Vec<LogChunk>) {
    let (sink, rx) = LogSink::channel();
    let (executor, id) = (executor(), request.execution_id.clone());
    let result = executor.run(request, sink, CancellationToken::new()).await;
    executor.clean_up(&id).await;
    (result, drain(rx))
}

fn drain(mut rx: UnboundedReceiver<LogChunk>) -> Vec<LogChunk> {
    let mut chunks = Vec::new();
    while let Ok(chunk) = rx.try_recv() {
        chunks.push(chunk);
    }
    chunks
}

/// The first chunk the sink receives. The bound only turns a hang into a failure: the
/// containers print their first line at once.
async fn first_chunk(rx: &mut UnboundedReceiver<LogChunk>) -> LogChunk {
    tokio::time::timeout(Duration::from_secs(120), rx.recv())
        .await
        .expect("no output reached the sink while the container ran")
        .expect("the sink closed before any output")
}

fn text(chunks: &[LogChunk], stream: Stream) -> String {
    chunks
        .iter()
        .filter(|c| c.stream == stream)
        .map(|c| c.text.as_str())
        .collect()
}

/// Ids of the execution's containers: all of them, or only running ones.
fn containers(execution_id: &str, all: bool) -> String {
    let filter = format!("label={LABEL_EXECUTION_ID}={execution_id}");
    let list = if all { "-aq" } else { "-q" };
    let out = Command::new("docker")
        .args(["ps", list, "--filter", &filter])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// Whether a container of the execution is running (created or ended ones do not count).
fn container_running(execution_id: &str) -> bool {
    !containers(execution_id, false).is_empty()
}

/// Whether a container of the execution exists, running or not.
fn container_exists(execution_id: &str) -> bool {
    !containers(execution_id, true).is_empty()
}

fn assert_no_container_left(execution_id: &str) {
    let left = containers(execution_id, true);
    assert!(
        left.is_empty(),
        "containers left for {execution_id}: {left}"
    );
}

#[tokio::test]
async fn stdout_and_stderr_are_kept_apart() {
    require_docker!();
    let f = fixture("streams", sh("echo to-out; echo to-err >&2"));
    let id = f.request.execution_id.clone();
    let (result, chunks) = run(f.request).await;
    assert_eq!(result.unwrap(), Exit { code: 0 });
    assert_eq!(text(&chunks, Stream::Stdout), "to-out\n");
    assert_eq!(text(&chunks, Stream::Stderr), "to-err\n");
    assert_no_container_left(&id);
}

#[tokio::test]
async fn a_run_leaves_its_ended_container_until_clean_up_removes_it() {
    require_docker!();
    let f = fixture("cleanup", sh("echo done"));
    let id = f.request.execution_id.clone();
    let executor = executor();
    let (sink, _rx) = LogSink::channel();
    let exit = executor
        .run(f.request, sink, CancellationToken::new())
        .await
        .unwrap();
    assert_eq!(exit, Exit { code: 0 });
    assert!(container_exists(&id), "the run removed its own container");
    assert!(
        !container_running(&id),
        "the run returned before its container ended"
    );
    executor.clean_up(&id).await;
    assert_no_container_left(&id);
    // A second clean-up of the same execution has nothing left to do.
    executor.clean_up(&id).await;
}

#[tokio::test]
async fn nonzero_exit_is_an_exit_code_not_an_error() {
    require_docker!();
    let f = fixture("exit3", sh("exit 3"));
    let id = f.request.execution_id.clone();
    let (result, _) = run(f.request).await;
    assert_eq!(result.unwrap(), Exit { code: 3 });
    assert_no_container_left(&id);
}

#[tokio::test]
async fn task_env_engine_env_and_working_directory_reach_the_container() {
    require_docker!();
    let mut f = fixture(
        "env",
        engine(json!({
            "Image": BUSYBOX,
            "Entrypoint": ["sh", "-c"],
            "Parameters": ["echo \"$FROM_TASK $FROM_ENGINE $SHARED $(pwd)\""],
            "EnvironmentVariables": ["FROM_ENGINE=engine", "SHARED=engine-wins"],
            "WorkingDirectory": "/tmp",
        })),
    );
    f.request.env = BTreeMap::from([
        ("FROM_TASK".to_string(), "task".to_string()),
        ("SHARED".to_string(), "task".to_string()),
    ]);
    let id = f.request.execution_id.clone();
    let (result, chunks) = run(f.request).await;
    assert_eq!(result.unwrap(), Exit { code: 0 });
    assert_eq!(
        text(&chunks, Stream::Stdout),
        "task engine engine-wins /tmp\n"
    );
    assert_no_container_left(&id);
}

#[tokio::test]
async fn files_written_to_a_result_path_appear_on_the_host() {
    require_docker!();
    let mut f = fixture("results", sh("echo hello > /outputs/greeting.txt"));
    f.request.result_paths = vec![ResultPath {
        name: "outputs".into(),
        path: "/outputs".into(),
    }];
    let id = f.request.execution_id.clone();
    let results = f.request.results_dir.clone();
    let (result, _) = run(f.request).await;
    assert_eq!(result.unwrap(), Exit { code: 0 });
    let written = std::fs::read_to_string(results.join("outputs/greeting.txt")).unwrap();
    assert_eq!(written, "hello\n");
    assert_no_container_left(&id);
}

#[tokio::test]
async fn read_only_input_cannot_be_written() {
    require_docker!();
    let mut f = fixture(
        "readonly",
        sh("cat /inputs/data.txt && echo changed > /inputs/data.txt"),
    );
    let input = f.dir.path().join("input");
    std::fs::create_dir_all(&input).unwrap();
    std::fs::write(input.join("data.txt"), "original\n").unwrap();
    f.request.inputs = vec![PreparedInput {
        host_path: input.clone(),
        target: "/inputs".into(),
        read_write: false,
    }];
    let id = f.request.execution_id.clone();
    let (result, chunks) = run(f.request).await;
    assert_ne!(result.unwrap().code, 0);
    assert_eq!(text(&chunks, Stream::Stdout), "original\n");
    assert!(
        text(&chunks, Stream::Stderr).contains("Read-only file system"),
        "{chunks:?}"
    );
    assert_eq!(
        std::fs::read_to_string(input.join("data.txt")).unwrap(),
        "original\n"
    );
    assert_no_container_left(&id);
}

#[tokio::test]
async fn memory_hog_over_its_limit_is_out_of_memory() {
    require_docker!();
    // dd reads into one 64 MiB buffer: the kernel charges it to the container at once, so the
    // limit is hit by one allocation (a pipeline can instead thrash for minutes just under it).
    let mut f = fixture(
        "oom",
        engine(
            json!({ "Image": BUSYBOX, "Parameters": ["dd", "if=/dev/zero", "of=/dev/null", "bs=64M", "count=1"] }),
        ),
    );
    f.request.resources.memory = 16 << 20;
    let id = f.request.execution_id.clone();
    let (result, _) = run(f.request).await;
    assert_eq!(
        result.unwrap_err(),
        ExecutorError::OutOfMemory {
            limit: "16 MiB".into()
        }
    );
    assert_no_container_left(&id);
}

#[tokio::test]
async fn network_none_leaves_only_loopback() {
    require_docker!();
    let f = fixture("nonet", sh("cat /proc/net/dev"));
    let id = f.request.execution_id.clone();
    let (result, chunks) = run(f.request).await;
    assert_eq!(result.unwrap(), Exit { code: 0 });
    let interfaces: Vec<String> = text(&chunks, Stream::Stdout)
        .lines()
        .filter_map(|l| l.split_once(':').map(|(name, _)| name.trim().to_string()))
        .filter(|name| !name.contains('|'))
        .collect();
    assert_eq!(interfaces, ["lo"]);
    assert_no_container_left(&id);
}

#[tokio::test]
async fn default_network_has_an_interface_besides_loopback() {
    require_docker!();
    let mut f = fixture("defaultnet", sh("cat /proc/net/dev"));
    f.request.network.kind = NetworkType::Default;
    let id = f.request.execution_id.clone();
    let (result, chunks) = run(f.request).await;
    assert_eq!(result.unwrap(), Exit { code: 0 });
    assert!(
        text(&chunks, Stream::Stdout).contains("eth0:"),
        "{chunks:?}"
    );
    assert_no_container_left(&id);
}

#[tokio::test]
async fn time_limit_stops_the_container_with_timeout() {
    require_docker!();
    let mut f = fixture("timeout", sh("sleep 600"));
    f.request.timeout = Some(Duration::from_secs(1));
    let id = f.request.execution_id.clone();
    let (result, _) = run(f.request).await;
    assert_eq!(
        result.unwrap_err(),
        ExecutorError::Timeout(Duration::from_secs(1))
    );
    assert_no_container_left(&id);
}

#[tokio::test]
async fn cancel_stops_the_container_with_cancelled() {
    require_docker!();
    let f = fixture("cancel", sh("echo ready; sleep 600"));
    let id = f.request.execution_id.clone();
    let (sink, mut rx) = LogSink::channel();
    let cancel = CancellationToken::new();
    let executor = executor();
    let running = tokio::spawn(executor.run(f.request, sink, cancel.clone()));
    let first = first_chunk(&mut rx).await;
    assert_eq!(first.text, "ready\n");
    cancel.cancel();
    assert_eq!(
        running.await.unwrap().unwrap_err(),
        ExecutorError::Cancelled
    );
    assert!(
        !container_running(&id),
        "the run returned before its container stopped"
    );
    executor.clean_up(&id).await;
    assert_no_container_left(&id);
}

#[tokio::test]
async fn output_is_forwarded_while_the_container_runs() {
    require_docker!();
    // The container cannot exit before the test creates /signal/go, which it does only after
    // the first line has reached the sink.
    let mut f = fixture(
        "live",
        sh("echo first; while [ ! -e /signal/go ]; do sleep 0.1; done; echo second"),
    );
    let signal = f.dir.path().join("signal");
    std::fs::create_dir_all(&signal).unwrap();
    f.request.inputs = vec![PreparedInput {
        host_path: signal.clone(),
        target: "/signal".into(),
        read_write: true,
    }];
    let id = f.request.execution_id.clone();
    let (sink, mut rx) = LogSink::channel();
    let executor = executor();
    let running = tokio::spawn(executor.run(f.request, sink, CancellationToken::new()));
    let first = first_chunk(&mut rx).await;
    assert_eq!(
        first,
        LogChunk {
            stream: Stream::Stdout,
            text: "first\n".into()
        }
    );
    assert!(!running.is_finished());
    std::fs::write(signal.join("go"), "").unwrap();
    assert_eq!(running.await.unwrap().unwrap(), Exit { code: 0 });
    assert_eq!(text(&drain(rx), Stream::Stdout), "second\n");
    executor.clean_up(&id).await;
    assert_no_container_left(&id);
}

#[tokio::test]
async fn missing_image_is_a_user_error_naming_it() {
    require_docker!();
    let f = fixture(
        "noimage",
        engine(json!({ "Image": "shoal-test/does-not-exist:1" })),
    );
    let id = f.request.execution_id.clone();
    let (result, _) = run(f.request).await;
    let err = result.unwrap_err();
    assert!(!err.is_retryable(), "{err}");
    let message = err.to_string();
    assert!(
        message.contains("\"shoal-test/does-not-exist:1\" not found locally"),
        "{message}"
    );
    assert!(message.contains("docker load"), "{message}");
    assert_no_container_left(&id);
}

#[tokio::test]
async fn prepare_uses_a_present_image_without_pulling() {
    require_docker!();
    let lines = std::sync::Mutex::new(Vec::new());
    executor()
        .ensure_image(&engine(json!({ "Image": BUSYBOX })), |l| {
            lines.lock().unwrap().push(l)
        })
        .await
        .unwrap();
    assert!(lines.lock().unwrap().is_empty());
}

#[tokio::test]
async fn image_for_another_platform_is_refused_naming_its_platform() {
    require_docker!();
    let f = fixture(
        "platform",
        engine(json!({ "Image": "shoal-test/foreign-arch:latest" })),
    );
    let id = f.request.execution_id.clone();
    let (result, _) = run(f.request).await;
    let message = result.unwrap_err().to_string();
    let info = executor().probe().await.unwrap();
    assert!(message.contains("is built for linux/"), "{message}");
    assert!(
        message.contains(&format!("this node runs {}", info.platform())),
        "{message}"
    );
    assert_no_container_left(&id);
}

#[tokio::test]
async fn probe_reports_the_daemon_version_and_platform() {
    require_docker!();
    let info = executor().probe().await.unwrap();
    assert!(!info.version.is_empty());
    assert_eq!(info.os, "linux");
    assert!(!info.arch.is_empty());
}

#[tokio::test]
async fn probe_of_an_absent_daemon_says_why() {
    let missing = DockerExecutor::with_host("unix:///nonexistent/docker.sock").unwrap();
    let reason = missing.probe().await.unwrap_err();
    assert!(reason.contains("does not answer"), "{reason}");
    assert!(reason.contains("DOCKER_HOST"), "{reason}");
}

#[tokio::test]
async fn cleanup_removes_managed_containers_except_those_kept() {
    require_docker!();
    // A node id of its own keeps this cleanup away from the containers of tests running beside it.
    let node = execution_id("cleanup-node");
    let (kept, orphan) = (execution_id("kept"), execution_id("orphan"));
    for exec in [&kept, &orphan] {
        let status = Command::new("docker")
            .args(["create", "--label", "shoal.managed=true", "--label"])
            .arg(format!("shoal.node-id={node}"))
            .args([
                "--label",
                &format!("{LABEL_EXECUTION_ID}={exec}"),
                BUSYBOX,
                "true",
            ])
            .output()
            .unwrap();
        assert!(status.status.success(), "{status:?}");
    }
    let removed = executor()
        .with_node_id(node.clone())
        .cleanup_orphans(&HashSet::from([kept.clone()]))
        .await
        .unwrap();
    assert_eq!(removed, vec![orphan.clone()]);
    assert_no_container_left(&orphan);
    let left = Command::new("docker")
        .args([
            "ps",
            "-aq",
            "--filter",
            &format!("label={LABEL_EXECUTION_ID}={kept}"),
        ])
        .output()
        .unwrap();
    let left = String::from_utf8_lossy(&left.stdout).trim().to_string();
    assert!(!left.is_empty(), "the kept container was removed");
    Command::new("docker")
        .args(["rm", "-f", &left])
        .output()
        .unwrap();
}

#[tokio::test]
async fn missing_executable_is_a_user_error() {
    require_docker!();
    let f = fixture(
        "noexec",
        engine(json!({ "Image": BUSYBOX, "Entrypoint": ["/bin/no-such-program"] })),
    );
    let id = f.request.execution_id.clone();
    let (result, _) = run(f.request).await;
    let err = result.unwrap_err();
    assert!(!err.is_retryable(), "{err}");
    assert!(err.to_string().contains("no-such-program"), "{err}");
    assert_no_container_left(&id);
}

#[tokio::test]
async fn image_removed_after_preparing_is_fetched_again_and_named() {
    require_docker!();
    let image = format!("shoal-test/removed-{}:latest", execution_id("tag"));
    let tagged = Command::new("docker")
        .args(["tag", BUSYBOX, &image])
        .output()
        .unwrap();
    assert!(tagged.status.success(), "{tagged:?}");
    let f = fixture(
        "removed",
        engine(json!({ "Image": image, "Parameters": ["true"] })),
    );
    let id = f.request.execution_id.clone();
    let executor = executor();
    executor
        .prepare(&f.request, Arc::new(|_| {}))
        .await
        .unwrap();
    let untagged = Command::new("docker")
        .args(["rmi", &image])
        .output()
        .unwrap();
    assert!(untagged.status.success(), "{untagged:?}");
    // Preparing again moments later trusts the image is still there; the run finds out.
    executor
        .prepare(&f.request, Arc::new(|_| {}))
        .await
        .unwrap();
    let (sink, _rx) = LogSink::channel();
    let err = executor
        .run(f.request, sink, CancellationToken::new())
        .await
        .unwrap_err();
    // The run tried the pull an unprepared run makes (no registry serves this name), so the
    // message is the one about a missing image, not a refusal of the container's spec.
    let message = err.to_string();
    assert!(message.contains("not found locally"), "{message}");
    assert!(message.contains("docker load"), "{message}");
    executor.clean_up(&id).await;
    assert_no_container_left(&id);
}

/// The Docker API requests an executor makes, as `METHOD /path` with the API version, ids,
/// image names and query strings taken out, recorded by a unix-socket proxy in front of the
/// daemon. Returns the `DOCKER_HOST` to give the executor, or `None` when the daemon is not
/// on a unix socket.
async fn record_daemon_requests() -> Option<(String, Arc<Mutex<Vec<String>>>, TempDir)> {
    let daemon = match std::env::var("DOCKER_HOST") {
        Ok(host) if !host.is_empty() => host.strip_prefix("unix://")?.to_string(),
        _ => "/var/run/docker.sock".to_string(),
    };
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("docker.sock");
    let listener = UnixListener::bind(&socket).unwrap();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let log = seen.clone();
    tokio::spawn(async move {
        while let Ok((client, _)) = listener.accept().await {
            let upstream = UnixStream::connect(&daemon).await.unwrap();
            tokio::spawn(forward(client, upstream, log.clone()));
        }
    });
    Some((format!("unix://{}", socket.display()), seen, dir))
}

/// Copies one connection both ways, noting each request line the client sends.
async fn forward(client: UnixStream, upstream: UnixStream, log: Arc<Mutex<Vec<String>>>) {
    let (mut from_client, mut to_client) = client.into_split();
    let (mut from_daemon, mut to_daemon) = upstream.into_split();
    tokio::spawn(async move { tokio::io::copy(&mut from_daemon, &mut to_client).await });
    let mut buf = vec![0u8; 16 * 1024];
    let mut pending = Vec::new();
    loop {
        let n = match from_client.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        if to_daemon.write_all(&buf[..n]).await.is_err() {
            break;
        }
        pending.extend_from_slice(&buf[..n]);
        while let Some(end) = pending.windows(2).position(|w| w == b"\r\n") {
            let line = String::from_utf8_lossy(&pending[..end]).into_owned();
            pending.drain(..end + 2);
            if let Some(request) = request_line(&line) {
                log.lock().unwrap().push(request);
            }
        }
    }
    let _ = to_daemon.shutdown().await;
}

/// `POST /containers/{id}/start` out of `POST /v1.41/containers/3f2a...?x=y HTTP/1.1`; a
/// request body without a line end may precede it on the same line.
fn request_line(line: &str) -> Option<String> {
    let line = line.strip_suffix(" HTTP/1.1")?;
    let start = ["GET /", "POST /", "DELETE /", "PUT /", "HEAD /"]
        .iter()
        .filter_map(|m| line.rfind(m))
        .max()?;
    let (method, target) = line[start..].split_once(' ')?;
    let path = target.split('?').next().unwrap_or_default();
    let mut parts: Vec<&str> = path.split('/').filter(|p| !p.is_empty()).collect();
    let versioned = |p: &&str| {
        p.strip_prefix('v')
            .is_some_and(|v| v.starts_with(|c: char| c.is_ascii_digit()))
    };
    if parts.first().is_some_and(versioned) {
        parts.remove(0);
    }
    let parts: Vec<String> = match parts.as_slice() {
        ["images", .., "json"] => vec!["images".into(), "{image}".into(), "json".into()],
        parts => parts
            .iter()
            .map(|p| {
                if p.len() == 64 && p.chars().all(|c| c.is_ascii_hexdigit()) {
                    "{id}".to_string()
                } else {
                    p.to_string()
                }
            })
            .collect(),
    };
    Some(format!("{method} /{}", parts.join("/")))
}

#[tokio::test]
async fn prepared_execution_makes_the_same_daemon_calls_as_a_direct_client() {
    require_docker!();
    let Some((host, seen, _dir)) = record_daemon_requests().await else {
        eprintln!("skipping: the daemon is not on a unix socket");
        return;
    };
    let executor = DockerExecutor::with_host(&host).unwrap();
    let mut f = fixture("calls", sh("echo out"));
    f.request.resources.memory = 64 << 20;
    let id = f.request.execution_id.clone();
    executor
        .prepare(&f.request, Arc::new(|_| {}))
        .await
        .unwrap();
    let (sink, rx) = LogSink::channel();
    let exit = executor
        .run(f.request, sink, CancellationToken::new())
        .await
        .unwrap();
    assert_eq!(exit.code, 0);
    assert_eq!(text(&drain(rx), Stream::Stdout), "out\n");
    executor.clean_up(&id).await;
    let mut calls: Vec<String> = seen
        .lock()
        .unwrap()
        .iter()
        .filter(|c| !c.ends_with("/version"))
        .cloned()
        .collect();
    calls.sort();
    // Preparing inspects the image once; the run then does what `docker run --rm` does:
    // create, attach to the output, start, wait, read the exit state; clean-up removes.
    assert_eq!(
        calls,
        [
            "DELETE /containers/{id}",
            "GET /containers/{id}/json",
            "GET /images/{image}/json",
            "POST /containers/create",
            "POST /containers/{id}/attach",
            "POST /containers/{id}/start",
            "POST /containers/{id}/wait",
        ]
    );
    assert_no_container_left(&id);

    // The next execution of the same image, moments later, does not ask about the image.
    seen.lock().unwrap().clear();
    let next = fixture("calls-again", sh("true"));
    executor
        .prepare(&next.request, Arc::new(|_| {}))
        .await
        .unwrap();
    let asked: Vec<String> = seen.lock().unwrap().clone();
    assert!(
        !asked.iter().any(|c| c.contains("/images/")),
        "asked again: {asked:?}"
    );
}
