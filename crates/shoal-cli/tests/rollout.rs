//! Rollouts end to end: the real `shoal` binary as a devstack (an orchestrator and several
//! agents over real WebSockets), with real host commands, driven as an operator would with
//! `shoal exec --batch`, `shoal job run` of a file with a `Rollout` block, `shoal job
//! rollout-status` and `shoal job promote`.

mod common;
use common::*;

fn stdout(o: &std::process::Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &std::process::Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn ndjson(o: &std::process::Output) -> Vec<serde_json::Value> {
    stdout(o)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// RO1 with real processes: `--batch 1` runs one node at a time, in node order (each node's
/// start is after the previous node's end, read from the nodes' own clocks).
#[test]
fn shoal_exec_with_a_batch_runs_the_nodes_one_wave_at_a_time() {
    let d = Devstack::start(3, &["--enable-exec", "--exec-allow", "/bin/sh"]);
    let out = d.shoal(&[
        "exec",
        "--batch",
        "1",
        "--shell",
        "--output",
        "ndjson",
        "--",
        "date +%s%N; sleep 0.3; date +%s%N",
    ]);
    assert!(out.status.success(), "{}", text(&out));
    let results = ndjson(&out);
    assert_eq!(results.len(), 3, "{}", text(&out));
    let mut spans: Vec<(u128, u128)> = results
        .iter()
        .map(|r| {
            let lines: Vec<u128> = r["stdout"]
                .as_str()
                .unwrap()
                .lines()
                .map(|l| l.parse().unwrap())
                .collect();
            (lines[0], lines[1])
        })
        .collect();
    let in_node_order = spans.clone();
    spans.sort();
    assert_eq!(spans, in_node_order, "waves go in node-id order");
    for pair in spans.windows(2) {
        assert!(
            pair[1].0 >= pair[0].1,
            "a node started before the previous wave ended: {spans:?}"
        );
    }
    assert!(
        stderr(&out).contains("rollout done: 3 succeeded"),
        "{}",
        stderr(&out)
    );
}

/// RO2 with real processes: the first failure stops the rollout (MaxFailures defaults to 0);
/// the nodes after it never run, are listed as not started, and the command fails.
#[test]
fn shoal_exec_with_a_batch_stops_at_the_first_failure_and_names_the_nodes_not_started() {
    let d = Devstack::start(4, &["--enable-exec", "--exec-allow", "/bin/sh"]);
    let out = d.shoal(&[
        "exec",
        "--batch",
        "1",
        "--shell",
        "--output",
        "ndjson",
        "--",
        "test $SHOAL_NODE_ID != n-devstack-1",
    ]);
    assert!(!out.status.success(), "{}", text(&out));
    let results = ndjson(&out);
    let outcomes: Vec<&str> = results
        .iter()
        .map(|r| r["outcome"].as_str().unwrap())
        .collect();
    assert_eq!(
        outcomes,
        ["succeeded", "failed", "not_started", "not_started"],
        "{}",
        text(&out)
    );
    let err = stderr(&out);
    assert!(
        err.contains(
            "4 nodes: 1 succeeded, 1 failed, 0 unreachable, 0 rejected by policy, 2 not started"
        ),
        "{err}"
    );
    assert!(
        err.contains(
            "rollout stopped: 1 failure > 0: 1 succeeded, 1 failed (n-devstack-1), 2 not-started"
        ),
        "{err}"
    );
}

fn daemon_file(name: &str, seconds: u32, rollout: &str) -> String {
    format!(
        r#"Name: {name}
Type: daemon
Tasks:
  - Name: main
    Engine:
      Type: exec
      Params:
        Command: /bin/sleep
        Arguments: ["{seconds}"]
{rollout}"#
    )
}

/// Node ids running each version of `job`, from its live executions.
fn versions(d: &Devstack, job: &str) -> Vec<(String, u64)> {
    let execs = json(d.port, &["job", "executions", job]);
    let mut live: Vec<(String, u64)> = execs
        .as_array()
        .cloned()
        .unwrap_or_default()
        .iter()
        // Bacalhau's wire format numbers the states: 6 is Running.
        .filter(|e| e["ComputeState"]["StateType"] == 6)
        .map(|e| {
            (
                e["NodeID"].as_str().unwrap().to_string(),
                e["JobVersion"].as_u64().unwrap(),
            )
        })
        .collect();
    live.sort();
    live
}

/// RO4 with real processes: a daemon update with a canary puts the new version on one node,
/// leaves the others on the old one and waits; `shoal job promote` rolls on to the rest.
#[test]
fn a_daemon_update_with_a_canary_waits_for_promotion_then_rolls_on() {
    let d = Devstack::start(3, &["--enable-exec", "--exec-allow", "/bin/sleep"]);
    let out = d.run_file("v1.yaml", &daemon_file("sleeper", 600, ""));
    assert!(out.status.success(), "{}", text(&out));
    eventually("v1 running on every node", || {
        versions(&d, "sleeper")
            .iter()
            .filter(|(_, v)| *v == 1)
            .count()
            == 3
    });

    let rollout = "Rollout:\n  Canary: 1\n  Health: {MinHealthy: 1s, Deadline: 1m}\n";
    let out = d.run_file("v2.yaml", &daemon_file("sleeper", 601, rollout));
    assert!(out.status.success(), "{}", text(&out));
    eventually("the canary to pass its health check", || {
        d.rollout("sleeper")["Phase"]
            .as_str()
            .is_some_and(|p| p.starts_with("awaiting promotion"))
    });
    assert_eq!(
        versions(&d, "sleeper"),
        [
            ("n-devstack-0".to_string(), 2),
            ("n-devstack-1".to_string(), 1),
            ("n-devstack-2".to_string(), 1)
        ],
        "only the canary runs v2"
    );
    let described = stdout(&d.shoal(&["job", "describe", "sleeper"]));
    assert!(
        described.contains("Phase    = awaiting promotion: 1 canary succeeded"),
        "{described}"
    );

    let out = d.shoal(&["job", "promote", "sleeper"]);
    assert!(out.status.success(), "{}", text(&out));
    eventually("the rollout to finish", || {
        d.rollout("sleeper")["Outcome"] == "rollout done: 3 succeeded"
    });
    let all: Vec<u64> = versions(&d, "sleeper").iter().map(|(_, v)| *v).collect();
    assert_eq!(all, [2, 2, 2]);

    let again = d.shoal(&["job", "promote", "sleeper"]);
    assert!(!again.status.success());
    assert!(
        stderr(&again).contains("is not waiting for promotion: its rollout is over"),
        "{}",
        text(&again)
    );
}

/// The rollout's state is stored: an orchestrator killed during a pause comes back in the same
/// pause, with the finished wave kept and nothing run twice; stopping the job then counts the
/// rest as not started (RO6).
#[test]
fn a_rollout_survives_an_orchestrator_restart_and_a_stop_counts_the_rest_not_started() {
    let mut d = Devstack::start(3, &[]);
    let job = "Name: slow\nType: ops\nRollout: {Batch: 1, Pause: 1h}\nTasks:\n  - Name: main\n    Engine: {Type: noop}\n";
    let out = d.run_file("slow.yaml", job);
    assert!(out.status.success(), "{}", text(&out));
    eventually("the pause after wave 1", || {
        d.rollout("slow")["Phase"]
            .as_str()
            .is_some_and(|p| p.starts_with("pausing until"))
    });
    let before = d.rollout("slow");

    d.restart();
    let after = d.rollout("slow");
    assert_eq!(after["Phase"], before["Phase"], "the same pause: {after}");
    assert_eq!(after["Nodes"][0]["Progress"], "succeeded");
    assert_eq!(after["Nodes"][1]["Progress"], "not_started");
    let execs = json(d.port, &["job", "executions", "slow"]);
    assert_eq!(
        execs.as_array().map(Vec::len),
        Some(1),
        "wave 1 is not run again: {execs}"
    );

    let out = d.shoal(&["job", "stop", "slow"]);
    assert!(out.status.success(), "{}", text(&out));
    eventually("the rollout to end with the job", || {
        d.rollout("slow")["Outcome"]
            .as_str()
            .is_some_and(|o| o.starts_with("rollout ended with the job"))
    });
    let status = stdout(&d.shoal(&["job", "rollout-status", "slow"]));
    assert!(
        status
            .contains("1 succeeded, 0 failed, 0 unreachable, 0 rejected, 0 running, 2 not-started"),
        "{status}"
    );
}

/// Bad input: a rollout the orchestrator cannot carry out is refused with what to do, and
/// `rollout-status` of a job without one says why there is nothing to show.
#[test]
fn rollouts_it_cannot_carry_out_are_refused_and_status_says_why_there_is_none() {
    let d = Devstack::start(1, &[]);
    let service = "Name: svc\nType: service\nCount: 1\nRollout: {Batch: 1}\nTasks:\n  - Name: main\n    Engine: {Type: noop}\n";
    let out = d.run_file("svc.yaml", service);
    assert!(!out.status.success());
    assert!(
        text(&out).contains("does not carry out rollouts of service jobs"),
        "{}",
        text(&out)
    );
    let plain = "Name: plain\nType: ops\nTasks:\n  - Name: main\n    Engine: {Type: noop}\n";
    assert!(d.run_file("plain.yaml", plain).status.success());
    let out = d.shoal(&["job", "rollout-status", "plain"]);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("it has no Rollout block"),
        "{}",
        text(&out)
    );
    let out = d.shoal(&["job", "promote", "plain"]);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("is not waiting for promotion: it has no Rollout block"),
        "{}",
        text(&out)
    );
}

