//! Node enrolment with the real binary, as an operator does it: the join line `serve` prints,
//! `shoal node token create|list|delete`, a refused node's message, and `shoal node revoke`.

mod common;
use common::*;

use std::path::Path;
use std::process::{Command, Stdio};

/// Starts `shoal ARGS --data-dir DATA` with stderr (its log) written to `log`.
fn spawn_logged(args: &[&str], data: &Path, log: &Path) -> Proc {
    let child = Command::new(BIN)
        .args(args)
        .arg("--data-dir")
        .arg(data)
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(log).unwrap())
        .spawn()
        .expect("shoal starts");
    Proc(child)
}

fn admin(data: &Path) -> Vec<(&'static str, String)> {
    let key = std::fs::read_to_string(data.join("orchestrator/admin-api-key")).unwrap();
    vec![("SHOAL_API_KEY", key.trim().to_string())]
}

fn compute(port: u16, token: &str, name: &str, data: &Path, log: &Path) -> Proc {
    spawn_logged(
        &[
            "serve",
            "--compute",
            "--orchestrators",
            &format!("ws://127.0.0.1:{port}"),
            "--token",
            token,
            "--labels",
            &format!("name={name}"),
        ],
        data,
        log,
    )
}

/// The node labelled `name=NAME` as the orchestrator lists it.
fn node(port: u16, env: &[(&str, String)], name: &str) -> Option<serde_json::Value> {
    let out = shoal_env(port, &["node", "list", "--output", "json"], env);
    let nodes: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_default();
    nodes
        .as_array()?
        .iter()
        .find(|n| n["Info"]["Labels"]["name"] == name)
        .cloned()
}

fn connected(port: u16, env: &[(&str, String)], name: &str) -> bool {
    node(port, env, name).is_some_and(|n| n["Connection"] == "CONNECTED")
}

fn id_of(port: u16, env: &[(&str, String)], name: &str) -> String {
    node(port, env, name).expect("the node is listed")["Info"]["NodeID"]
        .as_str()
        .unwrap()
        .to_string()
}

#[test]
fn an_operator_enrols_nodes_with_join_tokens_and_revokes_one() {
    let tmp = tempfile::tempdir().unwrap();
    let o = tmp.path().join("o");
    let port = free_port();
    let _orch = spawn(
        &["serve", "--orchestrator", "--api-port", &port.to_string()],
        &o,
    );
    let printed = o.join("orchestrator/join-token");
    eventually("the printed join token", || {
        std::fs::read_to_string(&printed).is_ok_and(|t| t.contains('.'))
            && o.join("orchestrator/admin-api-key").exists()
    });
    let env = admin(&o);
    eventually("the API", || {
        shoal_env(port, &["node", "list"], &env).status.success()
    });
    let t = std::fs::read_to_string(&printed)
        .unwrap()
        .trim()
        .to_string();

    // The token serve printed enrols a node.
    let _a = compute(
        port,
        &t,
        "n-a",
        &tmp.path().join("a"),
        &tmp.path().join("a.log"),
    );
    eventually("n-a connected", || connected(port, &env, "n-a"));
    let a_id = id_of(port, &env, "n-a");
    let out = shoal_env(port, &["node", "describe", &a_id, "--output", "json"], &env);
    let described: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        described["Enrolment"]["TokenID"],
        t.split('.').next().unwrap(),
        "{described}"
    );

    // A one-use token made with the CLI, and the line it prints.
    let out = shoal_env(
        port,
        &[
            "node",
            "token",
            "create",
            "--ttl",
            "1h",
            "--uses",
            "1",
            "--description",
            "rack 4",
        ],
        &env,
    );
    assert!(out.status.success(), "{}", text(&out));
    let printed_out = text(&out);
    let once = printed_out
        .lines()
        .find_map(|l| l.split("--token ").nth(1))
        .expect("the join line")
        .trim()
        .to_string();
    assert!(printed_out.contains("1 uses left"), "{printed_out}");
    let _b = compute(
        port,
        &once,
        "n-b",
        &tmp.path().join("b"),
        &tmp.path().join("b.log"),
    );
    eventually("n-b connected", || connected(port, &env, "n-b"));
    let c_log = tmp.path().join("c.log");
    let _c = compute(port, &once, "n-c", &tmp.path().join("c"), &c_log);
    eventually("n-c's refusal in its log", || {
        std::fs::read_to_string(&c_log).is_ok_and(|l| l.contains("unknown or expired"))
    });
    assert!(!connected(port, &env, "n-c"));

    let out = shoal_env(port, &["node", "token", "list"], &env);
    let listed = text(&out);
    assert!(
        listed.contains("used up") && listed.contains("rack 4"),
        "{listed}"
    );
    assert!(
        !listed.contains(once.split('.').nth(1).unwrap()),
        "secrets are never listed: {listed}"
    );
    let no_key = shoal(port, &["node", "token", "list"]);
    assert!(!no_key.status.success(), "join tokens need credentials");

    // Deleting the token that enrolled n-b leaves n-b alone; revoking n-a drops it only.
    let id = once.split('.').next().unwrap();
    let out = shoal_env(port, &["node", "token", "delete", id], &env);
    assert!(out.status.success(), "{}", text(&out));
    let out = shoal_env(port, &["node", "revoke", &a_id], &env);
    assert!(out.status.success(), "{}", text(&out));
    eventually("n-a dropped", || !connected(port, &env, "n-a"));
    eventually("n-a's refusal in its log", || {
        std::fs::read_to_string(tmp.path().join("a.log")).is_ok_and(|l| l.contains("revoked"))
    });
    assert!(connected(port, &env, "n-b"));
}

#[test]
fn a_node_with_a_wrong_token_is_told_what_to_do() {
    let tmp = tempfile::tempdir().unwrap();
    let o = tmp.path().join("o");
    let port = free_port();
    let _orch = spawn(
        &["serve", "--orchestrator", "--api-port", &port.to_string()],
        &o,
    );
    eventually("the orchestrator", || {
        o.join("orchestrator/join-token").exists()
    });
    let log = tmp.path().join("x.log");
    let _x = compute(port, "abc.not-a-secret", "n-x", &tmp.path().join("x"), &log);
    eventually("the refusal in the node's log", || {
        std::fs::read_to_string(&log).is_ok_and(|l| {
            l.contains("join token abc unknown or expired") && l.contains("shoal node token create")
        })
    });
}
