//! Host commands end to end: the real `shoal` binary as a devstack (an orchestrator and two
//! agents over real WebSockets), driven with `shoal exec` as an operator would. The nodes'
//! exec policy comes from the devstack's `--enable-exec`/`--exec-allow` flags.

mod common;
use common::*;

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

const NODES: usize = 2;

/// A devstack of [`NODES`] agents started with `exec_flags`, once they are all connected.
struct Devstack {
    port: u16,
    _proc: Proc,
    _data: tempfile::TempDir,
}

impl Devstack {
    fn start(exec_flags: &[&str]) -> Devstack {
        let data = tempfile::tempdir().unwrap();
        let port = free_port();
        let p = port.to_string();
        let mut args = vec!["devstack", "--computes", "2", "--api-port", &p];
        args.extend(exec_flags);
        let proc = spawn(&args, data.path());
        eventually("the devstack's agents to connect", || {
            connected_nodes(port) == NODES
        });
        Devstack {
            port,
            _proc: proc,
            _data: data,
        }
    }

    fn shoal(&self, args: &[&str]) -> std::process::Output {
        shoal(self.port, args)
    }
}

fn stdout(o: &std::process::Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &std::process::Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// The job id `shoal exec` announces on stderr.
fn job_id(o: &std::process::Output) -> String {
    let err = stderr(o);
    err.split_whitespace()
        .find(|w| w.starts_with("j-"))
        .unwrap_or_else(|| panic!("no job id in {err}"))
        .trim_end_matches(';')
        .to_string()
}

/// A folder the user nobody can enter, holding a fake `systemctl` that prints its arguments.
fn fake_systemctl() -> (tempfile::TempDir, String) {
    let dir = tempfile::tempdir().unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let script = dir.path().join("systemctl");
    std::fs::write(&script, "#!/bin/sh\necho \"fake systemctl $*\"\n").unwrap();
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
    let path = script.display().to_string();
    (dir, path)
}

fn is_root() -> bool {
    let out = std::process::Command::new("id").arg("-u").output().unwrap();
    String::from_utf8_lossy(&out.stdout).trim() == "0"
}

/// EX1: nodes started without --enable-exec refuse exec jobs at submission, each with its own
/// reason, and `node describe` says exec is disabled before anyone tries.
#[test]
fn exec_is_off_by_default_and_the_submission_names_every_node() {
    let d = Devstack::start(&[]);
    let out = d.shoal(&["exec", "--", "/bin/echo", "hello"]);
    assert!(!out.status.success(), "{}", text(&out));
    let err = stderr(&out);
    for i in 0..NODES {
        assert!(
            err.contains(&format!(
                "node n-devstack-{i}: exec disabled (start the agent with --enable-exec)"
            )),
            "{err}"
        );
    }
    let described = stdout(&d.shoal(&["node", "describe", "n-devstack-0"]));
    assert!(described.contains("exec: disabled"), "{described}");
}

/// EX2 and EX3: the allowlist lets the fake `systemctl restart nginx` run on every node, as
/// the user nobody, and refuses `rm -rf` on every node before it starts.
#[test]
fn the_allowlist_decides_on_every_node_and_the_table_says_what_each_did() {
    let (dir, systemctl) = fake_systemctl();
    let rule = format!("{systemctl} restart [a-z-]+");
    let d = Devstack::start(&[
        "--enable-exec",
        "--exec-allow",
        &rule,
        "--exec-allow",
        "/usr/bin/id",
    ]);
    let described = stdout(&d.shoal(&["node", "describe", "n-devstack-1"]));
    assert!(described.contains("exec: allowlist 2 rules"), "{described}");

    let out = d.shoal(&["exec", "--", &systemctl, "restart", "nginx"]);
    assert!(out.status.success(), "{}", text(&out));
    let table = stdout(&out);
    let lines: Vec<&str> = table
        .lines()
        .filter(|l| l.contains("n-devstack-"))
        .collect();
    assert_eq!(lines.len(), NODES, "{table}");
    for line in lines {
        assert!(line.contains("succeeded"), "{line}");
        assert!(line.contains(" 0 "), "{line}");
        assert!(line.contains("fake systemctl restart nginx"), "{line}");
    }
    assert!(
        stderr(&out)
            .contains("2 nodes: 2 succeeded, 0 failed, 0 unreachable, 0 rejected by policy"),
        "{}",
        stderr(&out)
    );

    let victim = dir.path().join("x");
    std::fs::write(&victim, "still here").unwrap();
    let victim_path = victim.display().to_string();
    let out = d.shoal(&["exec", "--", "/bin/rm", "-rf", &victim_path]);
    assert!(!out.status.success(), "{}", text(&out));
    let table = stdout(&out);
    for i in 0..NODES {
        let line = table
            .lines()
            .find(|l| l.contains(&format!("n-devstack-{i}")))
            .unwrap_or_else(|| panic!("no line for node {i} in {table}"));
        assert!(line.contains("rejected"), "{line}");
    }
    assert!(table.contains("not in exec allowlist"), "{table}");
    assert!(
        stderr(&out)
            .contains("2 nodes: 0 succeeded, 0 failed, 0 unreachable, 2 rejected by policy"),
        "{}",
        stderr(&out)
    );
    assert!(victim.exists(), "the refused rm ran");
    let described = stdout(&d.shoal(&["job", "describe", &job_id(&out), "--output", "json"]));
    for i in 0..NODES {
        assert!(
            described.contains(&format!(
                "node n-devstack-{i}: not in exec allowlist: /bin/rm -rf {victim_path}"
            )),
            "{described}"
        );
    }

    if is_root() {
        let out = d.shoal(&["exec", "--output", "json", "--", "id", "-u"]);
        assert!(out.status.success(), "{}", text(&out));
        let results: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        let results = results.as_array().unwrap();
        assert_eq!(results.len(), NODES);
        for r in results {
            assert_eq!(r["outcome"], "succeeded", "{r}");
            assert_eq!(r["stdout"], "65534\n", "{r}");
        }
        let out = d.shoal(&["exec", "--user", "root", "--", "id", "-u"]);
        assert!(!out.status.success(), "{}", text(&out));
        assert!(
            stdout(&out).contains("user root is not allowed for exec"),
            "{}",
            text(&out)
        );
    } else {
        eprintln!("skipping the user checks: running as nobody needs the agent to be root");
    }
    drop(d);
    assert!(Path::new(&victim_path).exists());
}

/// A command that fails on some nodes makes `shoal exec` fail, with the exit code per node.
#[test]
fn a_non_zero_exit_is_reported_per_node_and_fails_the_command() {
    let d = Devstack::start(&["--enable-exec", "--exec-allow", "/bin/sh"]);
    let out = d.shoal(&[
        "exec",
        "--shell",
        "--output",
        "ndjson",
        "--",
        "echo on $SHOAL_NODE_ID; test $SHOAL_NODE_ID = n-devstack-0",
    ]);
    assert!(!out.status.success(), "{}", text(&out));
    let results: Vec<serde_json::Value> = stdout(&out)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(results.len(), NODES, "{}", text(&out));
    assert_eq!(results[0]["node_id"], "n-devstack-0");
    assert_eq!(results[0]["exit_code"], 0);
    assert_eq!(results[0]["stdout"], "on n-devstack-0\n");
    assert_eq!(results[1]["node_id"], "n-devstack-1");
    assert_eq!(results[1]["outcome"], "failed");
    assert_eq!(results[1]["exit_code"], 1);
    assert!(
        stderr(&out)
            .contains("2 nodes: 1 succeeded, 1 failed, 0 unreachable, 0 rejected by policy"),
        "{}",
        stderr(&out)
    );
}

/// The node kills a command at its time limit and says so; the job's own deadline comes later,
/// so the orchestrator does not cancel it first.
#[test]
fn a_command_past_its_time_limit_is_killed_by_its_node_and_reported_as_timed_out() {
    let d = Devstack::start(&["--enable-exec", "--exec-allow", "/bin/sh"]);
    let out = d.shoal(&[
        "exec",
        "--shell",
        "--timeout",
        "1s",
        "--output",
        "json",
        "--",
        "sleep 60",
    ]);
    assert!(!out.status.success(), "{}", text(&out));
    let results: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    for r in results.as_array().unwrap() {
        assert_eq!(r["outcome"], "failed", "{r}");
        assert_eq!(r["message"], "execution timed out after 1s", "{r}");
        assert_eq!(r["stderr"], "killed: timeout after 1s\n", "{r}");
    }
}

/// In an incident a cordoned node is left out on purpose, and the account says so.
#[test]
fn a_cordoned_node_is_skipped_and_named_beside_the_account() {
    let d = Devstack::start(&["--enable-exec", "--exec-allow", "/bin/echo"]);
    let out = d.shoal(&["node", "cordon", "n-devstack-0"]);
    assert!(out.status.success(), "{}", text(&out));
    let out = d.shoal(&["exec", "--", "/bin/echo", "hi"]);
    assert!(out.status.success(), "{}", text(&out));
    let said = stderr(&out);
    assert!(said.contains("1 node: 1 succeeded"), "{said}");
    assert!(
        said.contains("skipped n-devstack-0: node cordoned by an operator"),
        "{said}"
    );
    assert!(!stdout(&out).contains("n-devstack-0"), "{}", stdout(&out));
}