fn checked_job(name: &str, marker: &str) -> String {
    format!(
        r#"Name: {name}
Type: ops
Rollout:
  Batch: 1
  Health: {{Type: command, Command: "/bin/test -e {marker}", MinHealthy: 0s, Deadline: 2s}}
Tasks:
  - Name: main
    Engine: {{Type: exec, Params: {{Command: /bin/true}}}}
"#
    )
}

/// A health command runs on the node after the command: a node whose check does not pass
/// within the deadline fails (and stops the rollout) even though its command exited 0; once
/// the check passes, the rollout goes through.
#[test]
fn a_health_command_decides_whether_a_node_counts_as_succeeded() {
    use std::os::unix::fs::PermissionsExt;
    let d = Devstack::start(
        2,
        &[
            "--enable-exec",
            "--exec-allow",
            "/bin/true",
            "--exec-allow",
            "/bin/test",
        ],
    );
    let dir = tempfile::tempdir().unwrap();
    // The check runs as nobody: it must be able to look inside.
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let marker = dir.path().join("healthy");
    let marker = marker.to_str().unwrap();

    let out = d.run_file("sick.yaml", &checked_job("sick", marker));
    assert!(out.status.success(), "{}", text(&out));
    eventually("the rollout to stop", || {
        d.rollout("sick")["Outcome"].is_string()
    });
    let state = d.rollout("sick");
    assert_eq!(state["Nodes"][0]["Progress"], "failed", "{state}");
    let why = state["Nodes"][0]["Message"].as_str().unwrap_or_default();
    assert!(
        why.contains(&format!(
            "health check `/bin/test -e {marker}` did not pass within 2s: exit code 1"
        )),
        "{why}"
    );
    assert_eq!(state["Nodes"][1]["Progress"], "not_started", "{state}");

    std::fs::write(marker, "").unwrap();
    let out = d.run_file("well.yaml", &checked_job("well", marker));
    assert!(out.status.success(), "{}", text(&out));
    eventually("the rollout to finish", || {
        d.rollout("well")["Outcome"].is_string()
    });
    assert_eq!(d.rollout("well")["Outcome"], "rollout done: 2 succeeded");
}
