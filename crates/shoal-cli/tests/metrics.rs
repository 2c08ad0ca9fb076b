//! `/metrics` with the real binary, read by a real Prometheus parser (PyPI `prometheus-client`,
//! installed by `.ci/run`): the exposition parses, counters and histograms have the shape
//! Prometheus expects, submissions and nodes are counted, and access needs `read:agent` unless
//! `--metrics-public`.

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
    let mut cmd = Command::new("curl");
    cmd.args(["-s", "-w", "\n%{http_code}", "--max-time", "5"]);
    if let Some(k) = key {
        cmd.args(["-H", &format!("Authorization: Bearer {k}")]);
    }
    let out = cmd
        .arg(format!("http://127.0.0.1:{port}/metrics"))
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
    for name in ["shoal_store_tx_seconds", "shoal_scheduler_plan_seconds"] {
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
    let key = std::fs::read_to_string(o.join("orchestrator/admin-api-key")).unwrap();
    let (code, body) = scrape(port, Some(key.trim()));
    assert_eq!(code, 200);
    assert!(
        body.contains("# TYPE shoal_link_connected_agents gauge"),
        "{body}"
    );

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
}
