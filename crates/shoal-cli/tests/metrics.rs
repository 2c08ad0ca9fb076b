//! `/metrics` and `/metrics/fleet` with the real binary, read by a real Prometheus parser (PyPI
//! `prometheus-client`, installed by `.ci/run`): the exposition parses, counters and histograms
//! have the shape Prometheus expects, submissions and nodes are counted, the agents' host
//! samples are grouped by region (and shown by `shoal node top`), and access needs
//! `read:agent` unless `--metrics-public`.

mod common;
use common::*;

use std::process::{Command, Stdio};

use serde_json::Value;

/// Parses an exposition with `prometheus_client.parser`; `None` (with the reason printed)
/// when the module is missing, which `.ci/run` does not allow (SHOAL_REQUIRE_PROMETHEUS).
fn parse(text: &str) -> Option<Value> {
    const SCRIPT: &str = r#"
import json, sys
from prometheus_client.parser import text_string_to_metric_families
out = []
for f in text_string_to_metric_families(sys.stdin.read()):
    out.append({"name": f.name, "type": f.type,
                "samples": [[s.name, s.labels, s.value] for s in f.samples]})
print(json.dumps(out))
"#;
    let check = Command::new("python3")
        .args(["-c", "import prometheus_client"])
        .output();
    if !check.is_ok_and(|o| o.status.success()) {
        assert!(
            std::env::var_os("SHOAL_REQUIRE_PROMETHEUS").is_none(),
            "python3 -m pip install prometheus-client (SHOAL_REQUIRE_PROMETHEUS is set)"
        );
        eprintln!("skipping: python3 has no prometheus_client (pip install prometheus-client)");
        return None;
    }
    let mut child = Command::new("python3")
        .args(["-c", SCRIPT])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "the exposition does not parse: {}\n{text}",
        String::from_utf8_lossy(&out.stderr)
    );
    Some(serde_json::from_slice(&out.stdout).unwrap())
}

/// `curl` the metrics; the status and the body.
fn scrape(port: u16, key: Option<&str>) -> (u16, String) {
    scrape_path(port, "/metrics", key)
}

/// `curl` a page of the API at `path` (with its query string).
fn scrape_path(port: u16, path: &str, key: Option<&str>) -> (u16, String) {
    let mut cmd = Command::new("curl");
    cmd.args(["-s", "-w", "\n%{http_code}", "--max-time", "5"]);
    if let Some(k) = key {
        cmd.args(["-H", &format!("Authorization: Bearer {k}")]);
    }
    let out = cmd
        .arg(format!("http://127.0.0.1:{port}{path}"))
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    let (body, code) = text.rsplit_once('\n').unwrap_or(("", "0"));
    (code.trim().parse().unwrap_or(0), body.to_string())
}

/// The value of the sample `name` whose labels include `labels`, summed over the matches.
fn value(families: &Value, name: &str, labels: &[(&str, &str)]) -> f64 {
    families
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|f| f["samples"].as_array().unwrap())
        .filter(|s| s[0] == name && labels.iter().all(|(k, v)| s[1][k] == *v))
        .map(|s| s[2].as_f64().unwrap())
        .sum()
}

fn family<'a>(families: &'a Value, name: &str) -> &'a Value {
    families
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["name"] == name)
        .unwrap_or_else(|| panic!("no family {name} in {families}"))
}

