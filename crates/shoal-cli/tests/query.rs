//! Fleet SQL end to end: the real `shoal` binary as a devstack (an orchestrator and three
//! compute agents over real WebSockets), asked with `shoal query`.

use std::net::TcpListener;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_shoal");
const NODES: usize = 3;

struct Devstack {
    child: Child,
    port: u16,
    _dir: tempfile::TempDir,
}

impl Drop for Devstack {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Starts a devstack and waits (bounded) until its nodes are connected: start-up has no
/// event to wait on from outside the process.
fn devstack() -> Devstack {
    devstack_with(tempfile::tempdir().unwrap(), &[])
}

/// A devstack keeping its state in `dir`, started with `flags` added.
fn devstack_with(dir: tempfile::TempDir, flags: &[&str]) -> Devstack {
    let port = free_port();
    let child = Command::new(BIN)
        .args(["devstack", "--computes", &NODES.to_string()])
        .args(["--api-port", &port.to_string()])
        .args(flags)
        .arg("--data-dir")
        .arg(dir.path())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("shoal starts");
    let d = Devstack {
        child,
        port,
        _dir: dir,
    };
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let out = d.shoal(&["node", "list", "--output", "json"]);
        let nodes: Value = serde_json::from_slice(&out.stdout).unwrap_or_default();
        let up = nodes
            .as_array()
            .map(|a| a.iter().filter(|n| n["Connection"] == "CONNECTED").count())
            .unwrap_or(0);
        if up == NODES {
            return d;
        }
        assert!(Instant::now() < deadline, "devstack did not come up");
        std::thread::sleep(Duration::from_millis(50));
    }
}

impl Devstack {
    fn shoal(&self, args: &[&str]) -> Output {
        Command::new(BIN)
            .args(["--api-port", &self.port.to_string()])
            .args(args)
            .output()
            .expect("shoal runs")
    }
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .unwrap()
        .trim()
        .to_string()
}

