//! Inputs, publishers and `job get` through the real binary: one orchestrator process and two
//! compute agents that dial it (they listen on no port). The client talks to the orchestrator
//! (and, for results published to S3, to the S3 server) only; the agents' data dirs are never
//! read by the test. S3 is a real `moto_server` on 127.0.0.1 (`shoal_testkit::moto`).

mod common;
use common::*;

use std::io::{Read, Write};
use std::path::Path;

use shoal_testkit::moto::{AccessKey, Moto};

fn last_job(port: u16) -> String {
    let listed = shoal(port, &["job", "list", "--output", "json"]);
    let jobs: serde_json::Value = serde_json::from_slice(&listed.stdout).unwrap();
    jobs[0]["ID"].as_str().unwrap().to_string()
}

/// An orchestrator and two agents: `n-data` allows `data` read-only, `n-bare` allows nothing.
fn cluster(dir: &Path, data: &Path) -> (u16, Vec<Proc>) {
    cluster_env(dir, data, &[])
}

/// [`cluster`] with `env` set on both agents (their AWS credentials).
fn cluster_env(dir: &Path, data: &Path, env: &[(&str, String)]) -> (u16, Vec<Proc>) {
    let port = free_port();
    let url = format!("ws://127.0.0.1:{port}");
    let allow = format!("{}:ro", data.display());
    let procs = vec![
        spawn(
            &[
                "serve",
                "--orchestrator",
                "--allow-anonymous",
                "write",
                "--api-port",
                &port.to_string(),
                "--token",
                "t0k",
            ],
            &dir.join("o"),
        ),
        spawn_env(
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
            env,
        ),
        spawn_env(
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
            env,
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

fn uppercase() -> String {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/uppercase.wat")
        .display()
        .to_string()
}

/// `GET path` on the API, as any HTTP client would; the JSON answer.
fn api_get(port: u16, path: &str) -> serde_json::Value {
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    write!(
        s,
        "GET {path} HTTP/1.0\r\nHost: 127.0.0.1:{port}\r\nAccept: application/json\r\n\r\n"
    )
    .unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    let (head, body) = out.split_once("\r\n\r\n").unwrap();
    assert!(
        head.starts_with("HTTP/1.1 200") || head.starts_with("HTTP/1.0 200"),
        "{out}"
    );
    serde_json::from_str(body).unwrap()
}

/// The job's only execution (asserting there is exactly one).
fn only_execution(port: u16, job: &str) -> serde_json::Value {
    let execs = json(port, &["job", "executions", job]);
    let execs = execs.as_array().unwrap();
    assert_eq!(execs.len(), 1, "{execs:?}");
    execs[0].clone()
}

/// A job file: `uppercase.wat` (inline) reads `s3://data/in/data.txt` at /inputs/data.txt and
/// writes /outputs/data.txt; results go to S3 as `encoding`.
fn s3_job(moto: &Moto, encoding: &str) -> String {
    let wat = std::fs::read_to_string(uppercase()).unwrap();
    let job = serde_json::json!({
        "Type": "batch",
        "Count": 1,
        "Tasks": [{
            "Name": "main",
            "Engine": {"Type": "wasm", "Params": {"EntryModule": "/app/uppercase.wat"}},
            "InputSources": [
                {"Target": "/app/uppercase.wat", "Source": {"Type": "inline", "Params": {"URL": wat}}},
                {"Target": "/inputs/data.txt", "Source": {"Type": "s3", "Params": {
                    "Bucket": "data", "Key": "in/data.txt", "Endpoint": moto.endpoint}}}
            ],
            "ResultPaths": [{"Name": "outputs", "Path": "/outputs"}],
            "Publisher": {"Type": "s3", "Params": {
                "Bucket": "results",
                "Key": "results/{jobID}/{executionID}",
                "Endpoint": moto.endpoint,
                "Region": "us-east-1",
                "Encoding": encoding
            }}
        }]
    });
    serde_json::to_string_pretty(&job).unwrap()
}

#[test]
fn s3_results_land_at_the_templated_key_are_listed_and_unpacked_by_job_get() {
    let Some(moto) = Moto::start() else { return };
    moto.create_bucket("data");
    moto.create_bucket("results");
    moto.put("data", "in/data.txt", b"hello, s3!\n");
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    std::fs::create_dir_all(&data).unwrap();
    let env = moto.key.env();
    let (port, _procs) = cluster_env(dir.path(), &data, &env);

    for encoding in ["gzip", "plain"] {
        let file = dir.path().join(format!("job-{encoding}.json"));
        std::fs::write(&file, s3_job(&moto, encoding)).unwrap();
        let run = shoal(port, &["job", "run", file.to_str().unwrap()]);
        assert!(run.status.success(), "{encoding}: {}", text(&run));
        let job = last_job(port);
        let exec = only_execution(port, &job)["ID"]
            .as_str()
            .unwrap()
            .to_string();
        let key = format!("results/{job}/{exec}");

        // The object(s) landed under the templated key.
        let keys: Vec<String> = moto
            .keys("results")
            .into_iter()
            .filter(|k| k.starts_with(&key))
            .collect();
        let listed = api_get(port, &format!("/api/v1/orchestrator/jobs/{job}/results"));
        let items = listed["Items"].as_array().unwrap();
        assert_eq!(items.len(), 1, "{listed}");
        let r = &items[0];
        assert_eq!(r["Type"], "s3", "{r}");
        assert_eq!(r["Params"]["Bucket"], "results", "{r}");
        assert_eq!(r["Params"]["Endpoint"], moto.endpoint.as_str(), "{r}");
        assert_eq!(r["Params"]["Region"], "us-east-1", "{r}");
        assert_eq!(listed["NextToken"], "", "{listed}");
        if encoding == "gzip" {
            assert_eq!(keys, vec![key.clone()], "{encoding}");
            assert_eq!(r["Params"]["Key"], key.as_str(), "{r}");
            let archive = moto.get("results", &key).unwrap();
            assert_eq!(&archive[..2], &[0x1f, 0x8b], "not a gzip archive");
        } else {
            let want: Vec<String> = ["exitCode", "outputs/data.txt", "stderr", "stdout"]
                .iter()
                .map(|f| format!("{key}/{f}"))
                .collect();
            assert_eq!(keys, want, "{encoding}");
            assert_eq!(r["Params"]["Key"], format!("{key}/").as_str(), "{r}");
        }

        // `job get` reads the bucket with the standard credential chain and lays the results
        // out as Bacalhau does.
        let out = dir.path().join(format!("got-{encoding}"));
        let get = shoal_env(
            port,
            &["job", "get", &job, "--output-dir", out.to_str().unwrap()],
            &env,
        );
        assert!(get.status.success(), "{encoding}: {}", text(&get));
        let read = |p: &str| std::fs::read_to_string(out.join(p)).unwrap_or_default();
        assert_eq!(read("stdout"), "uppercased data.txt\n", "{encoding}");
        assert_eq!(read("stderr"), "", "{encoding}");
        assert_eq!(read("exitCode"), "0", "{encoding}");
        assert_eq!(read("outputs/data.txt"), "HELLO, S3!\n", "{encoding}");

        let cat = shoal_env(port, &["job", "cat", &job, "outputs/data.txt"], &env);
        assert_eq!(
            String::from_utf8_lossy(&cat.stdout),
            "HELLO, S3!\n",
            "{encoding}: {}",
            text(&cat)
        );
        let missing = shoal_env(port, &["job", "cat", &job, "nope.txt"], &env);
        assert!(
            !missing.status.success() && text(&missing).contains("outputs/data.txt"),
            "{encoding}: {}",
            text(&missing)
        );
    }
}

#[test]
fn a_wasm_module_transforms_its_s3_input_and_job_get_brings_the_output_back() {
    let Some(moto) = Moto::start() else { return };
    moto.create_bucket("data");
    moto.put("data", "in/data.txt", b"Compute over data.\n");
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    std::fs::create_dir_all(&data).unwrap();
    let (port, _procs) = cluster_env(dir.path(), &data, &moto.key.env());

    let input = format!(
        "src=s3://data/in/data.txt,dst=/inputs/data.txt,opt=endpoint={}",
        moto.endpoint
    );
    let run = shoal(
        port,
        &[
            "wasm",
            "run",
            &uppercase(),
            "-i",
            &input,
            "-o",
            "outputs:/outputs",
            "-p",
            "local",
        ],
    );
    assert!(run.status.success(), "{}", text(&run));
    let job = last_job(port);
    let out = dir.path().join("got");
    let get = shoal(
        port,
        &["job", "get", &job, "--output-dir", out.to_str().unwrap()],
    );
    assert!(get.status.success(), "{}", text(&get));
    assert_eq!(
        std::fs::read_to_string(out.join("outputs/data.txt")).unwrap(),
        "COMPUTE OVER DATA.\n"
    );
    assert_eq!(
        std::fs::read_to_string(out.join("stdout")).unwrap(),
        "uppercased data.txt\n"
    );
    let cat = shoal(port, &["job", "cat", &job, "outputs/data.txt"]);
    assert_eq!(String::from_utf8_lossy(&cat.stdout), "COMPUTE OVER DATA.\n");
}

/// Runs `hello.wat` with the S3 input `s3://BUCKET/KEY` at /inputs/x on the cluster, expects
/// it to fail, and returns the failed execution (asserting it was the only one: the failure
/// was not retried on the other node).
fn failing_s3_input(port: u16, moto: &Moto, bucket: &str, key: &str) -> serde_json::Value {
    let input = format!(
        "src=s3://{bucket}/{key},dst=/inputs/x,opt=endpoint={}",
        moto.endpoint
    );
    let run = shoal(port, &["wasm", "run", &hello(), "-i", &input]);
    assert!(!run.status.success(), "{}", text(&run));
    let job = last_job(port);
    let state = json(port, &["job", "describe", &job]);
    assert_eq!(state["Job"]["State"]["StateType"], "Failed", "{state}");
    let exec = only_execution(port, &job);
    // Bacalhau's execution states are numbers on the wire: 10 is Failed.
    assert_eq!(exec["ComputeState"]["StateType"], 10, "{exec}");
    exec
}

#[test]
fn an_s3_input_with_refused_credentials_fails_once_saying_what_to_check() {
    let Some(moto) = Moto::start_with_auth(&["private"]) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    std::fs::create_dir_all(&data).unwrap();
    let wrong = AccessKey {
        id: moto.key.id.clone(),
        secret: "not-the-secret".into(),
    };
    let (port, _procs) = cluster_env(dir.path(), &data, &wrong.env());
    let exec = failing_s3_input(port, &moto, "private", "in.csv");
    let message = exec["ComputeState"]["Message"].as_str().unwrap();
    for part in [
        "s3://private/in.csv",
        moto.endpoint.as_str(),
        "refused the credentials",
        "SignatureDoesNotMatch",
        "AWS_SECRET_ACCESS_KEY",
    ] {
        assert!(message.contains(part), "no {part:?} in: {message}");
    }
}

#[test]
fn a_missing_s3_key_fails_once_naming_bucket_key_and_endpoint() {
    let Some(moto) = Moto::start() else { return };
    moto.create_bucket("data");
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    std::fs::create_dir_all(&data).unwrap();
    let (port, _procs) = cluster_env(dir.path(), &data, &moto.key.env());
    let exec = failing_s3_input(port, &moto, "data", "missing.csv");
    let message = exec["ComputeState"]["Message"].as_str().unwrap();
    for part in ["s3://data/missing.csv", moto.endpoint.as_str(), "NoSuchKey"] {
        assert!(message.contains(part), "no {part:?} in: {message}");
    }
}
