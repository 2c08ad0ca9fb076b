//! Helpers shared by the process-level tests: the real `shoal` binary, started and driven as a
//! user would. Each test binary uses its own subset, hence the `dead_code` allowance.
#![allow(dead_code)]

use std::ffi::OsStr;
use std::net::TcpListener;
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

/// The binary under test.
pub const BIN: &str = env!("CARGO_BIN_EXE_shoal");

/// A free TCP port on 127.0.0.1.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A `shoal` process, killed with SIGKILL when dropped.
pub struct Proc(pub Child);

impl Proc {
    /// SIGKILL now, and reap.
    pub fn kill9(&mut self) {
        self.0.kill().unwrap();
        self.0.wait().unwrap();
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts `shoal ARGS --data-dir DATA` with its output discarded.
pub fn spawn(args: &[impl AsRef<OsStr>], data: &Path) -> Proc {
    spawn_env(args, data, &[])
}

/// [`spawn`] with extra environment variables (e.g. AWS credentials for an agent).
pub fn spawn_env(args: &[impl AsRef<OsStr>], data: &Path, env: &[(&str, String)]) -> Proc {
    let child = Command::new(BIN)
        .args(args)
        .arg("--data-dir")
        .arg(data)
        .envs(env.iter().map(|(k, v)| (k, v)))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("shoal starts");
    Proc(child)
}

/// Runs a client command against the API on `port`.
pub fn shoal(port: u16, args: &[&str]) -> Output {
    shoal_env(port, args, &[])
}

/// [`shoal`] with extra environment variables.
pub fn shoal_env(port: u16, args: &[&str], env: &[(&str, String)]) -> Output {
    Command::new(BIN)
        .args(["--api-port", &port.to_string()])
        .args(args)
        .envs(env.iter().map(|(k, v)| (k, v)))
        .output()
        .expect("shoal runs")
}

/// A client command's `--output json` answer (null when it printed none).
pub fn json(port: u16, args: &[&str]) -> serde_json::Value {
    let mut all = args.to_vec();
    all.extend(["--output", "json"]);
    let out = shoal(port, &all);
    serde_json::from_slice(&out.stdout).unwrap_or_default()
}

/// Waits (bounded) until `cond` holds; processes have no event to wait on.
pub fn eventually(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// How many nodes the orchestrator on `port` shows connected.
pub fn connected_nodes(port: u16) -> usize {
    connected_nodes_env(port, &[])
}

/// [`connected_nodes`] with extra environment variables (the caller's API key).
pub fn connected_nodes_env(port: u16, env: &[(&str, String)]) -> usize {
    let out = shoal_env(port, &["node", "list", "--output", "json"], env);
    serde_json::from_slice::<serde_json::Value>(&out.stdout)
        .ok()
        .and_then(|v| v.as_array().cloned())
        .map_or(0, |a| {
            a.iter().filter(|n| n["Connection"] == "CONNECTED").count()
        })
}

/// The admin API key an orchestrator with data dir `dir` made at its first start (waiting
/// for it to be written).
pub fn admin_key(dir: &Path) -> String {
    let file = dir.join("orchestrator/admin-api-key");
    eventually("the admin key", || file.exists());
    std::fs::read_to_string(&file).unwrap().trim().to_string()
}

/// stdout then stderr, for assertion messages.
pub fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// A WASI module that sleeps `ms` milliseconds, then prints `slept`.
pub fn sleep_wat(ms: u64) -> String {
    let ns = ms * 1_000_000;
    format!(
        r#"(module
  (import "wasi_snapshot_preview1" "poll_oneoff" (func $poll (param i32 i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "fd_write" (func $write (param i32 i32 i32 i32) (result i32)))
  (memory (export "memory") 1)
  (data (i32.const 200) "slept\n")
  (func (export "_start")
    ;; one subscription at 0: tag 0 (clock) at 8, monotonic clock at 16, relative timeout at 24
    (i32.store8 (i32.const 8) (i32.const 0))
    (i32.store (i32.const 16) (i32.const 1))
    (i64.store (i32.const 24) (i64.const {ns}))
    (drop (call $poll (i32.const 0) (i32.const 64) (i32.const 1) (i32.const 128)))
    (i32.store (i32.const 300) (i32.const 200))
    (i32.store (i32.const 304) (i32.const 6))
    (drop (call $write (i32.const 1) (i32.const 300) (i32.const 1) (i32.const 400)))))"#
    )
}

/// A `shoal devstack` process with `computes` agents, started with `flags`, on its own data
/// dir and port; killed when dropped.
pub struct Devstack {
    pub port: u16,
    proc: Proc,
    pub data: tempfile::TempDir,
    computes: usize,
    flags: Vec<String>,
}

impl Devstack {
    /// Starts it and waits until every agent is connected.
    pub fn start(computes: usize, flags: &[&str]) -> Devstack {
        let data = tempfile::tempdir().unwrap();
        let port = free_port();
        let flags: Vec<String> = flags.iter().map(|s| s.to_string()).collect();
        let proc = launch(port, computes, &flags, data.path());
        Devstack {
            port,
            proc,
            data,
            computes,
            flags,
        }
    }

    /// SIGKILL, then start again on the same data dir and port.
    pub fn restart(&mut self) {
        self.proc.kill9();
        self.proc = launch(self.port, self.computes, &self.flags, self.data.path());
    }

    /// Runs a client command against it.
    pub fn shoal(&self, args: &[&str]) -> std::process::Output {
        shoal(self.port, args)
    }

    /// `shoal job rollout-status JOB --output json`.
    pub fn rollout(&self, job: &str) -> serde_json::Value {
        json(self.port, &["job", "rollout-status", job])
    }

    /// Writes `yaml` to `name` in the data dir and submits it without waiting.
    pub fn run_file(&self, name: &str, yaml: &str) -> std::process::Output {
        let path = self.data.path().join(name);
        std::fs::write(&path, yaml).unwrap();
        self.shoal(&["job", "run", "--wait=false", path.to_str().unwrap()])
    }
}

fn launch(port: u16, computes: usize, flags: &[String], data: &Path) -> Proc {
    let p = port.to_string();
    let n = computes.to_string();
    let mut args = vec!["devstack", "--computes", &n, "--api-port", &p];
    args.extend(flags.iter().map(String::as_str));
    let proc = spawn(&args, data);
    eventually("the devstack's agents to connect", || {
        connected_nodes(port) == computes
    });
    proc
}