#[test]
fn every_node_answers_with_the_real_hostname_tagged_with_its_node_id() {
    let d = devstack();
    let out = d.shoal(&[
        "query",
        "SELECT computer_name FROM system_info",
        "--output",
        "json",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let rows: Vec<Value> = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(rows.len(), NODES, "{rows:?}");
    let mut nodes: Vec<&str> = rows
        .iter()
        .map(|r| r["node_id"].as_str().unwrap())
        .collect();
    nodes.sort();
    assert_eq!(nodes, vec!["n-devstack-0", "n-devstack-1", "n-devstack-2"]);
    assert!(
        rows.iter()
            .all(|r| r["computer_name"] == hostname().as_str())
    );
    assert!(
        stderr(&out)
            .contains("Fleet coverage: 3 targeted, 3 answered, 0 errored, 0 unreachable; 3 rows"),
        "{}",
        stderr(&out)
    );
    // A live query leaves no job behind.
    let jobs = d.shoal(&["job", "list", "--output", "json"]);
    let jobs: Value = serde_json::from_slice(&jobs.stdout).unwrap();
    assert_eq!(jobs.as_array().map(Vec::len), Some(0), "{jobs}");
}

#[test]
fn merge_counts_over_the_union_of_answers_and_states_its_coverage() {
    let d = devstack();
    let out = d.shoal(&[
        "query",
        "SELECT computer_name AS host FROM system_info",
        "--merge",
        "SELECT host, count(*) AS nodes, count(DISTINCT node_id) AS distinct_nodes FROM results GROUP BY host",
        "--output",
        "ndjson",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let lines: Vec<Value> = stdout(&out)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(
        lines,
        vec![serde_json::json!({ "host": hostname(), "nodes": 3, "distinct_nodes": 3 })]
    );
    assert!(
        stderr(&out).contains("Merge covers 3 of 3 targeted nodes"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn a_bad_query_is_reported_once_with_the_number_of_nodes_and_fails() {
    let d = devstack();
    let out = d.shoal(&["query", "SELECT * FROM no_such_table"]);
    assert!(!out.status.success());
    let err = stderr(&out);
    assert_eq!(
        err.matches("no such table: no_such_table").count(),
        1,
        "{err}"
    );
    assert!(
        err.contains("error on 3 nodes: no such table: no_such_table"),
        "{err}"
    );
    assert!(err.contains("0 answered, 3 errored"), "{err}");
    assert_eq!(stdout(&out).trim(), "", "no rows on stdout");
}

#[test]
fn csv_and_ndjson_rows_carry_the_node_id_first() {
    let d = devstack();
    let out = d.shoal(&["query", "SELECT 'a,b' AS text, 7 AS n", "--output", "csv"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    let mut lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.remove(0), "node_id,text,n");
    lines.sort();
    assert_eq!(
        lines,
        vec![
            "n-devstack-0,\"a,b\",7",
            "n-devstack-1,\"a,b\",7",
            "n-devstack-2,\"a,b\",7"
        ]
    );
    let out = d.shoal(&["query", "SELECT 7 AS n", "--output", "ndjson"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    assert_eq!(text.lines().count(), NODES);
    for line in text.lines() {
        assert!(line.starts_with("{\"node_id\":\"n-devstack-"), "{line}");
        assert!(line.ends_with(",\"n\":7}"), "{line}");
    }
}

#[test]
fn constraints_and_node_ids_ask_only_a_subset() {
    let d = devstack();
    // devstack labels nodes region=eu/us/ap in turn.
    let out = d.shoal(&[
        "query",
        "SELECT 1 AS one",
        "--constraints",
        "region=us",
        "--output",
        "ndjson",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stdout(&out).trim(), r#"{"node_id":"n-devstack-1","one":1}"#);
    assert!(
        stderr(&out).contains("1 targeted, 1 answered"),
        "{}",
        stderr(&out)
    );

    let out = d.shoal(&[
        "query",
        "SELECT 1 AS one",
        "--node",
        "n-devstack-0",
        "--node",
        "n-devstack-2",
        "--output",
        "csv",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    let mut rows: Vec<&str> = text.lines().skip(1).collect();
    rows.sort();
    assert_eq!(rows, vec!["n-devstack-0,1", "n-devstack-2,1"]);

    let out = d.shoal(&["query", "SELECT 1", "--node", "n-nope"]);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("--node n-nope: no such node"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn answers_are_complete_beyond_the_log_head() {
    let d = devstack();
    let out = d.shoal(&[
        "query",
        "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c LIMIT 2000) SELECT x FROM c",
        "--node",
        "n-devstack-0",
        "--output",
        "csv",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    assert_eq!(text.lines().count(), 2001, "header plus every row");
    assert_eq!(text.lines().last(), Some("n-devstack-0,2000"));
}

/// A process that is sent SIGCONT (if stopped) and SIGKILL when dropped.
struct Proc(Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .args(["-CONT", &self.0.id().to_string()])
            .status();
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn serve(args: &[&str], dir: &std::path::Path, port: u16) -> Proc {
    Proc(
        Command::new(BIN)
            .arg("serve")
            .args(args)
            .arg("--data-dir")
            .arg(dir)
            .args(["--api-port", &port.to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("shoal starts"),
    )
}

#[test]
fn a_connected_node_that_never_answers_counts_as_unreachable_at_the_timeout() {
    // An orchestrator and two agents in processes of their own; one agent is then frozen
    // with SIGSTOP: its link stays open (the orchestrator still counts it as connected,
    // the disconnect timeout is far away) but it can answer nothing.
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let url = format!("ws://127.0.0.1:{port}");
    let _orch = serve(
        &[
            "--orchestrator",
            "--token",
            "t",
            "--disconnect-timeout",
            "120s",
        ],
        &dir.path().join("o"),
        port,
    );
    let agent = |name: &str| {
        serve(
            &[
                "--compute",
                "--orchestrators",
                &url,
                "--token",
                "t",
                "--name",
                name,
            ],
            &dir.path().join(name),
            free_port(),
        )
    };
    let _live = agent("n-live");
    let frozen = agent("n-frozen");
    let gone = agent("n-gone");
    // A bare orchestrator lets nobody in; the CLI uses the admin key it made.
    let key_file = dir.path().join("o/orchestrator/admin-api-key");
    let deadline = Instant::now() + Duration::from_secs(60);
    while !key_file.exists() {
        assert!(
            Instant::now() < deadline,
            "the orchestrator made no admin key"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let key = std::fs::read_to_string(&key_file).unwrap();
    let shoal = |args: &[&str]| {
        Command::new(BIN)
            .args(["--api-port", &port.to_string()])
            .args(args)
            .env("SHOAL_API_KEY", key.trim())
            .output()
            .expect("shoal runs")
    };
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let out = shoal(&["node", "list", "--output", "json"]);
        let nodes: Value = serde_json::from_slice(&out.stdout).unwrap_or_default();
        let up = nodes
            .as_array()
            .map(|a| a.iter().filter(|n| n["Connection"] == "CONNECTED").count())
            .unwrap_or(0);
        if up == 3 {
            break;
        }
        assert!(Instant::now() < deadline, "the agents did not connect");
        std::thread::sleep(Duration::from_millis(50));
    }
    // One agent dies: its link closes and the orchestrator shows it disconnected.
    drop(gone);
    loop {
        let out = shoal(&["node", "list", "--output", "json"]);
        let nodes: Value = serde_json::from_slice(&out.stdout).unwrap_or_default();
        let away = nodes.as_array().is_some_and(|a| {
            a.iter()
                .any(|n| n["Info"]["NodeID"] == "n-gone" && n["Connection"] != "CONNECTED")
        });
        if away {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the dead agent still shows connected"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let stopped = Command::new("kill")
        .args(["-STOP", &frozen.0.id().to_string()])
        .status()
        .unwrap();
    assert!(stopped.success());

    let out = shoal(&[
        "query",
        "SELECT 1 AS one",
        "--timeout",
        "2",
        "--output",
        "csv",
    ]);
    let err = stderr(&out);
    assert!(
        !out.status.success(),
        "an unreachable node fails the query: {err}"
    );
    assert_eq!(stdout(&out).trim(), "node_id,one\nn-live,1", "{err}");
    // The disconnected node is not asked but counted, and named with the silent one.
    assert!(
        err.contains("3 targeted, 1 answered, 0 errored, 2 unreachable"),
        "{err}"
    );
    assert!(err.contains("unreachable: n-gone, n-frozen"), "{err}");
}

/// `unix` as an nginx access log writes it at `zone_hours` east of UTC.
fn nginx_time(unix: u64, zone_hours: u64) -> String {
    let out = Command::new("date")
        .env("LC_ALL", "C")
        .args(["-u", "-d", &format!("@{}", unix + zone_hours * 3600)])
        .arg(format!("+%d/%b/%Y:%H:%M:%S +{zone_hours:02}00"))
        .output()
        .expect("date runs");
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

#[test]
fn nginx_access_logs_are_counted_by_status_over_the_fleet() {
    let dir = tempfile::tempdir().unwrap();
    let logs = dir.path().join("logs");
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let mut expected = std::collections::BTreeMap::<i64, i64>::new();
    for node in 0..NODES as u64 {
        // Each node logs in its own time zone; an hour-old request is outside the window.
        let mut log = String::new();
        let mut line = |age: u64, status: i64| {
            log.push_str(&format!(
                "10.0.{node}.1 - - [{}] \"GET /p HTTP/1.1\" {status} 512 \"-\" \"probe\"\n",
                nginx_time(now - age, node)
            ));
        };
        for (status, recent, old) in [(200, 5 + node, 7), (404, node, 2), (500, 1, 4)] {
            for i in 0..old {
                line(3600 + i, status);
            }
            for i in 0..recent {
                line(10 + i, status);
            }
            *expected.entry(status).or_default() += recent as i64;
        }
        let file = logs.join(node.to_string()).join("nginx/access.log");
        std::fs::create_dir_all(file.parent().unwrap()).unwrap();
        std::fs::write(&file, log).unwrap();
    }
    let allow = format!("/var/log={}/{{node}}", logs.display());
    let d = devstack_with(dir, &["--log-allow", &allow]);
    let out = d.shoal(&[
        "query",
        "SELECT status, count(*) c FROM nginx_access WHERE path='/var/log/nginx/access.log' \
         AND time > datetime('now','-5 minutes') GROUP BY status",
        "--merge",
        "SELECT status, sum(c) FROM results GROUP BY status",
        "--output",
        "json",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let rows: Vec<Value> = serde_json::from_str(&stdout(&out)).unwrap();
    let got: std::collections::BTreeMap<i64, i64> = rows
        .iter()
        .map(|r| (r["status"].as_i64().unwrap(), r["sum(c)"].as_i64().unwrap()))
        .collect();
    assert_eq!(got, expected, "{rows:?}");
    assert!(
        stderr(&out).contains("Merge covers 3 of 3 targeted nodes"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn log_tables_read_nothing_on_a_node_that_offers_no_logs() {
    let d = devstack();
    let out = d.shoal(&[
        "query",
        "SELECT line FROM file_lines WHERE path = '/var/log/syslog'",
    ]);
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(
        err.contains("error on 3 nodes") && err.contains("start its agent with --log-allow DIR"),
        "{err}"
    );
}
