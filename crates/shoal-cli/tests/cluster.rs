//! Process-level tests: the real `shoal` binary as an orchestrator and separate compute agents.

mod common;
use common::*;

use std::path::Path;

fn corpus(name: &str) -> Option<std::path::PathBuf> {
    let p = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../../shared/corpus/jobs")
        .join(name);
    p.exists().then_some(p)
}

#[test]
fn separate_processes_run_jobs_and_survive_an_orchestrator_kill() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let p = port.to_string();
    let url = format!("ws://127.0.0.1:{port}");
    let mut orch = spawn(
        &[
            "serve",
            "--orchestrator",
            "--allow-anonymous",
            "write",
            "--api-port",
            &p,
            "--token",
            "s3cret",
        ],
        &dir.path().join("o"),
    );
    let _a = spawn(
        &[
            "serve",
            "--compute",
            "--orchestrators",
            &url,
            "--token",
            "s3cret",
            "--labels",
            "zone=a",
            "--name",
            "n-a",
        ],
        &dir.path().join("a"),
    );
    let _b = spawn(
        &[
            "serve",
            "--compute",
            "--orchestrators",
            &url,
            "--token",
            "s3cret",
            "--labels",
            "zone=b",
            "--name",
            "n-b",
        ],
        &dir.path().join("b"),
    );
    let _intruder = spawn(
        &[
            "serve",
            "--compute",
            "--orchestrators",
            &url,
            "--token",
            "wrong",
            "--name",
            "n-bad",
        ],
        &dir.path().join("x"),
    );
    eventually("two agents to connect", || connected_nodes(port) == 2);

    let hello = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/hello.wat");
    let out = shoal(
        port,
        &[
            "wasm",
            "run",
            hello.to_str().unwrap(),
            "--constraints",
            "zone=b",
            "--",
            "x",
        ],
    );
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("Hello, world!\nx\n"),
        "{}",
        text(&out)
    );

    let listed = shoal(port, &["job", "list", "--output", "json"]);
    let jobs: serde_json::Value = serde_json::from_slice(&listed.stdout).unwrap();
    let job_id = jobs[0]["ID"].as_str().unwrap().to_string();
    let execs = shoal(port, &["job", "executions", &job_id, "--output", "json"]);
    let execs: serde_json::Value = serde_json::from_slice(&execs.stdout).unwrap();
    assert_eq!(
        execs[0]["NodeID"], "n-b",
        "the constraint zone=b must place the job on n-b"
    );

    // kill -9 the orchestrator and start it again on the same data dir.
    orch.0.kill().unwrap();
    orch.0.wait().unwrap();
    orch = spawn(
        &[
            "serve",
            "--orchestrator",
            "--allow-anonymous",
            "write",
            "--api-port",
            &p,
            "--token",
            "s3cret",
        ],
        &dir.path().join("o"),
    );
    eventually("agents to reconnect by themselves", || {
        connected_nodes(port) == 2
    });
    let after = shoal(port, &["job", "describe", &job_id, "--output", "json"]);
    let after: serde_json::Value = serde_json::from_slice(&after.stdout).unwrap();
    assert_eq!(after["Job"]["State"]["StateType"], "Completed");
    assert!(
        after["History"].as_array().unwrap().len() >= 5,
        "history survives the restart"
    );

    let again = shoal(port, &["wasm", "run", hello.to_str().unwrap()]);
    assert!(again.status.success(), "{}", text(&again));
    let nodes = shoal(port, &["node", "list"]);
    assert!(
        !String::from_utf8_lossy(&nodes.stdout).contains("n-bad"),
        "a node with a wrong token never joins"
    );
    drop(orch);
}

