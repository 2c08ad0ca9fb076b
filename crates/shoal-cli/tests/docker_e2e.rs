//! Docker jobs end to end: the real `shoal` binary as a hybrid node (orchestrator and compute in
//! one process, dialling itself over its real link), the real Docker daemon and the locally
//! built `shoal-test/busybox` image (`scripts/build-test-images.sh`). Tests that need the
//! daemon skip with a printed reason when none answers. Every node gets its own id, and every
//! test ends by checking that no container labelled with that node is left.

use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_shoal");
const BUSYBOX: &str = "shoal-test/busybox:latest";

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A child process killed when the test ends, pass or fail.
struct Proc(Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

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
        let status = Command::new("bash").arg(&script).status().unwrap();
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

/// One hybrid node (`serve --orchestrator --compute`) on a free port, with its own data dir
/// and node id.
struct Node {
    port: u16,
    name: String,
    data: tempfile::TempDir,
    _proc: Proc,
}

impl Node {
    fn start(test: &str, extra: &[&str], env: &[(&str, &str)]) -> Node {
        let data = tempfile::tempdir().unwrap();
        let port = free_port();
        let name = format!("n-{test}-{}", std::process::id());
        let child = Command::new(BIN)
            .args(["serve", "--orchestrator", "--compute", "--name", &name])
            .args(["--allow-anonymous", "write"])
            .args(["--api-host", "127.0.0.1", "--api-port", &port.to_string()])
            .arg("--data-dir")
            .arg(data.path())
            .args(extra)
            .envs(env.iter().copied())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("shoal starts");
        let node = Node {
            port,
            name,
            data,
            _proc: Proc(child),
        };
        eventually("the compute node to connect", || {
            let nodes = node.json(&["node", "list", "--output", "json"]);
            nodes
                .as_array()
                .is_some_and(|a| a.iter().any(|n| n["Connection"] == "CONNECTED"))
        });
        node
    }

    fn shoal(&self, args: &[&str]) -> Output {
        Command::new(BIN)
            .args([
                "--api-host",
                "127.0.0.1",
                "--api-port",
                &self.port.to_string(),
            ])
            .args(args)
            .output()
            .expect("shoal runs")
    }

    fn json(&self, args: &[&str]) -> Value {
        serde_json::from_slice(&self.shoal(args).stdout).unwrap_or_default()
    }

    /// Submits with `--id-only` (put after the two command words, before any `--`): returns
    /// the job id and how the CLI exited.
    fn submit(&self, args: &[&str]) -> (String, Output) {
        let out = self.shoal(&[&args[..2], &["--id-only"], &args[2..]].concat());
        let id = String::from_utf8_lossy(&out.stdout)
            .lines()
            .next()
            .unwrap_or_default()
            .trim()
            .to_string();
        assert!(id.starts_with("j-"), "no job id: {}", text(&out));
        (id, out)
    }

    fn describe(&self, job: &str) -> String {
        text(&self.shoal(&["job", "describe", job]))
    }

    fn executions(&self, job: &str) -> Vec<Value> {
        self.json(&["job", "executions", job, "--output", "json"])
            .as_array()
            .cloned()
            .unwrap_or_default()
    }

    /// Containers on the daemon labelled with this node, running or not.
    fn containers(&self, extra_label: Option<&str>) -> Vec<String> {
        let mut args = vec![
            "ps".to_string(),
            "-aq".into(),
            "--filter".into(),
            format!("label=shoal.node-id={}", self.name),
        ];
        if let Some(l) = extra_label {
            args.extend(["--filter".into(), format!("label={l}")]);
        }
        let out = Command::new("docker").args(&args).output().unwrap();
        String::from_utf8_lossy(&out.stdout)
            .split_whitespace()
            .map(str::to_string)
            .collect()
    }

    /// Every container of this node is removed; the agent removes one just after it has
    /// reported the end of its execution, so this waits (bounded) for that.
    fn assert_no_container_left(&self) {
        eventually(
            &format!("the containers of {} to be removed", self.name),
            || self.containers(None).is_empty(),
        );
    }
}

/// Waits (bounded) until `cond` holds; process start-up and container state have no event a
/// test can wait on.
fn eventually(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

fn write_job(dir: &Path, yaml: &str) -> PathBuf {
    let path = dir.join("job.yaml");
    std::fs::write(&path, yaml).unwrap();
    path
}

#[test]
fn docker_run_prints_output_and_passes_the_exit_code_on() {
    require_docker!();
    let node = Node::start("dockerrun", &[], &[]);
    let out = node.shoal(&[
        "docker",
        "run",
        BUSYBOX,
        "--",
        "sh",
        "-c",
        "echo hello from busybox; echo to-err >&2",
    ]);
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "hello from busybox\n",
        "{}",
        text(&out)
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("to-err\n"));

    let out = node.shoal(&["docker", "run", BUSYBOX, "--", "sh", "-c", "exit 3"]);
    assert_eq!(out.status.code(), Some(3), "{}", text(&out));
    node.assert_no_container_left();
}

#[test]
fn job_file_mounts_a_local_directory_read_only_and_collects_result_paths() {
    require_docker!();
    let shared = tempfile::tempdir().unwrap();
    let input = shared.path().join("data");
    std::fs::create_dir_all(&input).unwrap();
    std::fs::write(input.join("in.txt"), "from the host\n").unwrap();
    let allow = input.to_str().unwrap().to_string();
    let node = Node::start("jobfile", &["--allow-path", &allow], &[]);
    let job = write_job(
        shared.path(),
        &format!(
            r#"
Name: mounts
Type: batch
Count: 1
Tasks:
  - Name: main
    Engine:
      Type: docker
      Params:
        Image: {BUSYBOX}
        Entrypoint: ["sh", "-c"]
        Parameters:
          - cat /inputs/in.txt; if echo x > /inputs/new.txt; then echo writable; else echo read-only; fi; tr a-z A-Z < /inputs/in.txt > /outputs/upper.txt
    InputSources:
      - Target: /inputs
        Source:
          Type: localDirectory
          Params:
            SourcePath: {allow}
    ResultPaths:
      - Name: outputs
        Path: /outputs
"#
        ),
    );
    let (id, out) = node.submit(&["job", "run", job.to_str().unwrap()]);
    assert!(out.status.success(), "{}", text(&out));
    let execs = node.executions(&id);
    assert_eq!(execs.len(), 1, "{execs:?}");
    let exec = execs[0]["ID"].as_str().unwrap();
    let stdout = execs[0]["RunOutput"]["Stdout"].as_str().unwrap_or_default();
    assert_eq!(stdout, "from the host\nread-only\n", "{execs:?}");
    assert!(!input.join("new.txt").exists());
    let collected = node
        .data
        .path()
        .join("compute/executions")
        .join(exec)
        .join("results/outputs/upper.txt");
    assert_eq!(
        std::fs::read_to_string(&collected).unwrap(),
        "FROM THE HOST\n"
    );
    node.assert_no_container_left();
}

#[test]
fn memory_limit_fails_the_job_with_out_of_memory_in_describe() {
    require_docker!();
    let node = Node::start("oom", &[], &[]);
    // dd reads into one 64 MiB buffer: the kernel charges it to the container at once, so the
    // limit is hit by one allocation (a pipeline can instead thrash for minutes just under it).
    let (id, out) = node.submit(&[
        "docker",
        "run",
        "--memory",
        "16Mi",
        BUSYBOX,
        "--",
        "dd",
        "if=/dev/zero",
        "of=/dev/null",
        "bs=64M",
        "count=1",
    ]);
    assert!(!out.status.success(), "{}", text(&out));
    let described = node.describe(&id);
    assert!(described.contains("State         = Failed"), "{described}");
    assert!(
        described.contains("out of memory: limit 16 MiB"),
        "{described}"
    );
    // A user's limit is not a node failure: not retried elsewhere or again.
    assert_eq!(node.executions(&id).len(), 1);
    node.assert_no_container_left();
}

#[test]
fn job_stop_stops_and_removes_the_container() {
    require_docker!();
    let node = Node::start("stop", &[], &[]);
    let (id, out) = node.submit(&[
        "docker",
        "run",
        "--wait=false",
        BUSYBOX,
        "--",
        "sleep",
        "600",
    ]);
    assert!(out.status.success(), "{}", text(&out));
    let label = format!("shoal.job-id={id}");
    eventually("the job's container to run", || {
        !node.containers(Some(&label)).is_empty()
    });
    let out = node.shoal(&["job", "stop", &id]);
    assert!(out.status.success(), "{}", text(&out));
    eventually("the container to be removed", || {
        node.containers(Some(&label)).is_empty()
    });
    eventually("the execution to end cancelled", || {
        node.executions(&id)
            .first()
            .is_some_and(|e| e["ComputeState"]["StateType"] == 11)
    });
    node.assert_no_container_left();
}

#[test]
fn networked_job_is_refused_by_a_node_that_rejects_them() {
    require_docker!();
    let node = Node::start("nonet", &["--reject-networked-jobs"], &[]);
    let (id, out) = node.submit(&[
        "docker",
        "run",
        "--network",
        "host",
        BUSYBOX,
        "--",
        "echo",
        "should not run",
    ]);
    assert!(!out.status.success(), "{}", text(&out));
    let described = node.describe(&id);
    assert!(described.contains("refuses networked jobs"), "{described}");
    assert!(!described.contains("should not run\n"), "{described}");

    // The same node still runs jobs without a network.
    let out = node.shoal(&["docker", "run", BUSYBOX, "--", "echo", "offline"]);
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(String::from_utf8_lossy(&out.stdout), "offline\n");
    node.assert_no_container_left();
}

#[test]
fn node_without_a_docker_daemon_says_why_and_docker_jobs_fail_at_submit() {
    let node = Node::start(
        "nodaemon",
        &[],
        &[("DOCKER_HOST", "unix:///nonexistent.sock")],
    );
    let why = "docker daemon at unix:///nonexistent.sock does not answer";
    let info = node.json(&["node", "describe", &node.name, "--output", "json"]);
    let compute = &info["Info"]["ComputeNodeInfo"];
    let engines: Vec<&str> = compute["ExecutionEngines"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert!(!engines.contains(&"docker"), "{engines:?}");
    let reason = compute["UnavailableEngines"]["docker"]
        .as_str()
        .unwrap_or_default();
    assert!(reason.contains(why), "{info}");
    let yaml = text(&node.shoal(&["node", "describe", &node.name]));
    assert!(yaml.contains(why), "{yaml}");

    let out = node.shoal(&["docker", "run", BUSYBOX, "--", "true"]);
    assert!(!out.status.success(), "{}", text(&out));
    assert!(text(&out).contains(why), "{}", text(&out));
}

/// Debian's `docker-registry` serving on a free 127.0.0.1 port (which Docker treats as an
/// insecure registry it may use over plain HTTP), storing in a temp dir.
struct Registry {
    addr: String,
    _dir: tempfile::TempDir,
    _proc: Proc,
}

impl Registry {
    fn start() -> Option<Registry> {
        let binary = ["/usr/bin/docker-registry", "/usr/sbin/docker-registry"]
            .into_iter()
            .find(|p| Path::new(p).exists());
        let Some(binary) = binary else {
            eprintln!(
                "skipping: docker-registry is not installed (Debian package docker-registry; .ci/run installs it)"
            );
            return None;
        };
        let dir = tempfile::tempdir().unwrap();
        let addr = format!("127.0.0.1:{}", free_port());
        let config = dir.path().join("config.yml");
        std::fs::write(
            &config,
            format!(
                "version: 0.1\nlog:\n  level: warn\nstorage:\n  filesystem:\n    rootdirectory: {}\nhttp:\n  addr: {addr}\n",
                dir.path().join("data").display()
            ),
        )
        .unwrap();
        let child = Command::new(binary)
            .arg("serve")
            .arg(&config)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("docker-registry starts");
        let registry = Registry {
            addr,
            _dir: dir,
            _proc: Proc(child),
        };
        eventually("the registry to listen", || {
            TcpStream::connect(&registry.addr).is_ok()
        });
        Some(registry)
    }
}

fn docker(args: &[&str]) {
    let out = Command::new("docker").args(args).output().unwrap();
    assert!(out.status.success(), "docker {args:?}: {}", text(&out));
}

#[test]
fn missing_image_is_pulled_in_a_visible_preparing_phase() {
    require_docker!();
    let Some(registry) = Registry::start() else {
        return;
    };
    let image = format!(
        "{}/shoal-test/busybox:pull-{}",
        registry.addr,
        std::process::id()
    );
    docker(&["tag", BUSYBOX, &image]);
    docker(&["push", &image]);
    docker(&["rmi", &image]);

    let node = Node::start("pull", &[], &[]);
    let (id, out) = node.submit(&["docker", "run", &image, "--", "echo", "pulled and ran"]);
    let _ = Command::new("docker").args(["rmi", &image]).output();
    assert!(out.status.success(), "{}", text(&out));
    let execs = node.executions(&id);
    assert_eq!(
        execs[0]["RunOutput"]["Stdout"].as_str(),
        Some("pulled and ran\n")
    );
    let history = node.json(&["job", "history", &id, "--output", "json"]);
    let events: Vec<String> = history
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|h| h["Event"]["Message"].as_str().map(str::to_string))
        .collect();
    let preparing = events
        .iter()
        .position(|m| m.starts_with(&format!("preparing: pulling {image}: ")))
        .unwrap_or_else(|| panic!("no preparing event in {events:?}"));
    let running = events
        .iter()
        .position(|m| m == "execution running")
        .unwrap_or_else(|| panic!("no running event in {events:?}"));
    assert!(preparing < running, "{events:?}");
    node.assert_no_container_left();
}

#[test]
fn image_missing_from_the_registry_fails_once_naming_it() {
    require_docker!();
    let Some(registry) = Registry::start() else {
        return;
    };
    let image = format!("{}/shoal-test/does-not-exist:1", registry.addr);
    let node = Node::start("nopull", &[], &[]);
    let (id, out) = node.submit(&["docker", "run", &image, "--", "true"]);
    assert!(!out.status.success(), "{}", text(&out));
    let described = node.describe(&id);
    assert!(
        described.contains(&format!(
            "image {image:?} not found locally and could not be pulled"
        )),
        "{described}"
    );
    assert_eq!(node.executions(&id).len(), 1, "{described}");
    node.assert_no_container_left();
}

#[test]
fn a_secret_reaches_the_container_but_never_the_store_describe_or_logs() {
    require_docker!();
    let secrets = tempfile::tempdir().unwrap();
    let value = "s3cr3t-hunter2-value";
    std::fs::write(secrets.path().join("db-pass"), format!("{value}\n")).unwrap();
    let node = Node::start(
        "secret",
        &["--secrets-dir", secrets.path().to_str().unwrap()],
        &[],
    );
    let out = node.shoal(&[
        "docker",
        "run",
        "-e",
        "DB_PASS=secret:db-pass",
        BUSYBOX,
        "--",
        "sh",
        "-c",
        "echo len=${#DB_PASS}; echo pass=$DB_PASS",
    ]);
    assert!(out.status.success(), "{}", text(&out));
    let printed = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        printed.contains("len=20"),
        "the container got the value: {printed}"
    );
    assert!(
        printed.contains("pass=***"),
        "the value is masked: {printed}"
    );
    assert!(!printed.contains(value), "{printed}");

    let jobs = node.json(&["job", "list", "--output", "json"]);
    let id = jobs[0]["ID"].as_str().expect("the job").to_string();
    let described = text(&node.shoal(&["job", "describe", &id, "--output", "json"]));
    assert!(described.contains("secret:db-pass"), "{described}");
    let logs = text(&node.shoal(&["job", "logs", &id]));
    assert!(logs.contains("pass=***"), "{logs}");
    // Neither the orchestrator's nor the node's files hold the value anywhere.
    for entry in walk(node.data.path()) {
        let bytes = std::fs::read(&entry).unwrap_or_default();
        assert!(
            !bytes.windows(value.len()).any(|w| w == value.as_bytes()),
            "{} holds the secret",
            entry.display()
        );
    }

    // A missing secret fails the job naming the variable and the file to create.
    let out = node.shoal(&[
        "docker",
        "run",
        "-e",
        "K=secret:nope",
        BUSYBOX,
        "--",
        "true",
    ]);
    assert!(!out.status.success());
    assert!(
        text(&out).contains("env K: secret \"nope\" is not found"),
        "{}",
        text(&out)
    );
    node.assert_no_container_left();
}

/// Every file under `dir`.
fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let path = entry.path();
        if path.is_dir() {
            files.extend(walk(&path));
        } else {
            files.push(path);
        }
    }
    files
}
