//! SQL over the nodes' data files, end to end: an orchestrator and three compute agents as
//! separate `shoal` processes, each region's sales written by `shoal demo sales-data` and
//! shown to its node as /data/sales; a fourth node reads every region's files, so each
//! merged answer is checked against the same query run over the union in one engine.
#![cfg(feature = "analytics")]

mod common;
use common::*;

use serde_json::Value as Json;

/// Rows per region: unequal, so an average of averages is visibly wrong.
const ROWS: [(&str, usize); 3] = [("eu", 10), ("us", 1_000), ("ap", 20_000)];

struct Fleet {
    port: u16,
    /// The orchestrator's admin key (fleet SQL needs the `query` grant).
    key: String,
    _orch: Proc,
    agents: Vec<Proc>,
    _dir: tempfile::TempDir,
}

fn fleet() -> Fleet {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("sales");
    for (region, rows) in ROWS {
        let out = std::process::Command::new(BIN)
            .args(["demo", "sales-data", "--regions", region, "--files", "3"])
            .args(["--rows", &rows.to_string(), "--out"])
            .arg(&data)
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", text(&out));
    }
    let port = free_port();
    let p = port.to_string();
    let url = format!("ws://127.0.0.1:{port}");
    let orch = spawn(
        &[
            "serve",
            "--orchestrator",
            "--api-port",
            &p,
            "--token",
            "t0ken",
        ],
        &dir.path().join("o"),
    );
    let key_file = dir.path().join("o/orchestrator/admin-api-key");
    eventually("the admin key", || key_file.exists());
    let key = std::fs::read_to_string(&key_file)
        .unwrap()
        .trim()
        .to_string();
    let agent = |name: &str, labels: &str, allow: String| {
        spawn(
            &[
                "serve",
                "--compute",
                "--orchestrators",
                &url,
                "--token",
                "t0ken",
                "--name",
                name,
                "--labels",
                labels,
                "--data-allow",
                &allow,
            ],
            &dir.path().join(name),
        )
    };
    let mut agents = Vec::new();
    for (region, _) in ROWS {
        agents.push(agent(
            &format!("n-{region}"),
            &format!("region={region},role=store"),
            format!("/data/sales={}", data.join(region).display()),
        ));
    }
    agents.push(agent(
        "n-all",
        "role=warehouse",
        format!("/data/sales={}", data.display()),
    ));
    let fleet = Fleet {
        port,
        key,
        _orch: orch,
        agents,
        _dir: dir,
    };
    eventually("four agents to connect", || fleet.connected() == 4);
    fleet
}

impl Fleet {
    fn shoal(&self, args: &[&str]) -> std::process::Output {
        shoal_env(self.port, args, &[("SHOAL_API_KEY", self.key.clone())])
    }

    fn connected(&self) -> usize {
        let out = self.shoal(&["node", "list", "--output", "json"]);
        serde_json::from_slice::<Json>(&out.stdout)
            .ok()
            .and_then(|v| v.as_array().cloned())
            .map_or(0, |a| {
                a.iter().filter(|n| n["Connection"] == "CONNECTED").count()
            })
    }

    fn query(&self, args: &[&str]) -> std::process::Output {
        let mut all = vec!["query", "--engine", "analytics"];
        all.extend(args);
        self.shoal(&all)
    }

    /// The rows of a `--output json` query, as objects.
    fn rows(&self, args: &[&str]) -> Vec<serde_json::Map<String, Json>> {
        let mut all = args.to_vec();
        all.extend(["--output", "json"]);
        let out = self.query(&all);
        assert!(out.status.success(), "{}", text(&out));
        let rows: Json = serde_json::from_slice(&out.stdout).unwrap();
        rows.as_array()
            .unwrap()
            .iter()
            .map(|r| r.as_object().unwrap().clone())
            .collect()
    }
}

fn f(v: &Json) -> f64 {
    v.as_f64().unwrap_or_else(|| panic!("{v} is not a number"))
}

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() <= 1e-9 * a.abs().max(b.abs()).max(1.0)
}

const BY_COUNTRY: &str = "SELECT country, sum(amount) AS total, count(*) AS n, avg(amount) AS mean, \
     max(quantity) AS most FROM read_parquet('{files}') GROUP BY country ORDER BY country";