#[test]
fn devstack_metrics_parse_count_submissions_and_nodes_and_have_proper_histograms() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let _dev = spawn(
        &[
            "devstack",
            "--computes",
            "3",
            "--api-port",
            &port.to_string(),
        ],
        dir.path(),
    );
    eventually("devstack", || connected_nodes(port) == 3);
    let (code, before) = scrape(port, None);
    assert_eq!(code, 200, "devstack serves metrics openly: {before}");
    let Some(before) = parse(&before) else { return };

    let job = dir.path().join("noop.yaml");
    std::fs::write(
        &job,
        "Type: batch\nTasks:\n  - Name: main\n    Engine: { Type: noop }\n",
    )
    .unwrap();
    for _ in 0..3 {
        let out = shoal(port, &["job", "run", job.to_str().unwrap()]);
        assert!(out.status.success(), "{}", text(&out));
    }
    let out = shoal(port, &["query", "SELECT hostname FROM system_info"]);
    assert!(out.status.success(), "{}", text(&out));
    let (_, after) = scrape(port, None);
    let after = parse(&after).unwrap();

    let submitted = |f: &Value| value(f, "shoal_jobs_submitted_total", &[("type", "batch")]);
    assert_eq!(submitted(&after) - submitted(&before), 3.0);
    assert_eq!(family(&after, "shoal_jobs_submitted")["type"], "counter");
    assert_eq!(
        value(&after, "shoal_nodes", &[("status", "connected")]),
        3.0
    );
    assert_eq!(value(&after, "shoal_link_connected_agents", &[]), 3.0);
    assert_eq!(value(&after, "shoal_jobs", &[("state", "completed")]), 3.0);
    assert!(value(&after, "shoal_link_frames_total", &[("dir", "in")]) > 0.0);
    assert!(
        value(
            &after,
            "shoal_http_requests_total",
            &[("route", "/api/v1/orchestrator/jobs"), ("code", "200")]
        ) >= 3.0,
        "submissions are counted under their route template"
    );
    assert_eq!(value(&after, "shoal_queries_total", &[]), 1.0);
    assert_eq!(
        value(
            &after,
            "shoal_query_nodes_total",
            &[("outcome", "answered")]
        ),
        3.0,
        "one fleet query answered by the 3 nodes"
    );
    assert_eq!(
        value(
            &after,
            "shoal_query_nodes_total",
            &[("outcome", "unreachable")]
        ),
        0.0
    );
    for name in [
        "shoal_store_tx_seconds",
        "shoal_scheduler_plan_seconds",
        "shoal_query_fanout_seconds",
    ] {
        let f = family(&after, name);
        assert_eq!(f["type"], "histogram");
        for suffix in ["_bucket", "_sum", "_count"] {
            let sample = format!("{name}{suffix}");
            assert!(
                f["samples"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .any(|s| s[0] == sample.as_str()),
                "{name} has no {sample}"
            );
        }
        assert!(value(&after, &format!("{name}_count"), &[]) > 0.0);
    }
    for f in after.as_array().unwrap() {
        for s in f["samples"].as_array().unwrap() {
            let labels = s[1].as_object().unwrap();
            assert!(
                !labels.contains_key("node") && !labels.contains_key("node_id"),
                "self-metrics carry no node ids: {s}"
            );
        }
    }
}

#[test]
fn an_orchestrators_metrics_need_read_agent_unless_public() {
    let tmp = tempfile::tempdir().unwrap();
    let port = free_port();
    let o = tmp.path().join("o");
    let _orch = spawn(
        &["serve", "--orchestrator", "--api-port", &port.to_string()],
        &o,
    );
    eventually("the orchestrator", || {
        o.join("orchestrator/admin-api-key").exists() && scrape(port, None).0 != 0
    });
    assert_eq!(scrape(port, None).0, 401);
    assert_eq!(scrape_path(port, "/metrics/fleet", None).0, 401);
    let key = std::fs::read_to_string(o.join("orchestrator/admin-api-key")).unwrap();
    let (code, body) = scrape(port, Some(key.trim()));
    assert_eq!(code, 200);
    assert!(
        body.contains("# TYPE shoal_link_connected_agents gauge"),
        "{body}"
    );
    let (code, body) = scrape_path(port, "/metrics/fleet", Some(key.trim()));
    assert_eq!(code, 200, "{body}");
    assert!(body.contains("shoal_fleet_reporting_nodes 0"), "{body}");

    let port2 = free_port();
    let _public = spawn(
        &[
            "serve",
            "--orchestrator",
            "--metrics-public",
            "--api-port",
            &port2.to_string(),
        ],
        &tmp.path().join("p"),
    );
    eventually("the public orchestrator", || scrape(port2, None).0 == 200);
    assert_eq!(scrape_path(port2, "/metrics/fleet", None).0, 200);
}

/// A host's `/proc` and `/sys` as the agents read them: 4 GiB of 16 GiB memory used, load 1.5,
/// 25% CPU since boot, and one thermal zone at 47.5 °C. Returns the flags that point a
/// devstack's agents at it.
fn fake_host(dir: &std::path::Path) -> Vec<String> {
    let files = [
        (
            "proc/meminfo",
            "MemTotal: 16777216 kB\nMemFree: 1000 kB\nMemAvailable: 12582912 kB\n",
        ),
        ("proc/loadavg", "1.50 1.00 0.50 2/300 4242\n"),
        ("proc/stat", "cpu  200 0 50 750 0 0 0 0 0 0\n"),
        ("sys/class/thermal/thermal_zone0/temp", "47500\n"),
    ];
    for (path, text) in files {
        let p = dir.join(path);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, text).unwrap();
    }
    let root = |r: &str| dir.join(r).to_str().unwrap().to_string();
    vec![
        "--proc-root".into(),
        root("proc"),
        "--sysfs-root".into(),
        root("sys"),
    ]
}