#[test]
fn devstack_runs_bacalhau_corpus_jobs_and_explains_failures() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let _dev = spawn(
        &[
            "devstack",
            "--computes",
            "2",
            "--api-port",
            &port.to_string(),
        ],
        dir.path(),
    );
    eventually("devstack", || connected_nodes(port) == 2);

    if let Some(wasm) = corpus("bacalhau__testdata_jobs_wasm.yaml") {
        let out = shoal(port, &["job", "run", wasm.to_str().unwrap()]);
        assert!(out.status.success(), "{}", text(&out));
        assert!(
            String::from_utf8_lossy(&out.stdout).contains("Hello, world!"),
            "{}",
            text(&out)
        );
    }
    if let Some(flibble) = corpus("bacalhau__testdata_jobs_custom-task-type.yaml") {
        let out = shoal(port, &["job", "run", flibble.to_str().unwrap()]);
        assert_eq!(out.status.code(), Some(1));
        let t = text(&out);
        assert!(
            t.contains("not enough nodes to run job") && t.contains("does not support flibble"),
            "{t}"
        );
        let validate = shoal(port, &["job", "validate", flibble.to_str().unwrap()]);
        assert_eq!(validate.status.code(), Some(1));
        assert!(
            text(&validate).contains("unknown engine \"flibble\""),
            "{}",
            text(&validate)
        );
    }

    // An ops job runs once on every node; a non-zero exit is a completed execution whose
    // code the CLI passes on.
    let exit3 = dir.path().join("exit3.wat");
    std::fs::write(
        &exit3,
        r#"(module (import "wasi_snapshot_preview1" "proc_exit" (func $e (param i32)))
        (memory (export "memory") 1) (func (export "_start") (call $e (i32.const 3))))"#,
    )
    .unwrap();
    let out = shoal(
        port,
        &["wasm", "run", exit3.to_str().unwrap(), "--target", "all"],
    );
    assert_eq!(
        out.status.code(),
        Some(1),
        "an ops job with failing nodes fails: {}",
        text(&out)
    );
    let listed = shoal(port, &["job", "list", "--output", "json"]);
    let jobs: serde_json::Value = serde_json::from_slice(&listed.stdout).unwrap();
    let ops = jobs
        .as_array()
        .unwrap()
        .iter()
        .find(|j| j["Type"] == "ops")
        .unwrap();
    let execs = shoal(
        port,
        &[
            "job",
            "executions",
            ops["ID"].as_str().unwrap(),
            "--output",
            "json",
        ],
    );
    let execs: serde_json::Value = serde_json::from_slice(&execs.stdout).unwrap();
    let execs = execs.as_array().unwrap();
    assert_eq!(execs.len(), 2, "one execution per node");
    assert!(
        execs
            .iter()
            .all(|e| e["ComputeState"]["StateType"] == 9 && e["RunOutput"]["ExitCode"] == 3)
    );

    let batch = shoal(port, &["wasm", "run", exit3.to_str().unwrap()]);
    assert_eq!(
        batch.status.code(),
        Some(3),
        "the task's exit code is passed through: {}",
        text(&batch)
    );

    let bad = dir.path().join("bad.yaml");
    std::fs::write(
        &bad,
        "Type: batch\nCoun: 1\nTasks:\n  - Engine: {Type: wasm}\n",
    )
    .unwrap();
    let out = shoal(port, &["job", "run", bad.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out).contains("Coun: unknown field (did you mean Count?)"),
        "{}",
        text(&out)
    );
}

#[test]
fn a_hybrid_node_says_alive_only_once_its_compute_side_has_joined() {
    // As a new user would: `serve --orchestrator --compute`, then `job run` as soon as the
    // API answers. From the first OK of `alive`, the node must be connected, or that first
    // job fails with "not enough nodes". One curl asks `alive` and then the node list on the
    // same connection, microseconds apart, from the moment the port opens.
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let _hybrid = spawn(
        &[
            "serve",
            "--orchestrator",
            "--compute",
            "--allow-anonymous",
            "write",
            "--api-port",
            &port.to_string(),
        ],
        dir.path(),
    );
    let base = format!("http://127.0.0.1:{port}/api/v1");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    let nodes = loop {
        let out = std::process::Command::new("curl")
            .args(["-s", "-w", "\n%{http_code}\n"])
            .arg(format!("{base}/agent/alive"))
            .arg(format!("{base}/orchestrator/nodes"))
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout).to_string();
        let lines: Vec<&str> = text.lines().collect();
        if lines.len() >= 4 && lines[1] == "200" {
            break lines[2].to_string();
        }
        assert!(std::time::Instant::now() < deadline, "never alive: {text}");
        std::thread::sleep(std::time::Duration::from_millis(1));
    };
    let nodes: serde_json::Value = serde_json::from_str(&nodes).unwrap();
    let connected = nodes["Nodes"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|n| n["Connection"] == "CONNECTED")
        .count();
    assert_eq!(
        connected, 1,
        "alive said OK before the local node joined: {nodes}"
    );
    let hello = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/hello-wasm.yaml");
    let out = shoal(port, &["job", "run", hello.to_str().unwrap()]);
    assert!(out.status.success(), "{}", text(&out));
}
