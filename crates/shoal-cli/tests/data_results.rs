//! Inputs, publishers and `job get` through the real binary: one orchestrator process and two
//! compute agents that dial it (they listen on no port). The client talks to the orchestrator
//! only; the agents' data dirs are never read by the test.

mod common;
use common::*;

use std::path::Path;

fn last_job(port: u16) -> String {
    let listed = shoal(port, &["job", "list", "--output", "json"]);
    let jobs: serde_json::Value = serde_json::from_slice(&listed.stdout).unwrap();
    jobs[0]["ID"].as_str().unwrap().to_string()
}

/// An orchestrator and two agents: `n-data` allows `data` read-only, `n-bare` allows nothing.
fn cluster(dir: &Path, data: &Path) -> (u16, Vec<Proc>) {
    let port = free_port();
    let url = format!("ws://127.0.0.1:{port}");
    let allow = format!("{}:ro", data.display());
    let procs = vec![
        spawn(
            &[
                "serve",
                "--orchestrator",
                "--api-port",
                &port.to_string(),
                "--token",
                "t0k",
            ],
            &dir.join("o"),
        ),
        spawn(
            &[
                "serve",
                "--compute",
                "--orchestrators",
                &url,
                "--token",
                "t0k",
                "--name",
                "n-data",
                "--allow-path",
                &allow,
            ],
            &dir.join("a"),
        ),
        spawn(
            &[
                "serve",
                "--compute",
                "--orchestrators",
                &url,
                "--token",
                "t0k",
                "--name",
                "n-bare",
            ],
            &dir.join("b"),
        ),
    ];
    eventually("two agents to connect", || connected_nodes(port) == 2);
    (port, procs)
}

fn hello() -> String {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../examples/hello.wat")
        .display()
        .to_string()
}

#[test]
fn local_results_are_fetched_through_the_orchestrator_with_job_get_and_cat() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    std::fs::create_dir_all(&data).unwrap();
    let (port, _procs) = cluster(dir.path(), &data);

    let run = shoal(
        port,
        &["wasm", "run", &hello(), "-p", "local", "--target", "all"],
    );
    assert!(run.status.success(), "{}", text(&run));
    let id = last_job(port);

    let out = dir.path().join("got");
    let get = shoal(
        port,
        &["job", "get", &id, "--output-dir", out.to_str().unwrap()],
    );
    assert!(get.status.success(), "{}", text(&get));
    for node in ["n-data", "n-bare"] {
        let stdout = std::fs::read_to_string(out.join(node).join("stdout")).unwrap();
        assert!(stdout.contains("Hello, world!"), "{node}: {stdout}");
        assert_eq!(
            std::fs::read_to_string(out.join(node).join("exitCode")).unwrap(),
            "0"
        );
    }

    let cat = shoal(port, &["job", "cat", &id, "stdout"]);
    assert!(cat.status.success(), "{}", text(&cat));
    assert!(String::from_utf8_lossy(&cat.stdout).contains("Hello, world!"));
    let missing = shoal(port, &["job", "cat", &id, "nope.txt"]);
    assert!(
        text(&missing).contains("no file nope.txt") && text(&missing).contains("stdout"),
        "{}",
        text(&missing)
    );
}

#[test]
fn job_get_without_a_publisher_says_how_to_keep_results() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    std::fs::create_dir_all(&data).unwrap();
    let (port, _procs) = cluster(dir.path(), &data);
    let run = shoal(port, &["wasm", "run", &hello()]);
    assert!(run.status.success(), "{}", text(&run));
    let get = shoal(port, &["job", "get", &last_job(port)]);
    assert!(!get.status.success());
    assert!(text(&get).contains("-p local"), "{}", text(&get));
}

#[test]
fn a_local_input_runs_only_where_the_data_is_and_describe_names_the_others() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    std::fs::create_dir_all(&data).unwrap();
    std::fs::write(data.join("in.txt"), "42").unwrap();
    let (port, _procs) = cluster(dir.path(), &data);
    let input = format!("file://{}:/data", data.display());
    for _ in 0..3 {
        let run = shoal(port, &["wasm", "run", &hello(), "-i", &input]);
        assert!(run.status.success(), "{}", text(&run));
        let id = last_job(port);
        let execs = shoal(port, &["job", "executions", &id, "--output", "json"]);
        let execs: serde_json::Value = serde_json::from_slice(&execs.stdout).unwrap();
        assert_eq!(execs[0]["NodeID"], "n-data", "{execs}");
        let describe = shoal(port, &["job", "describe", &id]);
        let t = text(&describe);
        assert!(
            t.contains("n-bare") && t.contains("does not have the data"),
            "{t}"
        );
    }

    let outside = format!("file://{}:/etc", dir.path().join("elsewhere").display());
    let run = shoal(port, &["wasm", "run", &hello(), "-i", &outside]);
    assert!(!run.status.success());
    assert!(text(&run).contains("allow-listed paths"), "{}", text(&run));
}

#[test]
fn an_unreachable_url_input_fails_naming_the_url() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    std::fs::create_dir_all(&data).unwrap();
    let (port, _procs) = cluster(dir.path(), &data);
    let url = format!("http://127.0.0.1:{}/in.txt", free_port());
    let run = shoal(
        port,
        &[
            "wasm",
            "run",
            &hello(),
            "-i",
            &format!("{url}:/inputs/in.txt"),
        ],
    );
    assert!(!run.status.success());
    let id = last_job(port);
    let describe = text(&shoal(port, &["job", "describe", &id]));
    assert!(describe.contains(&url), "{describe}");
}
