//! SQL over the nodes' data files, end to end: an orchestrator and three compute agents as
//! separate `shoal` processes, each region's sales written by `shoal demo sales-data` and
//! shown to its node as /data/sales; a fourth node reads every region's files, so each
//! merged answer is checked against the same query run over the union in one engine.
#![cfg(feature = "analytics")]

mod common;
use common::*;

use serde_json::Value as Json;
use shoal_testkit::moto::Moto;

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
    fleet_with(&[], &[])
}

/// [`fleet`] with `env` set on the agents (an S3 publisher's credentials) and `flags` added
/// to their command lines.
fn fleet_with(env: &[(&str, String)], flags: &[&str]) -> Fleet {
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
    let key = admin_key(&dir.path().join("o"));
    let agent = |name: &str, labels: &str, allow: String| {
        spawn_env(
            &[
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
                ][..],
                flags,
            ]
            .concat(),
            &dir.path().join(name),
            env,
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
        connected_nodes_env(self.port, &[("SHOAL_API_KEY", self.key.clone())])
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

#[test]
fn parquet_results_are_published_one_object_per_node_and_job_get_brings_them_back() {
    let Some(moto) = Moto::start() else { return };
    moto.create_bucket("results");
    let env = moto.key.env();
    let fleet = fleet_with(&env, &[]);
    let job = fleet._dir.path().join("to-s3.yaml");
    std::fs::write(
        &job,
        format!(
            "Name: sales-rows\nType: ops\nConstraints:\n  - {{Key: role, Operator: '=', Values: [store]}}\n\
             Tasks:\n  - Name: q\n    Engine:\n      Type: analytics\n      Params:\n        Format: parquet\n        \
             Query: SELECT region, store, amount FROM read_parquet('/data/sales/*.parquet')\n    \
             Publisher:\n      Type: s3\n      Params: {{Bucket: results, Key: 'sales/{{jobID}}/{{executionID}}', \
             Endpoint: '{}', Region: us-east-1}}\n",
            moto.endpoint
        ),
    )
    .unwrap();
    // Each node writes its rows (not an answer) and publishes them.
    let out = shoal_env(
        fleet.port,
        &["job", "run", job.to_str().unwrap()],
        &[
            ("SHOAL_API_KEY", fleet.key.clone()),
            ("AWS_ACCESS_KEY_ID", env[0].1.clone()),
            ("AWS_SECRET_ACCESS_KEY", env[1].1.clone()),
        ],
    );
    assert!(out.status.success(), "{}", text(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains(r#"{"bytes":"#)
            && stdout.contains(r#""file":"query/rows.parquet","rows":1000}"#),
        "{stdout}"
    );
    let listed = fleet.shoal(&["job", "list", "--output", "json"]);
    let jobs: Json = serde_json::from_slice(&listed.stdout).unwrap();
    let id = jobs[0]["ID"].as_str().unwrap().to_string();
    // One object per node under the templated key.
    let objects: Vec<String> = moto
        .keys("results")
        .into_iter()
        .filter(|k| k.starts_with(&format!("sales/{id}/")))
        .collect();
    assert_eq!(objects.len(), 3, "{objects:?}");

    let got = fleet._dir.path().join("got");
    let mut get_env = env.to_vec();
    get_env.push(("SHOAL_API_KEY", fleet.key.clone()));
    let out = shoal_env(
        fleet.port,
        &["job", "get", &id, "--output-dir", got.to_str().unwrap()],
        &get_env,
    );
    assert!(out.status.success(), "{}", text(&out));
    let mut files: Vec<_> = std::fs::read_dir(&got)
        .unwrap()
        .map(|e| e.unwrap().path().join("query/rows.parquet"))
        .filter(|p| p.exists())
        .collect();
    files.sort();
    assert_eq!(files.len(), 3, "one file per node in {}", got.display());
    // Read back in one engine: every region's every row, once.
    let policy = shoal_analytics::DataPolicy {
        allow: vec![shoal_analytics::DataDir::parse(&got.display().to_string()).unwrap()],
        ..Default::default()
    };
    let sql = format!(
        "SELECT region, count(*) AS n FROM read_parquet('{}/*/query/rows.parquet') GROUP BY region ORDER BY region",
        got.display()
    );
    let answer = tokio::runtime::Runtime::new()
        .unwrap()
        .block_on(shoal_analytics::run_sql(&sql, &policy))
        .unwrap();
    let counts: Vec<(String, i64)> = answer
        .rows
        .iter()
        .map(|r| (r[0].as_str().unwrap().to_string(), r[1].as_i64().unwrap()))
        .collect();
    let want: Vec<(String, i64)> = [("ap", 20_000), ("eu", 10), ("us", 1_000)]
        .map(|(r, n)| (r.to_string(), n))
        .into();
    assert_eq!(counts, want);

    // A wrong Format is refused at submission, naming the param and the choices.
    let bad = fleet._dir.path().join("bad.yaml");
    std::fs::write(
        &bad,
        std::fs::read_to_string(&job)
            .unwrap()
            .replace("Format: parquet", "Format: xlsx"),
    )
    .unwrap();
    let out = fleet.shoal(&["job", "run", bad.to_str().unwrap()]);
    assert!(!out.status.success());
    assert!(
        text(&out).contains("param Format must be json or parquet, got \"xlsx\""),
        "{}",
        text(&out)
    );
}

/// Peak and current resident memory of a process, in bytes (`VmHWM`, `VmRSS`).
fn memory(pid: u32) -> (u64, u64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let kib = |key: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(key))
            .and_then(|v| v.trim().trim_end_matches(" kB").trim().parse::<u64>().ok())
            .unwrap_or_else(|| panic!("{key} in /proc/{pid}/status"))
            * 1024
    };
    (kib("VmHWM:"), kib("VmRSS:"))
}

#[test]
fn a_query_past_the_memory_limit_fails_and_the_agent_stays_within_it() {
    const LIMIT_MIB: u64 = 32;
    let fleet = fleet_with(&[], &["--data-memory-limit", "32MiB"]);
    let agent = fleet.agents[1].0.id();
    let (_, before) = memory(agent);
    // Sorting 4 million rows of about 60 bytes each holds them all: far past 32 MiB.
    let sql = "SELECT value, concat(repeat('x', 50), CAST(value AS VARCHAR)) AS s \
               FROM generate_series(1, 4000000) ORDER BY s DESC";
    let out = fleet.query(&[sql, "--node", "n-us"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("query memory limit 32 MiB exceeded"),
        "{}",
        text(&out)
    );
    // The agent is still there and answers the next query.
    let rows = fleet.rows(&[
        "SELECT count(*) AS n FROM read_parquet('/data/sales/*.parquet')",
        "--node",
        "n-us",
    ]);
    assert_eq!(rows[0]["n"], 1000);
    // Its peak resident memory grew by less than the limit plus 64 MiB.
    let (peak, _) = memory(agent);
    let grown = peak.saturating_sub(before);
    assert!(
        grown < (LIMIT_MIB + 64) << 20,
        "the agent's peak RSS grew by {} MiB over {} MiB at rest",
        grown >> 20,
        before >> 20
    );
}