#[test]
fn a_merged_answer_equals_the_query_over_the_union_of_the_files() {
    let fleet = fleet();
    let per_node = BY_COUNTRY.replace("{files}", "/data/sales/*.parquet");
    let merged = fleet.rows(&[&per_node, "--constraints", "role=store", "--merge", "auto"]);
    let union = BY_COUNTRY.replace("{files}", "/data/sales/*/*.parquet");
    let whole = fleet.rows(&[&union, "--node", "n-all"]);
    assert_eq!(merged.len(), whole.len(), "{merged:?}\n{whole:?}");
    assert!(merged.len() >= 8, "every region's countries: {merged:?}");
    for (m, w) in merged.iter().zip(&whole) {
        assert_eq!(m["country"], w["country"]);
        assert_eq!(m["n"], w["n"], "{m:?} {w:?}");
        assert_eq!(m["most"], w["most"], "{m:?} {w:?}");
        assert!(close(f(&m["total"]), f(&w["total"])), "{m:?} {w:?}");
        assert!(close(f(&m["mean"]), f(&w["mean"])), "{m:?} {w:?}");
    }
    let n: i64 = merged.iter().map(|r| r["n"].as_i64().unwrap()).sum();
    assert_eq!(n, 21_010, "every row of every region, once");
}

#[test]
fn the_fleet_average_is_not_an_average_of_averages() {
    let fleet = fleet();
    let sql = "SELECT avg(amount) AS mean, count(DISTINCT store) AS stores \
               FROM read_parquet('/data/sales/*.parquet')";
    let merged = fleet.rows(&[sql, "--constraints", "role=store", "--merge", "auto"]);
    let union = sql.replace("/data/sales/*.parquet", "/data/sales/*/*.parquet");
    let whole = fleet.rows(&[&union, "--node", "n-all"]);
    assert!(
        close(f(&merged[0]["mean"]), f(&whole[0]["mean"])),
        "{merged:?} {whole:?}"
    );
    assert_eq!(merged[0]["stores"], whole[0]["stores"]);
    // What a naive merge would say, to show the test can tell the difference.
    let per_node = fleet.rows(&[sql, "--constraints", "role=store"]);
    let naive = per_node.iter().map(|r| f(&r["mean"])).sum::<f64>() / 3.0;
    assert!(
        !close(naive, f(&whole[0]["mean"])),
        "the data must tell them apart"
    );

    // A hand-written average of the nodes' averages is flagged.
    let out = fleet.query(&[
        sql,
        "--constraints",
        "role=store",
        "--merge",
        "SELECT avg(mean) FROM results",
    ]);
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("average of averages"),
        "{}",
        text(&out)
    );
}

#[test]
fn a_missing_node_makes_the_answer_partial_and_the_exit_code_says_so() {
    let mut fleet = fleet();
    let sql =
        "SELECT region, count(*) AS n FROM read_parquet('/data/sales/*.parquet') GROUP BY region";
    let out = fleet.query(&[sql, "--constraints", "role=store", "--merge", "auto"]);
    assert!(out.status.success(), "{}", text(&out));
    // ap has the most rows; kill its agent.
    fleet.agents[2].kill9();
    eventually("n-ap to disconnect", || fleet.connected() == 3);
    let out = fleet.query(&[
        sql,
        "--constraints",
        "role=store",
        "--merge",
        "auto",
        "--output",
        "csv",
    ]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("partial: the merge covers 2 of 3 nodes; missing n-ap (disconnected)"),
        "{err}"
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("eu,10") && stdout.contains("us,1000") && !stdout.contains("ap,"),
        "{stdout}"
    );
}

#[test]
fn bad_queries_and_nodes_without_data_say_what_to_do() {
    let fleet = fleet();
    // A query the split cannot merge exactly is refused before any node runs it.
    let out = fleet.query(&[
        "SELECT region, median(amount) FROM read_parquet('/data/sales/*.parquet') GROUP BY region",
        "--merge",
        "auto",
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("median() cannot be merged exactly"),
        "{}",
        text(&out)
    );
    // A path outside the node's data directories: one error line naming the path, per node.
    let out = fleet.query(&[
        "SELECT count(*) FROM read_csv('/etc/passwd')",
        "--constraints",
        "role=store",
    ]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("error on 3 nodes: read_csv('/etc/passwd'): outside the allowed directories; this node reads only under /data/sales"),
        "{err}"
    );
    // A job with the analytics engine runs durably, as an ops job over every store.
    let job = fleet._dir.path().join("job.yaml");
    std::fs::write(
        &job,
        "Name: sales-by-region\nType: ops\nConstraints:\n  - {Key: role, Operator: '=', Values: [store]}\n\
         Tasks:\n  - Name: q\n    Engine:\n      Type: analytics\n      Params:\n        \
         Query: SELECT region, count(*) AS n FROM read_parquet('/data/sales/*.parquet') GROUP BY region\n",
    )
    .unwrap();
    let out = fleet.shoal(&["job", "run", job.to_str().unwrap()]);
    assert!(out.status.success(), "{}", text(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains(r#"{"n":1000,"region":"us"}"#), "{stdout}");
}