#[test]
fn fleet_metrics_parse_and_group_the_agents_host_samples_by_region() {
    let host = tempfile::tempdir().unwrap();
    let flags = fake_host(host.path());
    let flags: Vec<&str> = flags.iter().map(String::as_str).collect();
    // Devstack's agents are in regions eu, us, ap, eu.
    let dev = Devstack::start(4, &flags);
    let page = |query: &str| {
        let (code, body) = scrape_path(dev.port, &format!("/metrics/fleet{query}"), None);
        assert_eq!(code, 200, "{body}");
        body
    };
    eventually("every agent's first sample", || {
        page("").contains("shoal_fleet_reporting_nodes 4\n")
    });
    let Some(grouped) = parse(&page("?by=region")) else {
        return;
    };
    const GIB: f64 = (1u64 << 30) as f64;
    for (region, nodes) in [("eu", 2.0), ("us", 1.0), ("ap", 1.0)] {
        let at = [("region", region)];
        assert_eq!(value(&grouped, "shoal_fleet_nodes", &at), nodes, "{region}");
        assert_eq!(
            value(&grouped, "shoal_fleet_memory_used_bytes", &at),
            nodes * 4.0 * GIB,
            "memory is summed over {region}"
        );
        assert_eq!(
            value(&grouped, "shoal_fleet_temperature_celsius_max", &at),
            47.5
        );
        assert_eq!(value(&grouped, "shoal_fleet_load1_avg", &at), 1.5);
    }
    // Regions × metrics: every group family has one series per region, none per node.
    for f in grouped.as_array().unwrap() {
        let name = f["name"].as_str().unwrap();
        assert_eq!(f["type"], "gauge", "{name}");
        if name.starts_with("shoal_fleet_") && name != "shoal_fleet_reporting_nodes" {
            assert_eq!(f["samples"].as_array().unwrap().len(), 3, "{name}: {f}");
        }
        assert!(
            !name.starts_with("shoal_node_"),
            "per-node only when asked: {name}"
        );
    }

    let per_node = parse(&page("?by=region&per_node=true")).unwrap();
    for i in 0..4 {
        let node = format!("n-devstack-{i}");
        assert_eq!(
            value(
                &per_node,
                "shoal_node_memory_used_bytes",
                &[("node_id", node.as_str())]
            ),
            4.0 * GIB,
            "{node}"
        );
    }
    let (code, body) = scrape_path(dev.port, "/metrics/fleet?per_node=maybe", None);
    assert_eq!(code, 400);
    assert!(body.contains("per_node"), "{body}");
}

#[test]
fn node_top_shows_every_node_busiest_first_and_groups_by_a_label() {
    let host = tempfile::tempdir().unwrap();
    let flags = fake_host(host.path());
    let flags: Vec<&str> = flags.iter().map(String::as_str).collect();
    let dev = Devstack::start(3, &flags);
    let top = |args: &[&str]| json(dev.port, &[&["node", "top", "--once"], args].concat());
    eventually("every agent's first sample", || top(&[])["Reporting"] == 3);

    let report = top(&[]);
    let nodes = report["Nodes"].as_array().unwrap();
    assert_eq!(nodes.len(), 3, "{report}");
    for n in nodes {
        let s = &n["Sample"];
        assert_eq!(
            s["CPUPercent"], 25.0,
            "the first sample covers the time since boot"
        );
        assert_eq!(s["MemoryUsed"], 4u64 << 30);
        assert_eq!(s["TemperatureC"], 47.5);
        assert!(s["DiskTotal"].as_u64().unwrap() > 0, "{s}");
    }
    let by = top(&["--by", "region"]);
    let values: Vec<&str> = by["Groups"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| g["Value"].as_str().unwrap())
        .collect();
    assert_eq!(values, ["ap", "eu", "us"], "{by}");
    assert!(by["Nodes"].as_array().unwrap().is_empty());

    // The table, printed once since stdout is not a terminal.
    let out = dev.shoal(&["node", "top"]);
    assert!(out.status.success(), "{}", text(&out));
    let table = String::from_utf8_lossy(&out.stdout);
    assert!(table.starts_with("3 nodes reporting"), "{table}");
    assert!(
        table.contains("REGION") && table.contains("47.5°C"),
        "{table}"
    );
    for i in 0..3 {
        assert!(table.contains(&format!("n-devstack-{i}")), "{table}");
    }

    // A label no node has: an empty table and a note naming the labels there are.
    let out = dev.shoal(&["node", "top", "--by", "regoin"]);
    assert!(out.status.success(), "{}", text(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("\"regoin\"") && stderr.contains("region"),
        "{stderr}"
    );

    let out = dev.shoal(&["node", "top", "--interval", "0s"]);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("--interval") && stderr.contains("longer than 0s"),
        "{stderr}"
    );
}
