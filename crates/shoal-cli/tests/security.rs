//! API authentication and authorization with the real binary: Bacalhau's own auth config and
//! the outcomes its integration suite expects, the secure default of a bare `serve`, bcrypt
//! passwords, namespace scope, anonymous access, and the audit log.

mod common;
use common::*;

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

const HELLO: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../examples/hello-wasm.yaml"
);

/// The users of Bacalhau's `17_basic_auth_enabled_orchestrator.yaml`, in its shape and with
/// its values (the test suite that loads it asserts on these names), plus the keys a Bacalhau
/// node config carries that Shoal accepts without acting on.
const BACALHAU_17: &str = r#"NameProvider: "uuid"
API:
  Port: 1234
  Auth:
    Users:
      - Alias: snoopy
        Username: snoopyusername
        Password: snoopypassword
        Capabilities:
          - Actions: [ "read:node", "read:agent", "read:job", "write:job" ]
      - Alias: readonlyuser
        Username: readonlyusername
        Password: readonlyuserpassword
        Capabilities:
          - Actions: [ "read:node", "read:agent", "read:job" ]
      - Alias: snoopy-api-key
        APIKey: P7D4CBB284634DD081FAC33868436ECCL
        Capabilities:
          - Actions: [ "read:node", "read:agent", "read:job", "write:job" ]
      - APIKey: QWERTYHFGCBNSKFIREHFURHUFE7KEEFBN
        Capabilities:
          - Actions: [ "read:node", "read:agent", "read:job"]
Orchestrator:
  Enabled: true
  Auth:
    Token: "i_am_very_secret_token"
"#;

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p
}

fn env(pairs: &[(&'static str, &str)]) -> Vec<(&'static str, String)> {
    pairs.iter().map(|(k, v)| (*k, v.to_string())).collect()
}

fn snoopy() -> Vec<(&'static str, String)> {
    env(&[
        ("BACALHAU_API_USERNAME", "snoopyusername"),
        ("BACALHAU_API_PASSWORD", "snoopypassword"),
    ])
}

/// `curl` status code and body of `GET path`, with extra curl arguments (headers).
fn curl(port: u16, path: &str, extra: &[&str]) -> (u16, String) {
    let out = Command::new("curl")
        .args(["-s", "-o", "-", "-w", "\n%{http_code}"])
        .args(extra)
        .arg(format!("http://127.0.0.1:{port}{path}"))
        .output()
        .expect("curl runs");
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    let (body, code) = text.rsplit_once('\n').unwrap_or(("", "0"));
    (code.trim().parse().unwrap_or(0), body.to_string())
}

fn wait_nodes(port: u16, creds: &[(&str, String)], n: usize) {
    eventually("the local compute node to connect", || {
        let out = shoal_env(port, &["node", "list", "--output", "json"], creds);
        serde_json::from_slice::<serde_json::Value>(&out.stdout)
            .ok()
            .and_then(|v| v.as_array().cloned())
            .map(|a| a.iter().filter(|n| n["Connection"] == "CONNECTED").count())
            == Some(n)
    });
}

fn job_id(out: &Output) -> String {
    assert!(out.status.success(), "{}", text(out));
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

#[test]
fn bacalhaus_basic_auth_config_loads_unchanged_and_each_user_gets_what_its_suite_expects() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = write(dir.path(), "17.yaml", BACALHAU_17);
    let port = free_port();
    let _hybrid = spawn(
        &[
            "serve",
            "--orchestrator",
            "--compute",
            "-c",
            cfg.to_str().unwrap(),
            "--api-port",
            &port.to_string(),
        ],
        &dir.path().join("data"),
    );
    wait_nodes(port, &snoopy(), 1);

    // The read-write user submits; the job completes.
    let id = job_id(&shoal_env(
        port,
        &["job", "run", HELLO, "--wait=false", "--id-only"],
        &snoopy(),
    ));
    eventually("the job to complete", || {
        let out = shoal_env(
            port,
            &["job", "describe", &id, "--output", "json"],
            &snoopy(),
        );
        serde_json::from_slice::<serde_json::Value>(&out.stdout)
            .is_ok_and(|v| v["Job"]["State"]["StateType"] == "Completed")
    });

    // The read-only user and both API keys may read it.
    for creds in [
        env(&[
            ("BACALHAU_API_USERNAME", "readonlyusername"),
            ("BACALHAU_API_PASSWORD", "readonlyuserpassword"),
        ]),
        env(&[("BACALHAU_API_KEY", "P7D4CBB284634DD081FAC33868436ECCL")]),
        env(&[("BACALHAU_API_KEY", "QWERTYHFGCBNSKFIREHFURHUFE7KEEFBN")]),
    ] {
        let out = shoal_env(port, &["job", "describe", &id], &creds);
        assert!(out.status.success(), "{}", text(&out));
        assert!(text(&out).contains("hello-wasm"), "{}", text(&out));
    }

    // The key with write:job submits.
    let out = shoal_env(
        port,
        &["job", "run", HELLO, "--force", "--wait=false", "--id-only"],
        &env(&[("BACALHAU_API_KEY", "P7D4CBB284634DD081FAC33868436ECCL")]),
    );
    assert!(out.status.success(), "{}", text(&out));

    // The read-only user and key are refused, in Bacalhau's words.
    let out = shoal_env(
        port,
        &["job", "run", HELLO, "--force"],
        &env(&[
            ("BACALHAU_API_USERNAME", "readonlyusername"),
            ("BACALHAU_API_PASSWORD", "readonlyuserpassword"),
        ]),
    );
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let said = text(&out);
    assert!(
        said.contains("user 'readonlyuser' does not have the required capability 'write:job'"),
        "{said}"
    );
    assert!(said.contains("Request Forbidden"), "{said}");
    assert!(said.contains("Event has been recorded"), "{said}");
    let out = shoal_env(
        port,
        &["job", "run", HELLO, "--force"],
        &env(&[("BACALHAU_API_KEY", "QWERTYHFGCBNSKFIREHFURHUFE7KEEFBN")]),
    );
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(
        text(&out).contains(
            "user 'API key ending in ...EEFBN' does not have the required capability 'write:job'"
        ),
        "{}",
        text(&out)
    );

    // Health and version need no credentials; everything else does.
    assert_eq!(curl(port, "/api/v1/agent/alive", &[]).0, 200);
    assert_eq!(curl(port, "/api/v1/agent/version", &[]).0, 200);
    let version = shoal(port, &["version"]);
    assert!(version.status.success(), "{}", text(&version));
    let (code, body) = curl(port, "/api/v1/orchestrator/jobs", &[]);
    assert_eq!(code, 401, "{body}");
    let body: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(body["Message"], "Request Unauthorized");
    assert_eq!(
        body["Hint"],
        "Unauthorized principal. Event has been recorded."
    );
    let (code, _) = curl(
        port,
        "/api/v1/orchestrator/jobs",
        &["-H", "Authorization: Digest x"],
    );
    assert_eq!(code, 401);
    let out = shoal(port, &["job", "list"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out).contains("SHOAL_API_KEY"), "{}", text(&out));
}

#[test]
fn a_bare_orchestrator_is_closed_and_prints_where_its_admin_key_is() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("o");
    let port = free_port();
    let mut orch = Command::new(BIN)
        .args(["serve", "--orchestrator", "--api-port", &port.to_string()])
        .arg("--data-dir")
        .arg(&data)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut stdout = std::io::BufReader::new(orch.stdout.take().unwrap());
    let mut printed = String::new();
    while !printed.contains("export SHOAL_API_KEY") {
        let mut line = String::new();
        let n = std::io::BufRead::read_line(&mut stdout, &mut line).unwrap();
        assert!(
            n > 0,
            "serve ended without printing the key's place: {printed}"
        );
        printed.push_str(&line);
    }
    let _orch = Proc(orch);
    let key_file = data.join("orchestrator/admin-api-key");
    assert!(
        printed.contains(&key_file.display().to_string()),
        "{printed}"
    );
    let key = std::fs::read_to_string(&key_file).unwrap();
    assert!(
        !printed.contains(key.trim()),
        "the key itself is never printed"
    );
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&key_file).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600, "only its owner may read the key");
    }
    eventually("the API to answer", || {
        curl(port, "/api/v1/agent/alive", &[]).0 == 200
    });

    let out = shoal(port, &["job", "list"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(
        text(&out).contains("Request Unauthorized"),
        "{}",
        text(&out)
    );

    let admin = env(&[("SHOAL_API_KEY", key.trim())]);
    let out = shoal_env(port, &["job", "list"], &admin);
    assert!(out.status.success(), "{}", text(&out));
    let me = shoal_env(port, &["auth", "whoami", "--output", "json"], &admin);
    let me: serde_json::Value = serde_json::from_slice(&me.stdout).unwrap();
    assert_eq!(me["Name"], "admin");
    assert_eq!(me["Grants"], serde_json::json!(["*"]));

    // The refusal above and a write are both in the audit log.
    let out = shoal_env(port, &["node", "label", "n-nowhere", "zone=a"], &admin);
    assert!(!out.status.success(), "no such node: {}", text(&out));
    let audit = shoal_env(port, &["audit", "list", "--output", "json"], &admin);
    let audit: serde_json::Value = serde_json::from_slice(&audit.stdout).unwrap();
    let entries = audit.as_array().unwrap();
    assert!(
        entries.iter().any(|e| e["Principal"] == "unauthenticated"
            && e["Outcome"].as_str().unwrap().starts_with("denied 401")),
        "{audit}"
    );
    assert!(
        entries.iter().any(|e| e["Principal"] == "admin"
            && e["Target"] == "n-nowhere"
            && e["Action"].as_str().unwrap().starts_with("PUT ")),
        "{audit}"
    );
    // Nobody else may read it.
    let out = shoal(port, &["audit", "list"]);
    assert_eq!(out.status.code(), Some(1));
}

#[test]
fn a_bcrypt_password_authenticates_and_a_short_password_stops_the_start_naming_its_user() {
    let dir = tempfile::tempdir().unwrap();
    let mut hash = Command::new(BIN)
        .args(["auth", "hash-password"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    hash.stdin
        .take()
        .unwrap()
        .write_all(b"correct horse battery\n")
        .unwrap();
    let hashed = hash.wait_with_output().unwrap();
    assert!(hashed.status.success());
    let hashed = String::from_utf8(hashed.stdout).unwrap();
    assert!(hashed.starts_with("$2"), "{hashed}");

    let cfg = write(
        dir.path(),
        "users.yaml",
        &format!(
            "API:\n  Auth:\n    Users:\n      - Username: ops\n        Password: '{}'\n        Capabilities:\n          - Actions: [\"read:*\"]\n",
            hashed.trim()
        ),
    );
    let port = free_port();
    let _orch = spawn(
        &[
            "serve",
            "--orchestrator",
            "-c",
            cfg.to_str().unwrap(),
            "--api-port",
            &port.to_string(),
        ],
        &dir.path().join("o"),
    );
    eventually("the API to answer", || {
        curl(port, "/api/v1/agent/alive", &[]).0 == 200
    });
    let good = env(&[
        ("BACALHAU_API_USERNAME", "ops"),
        ("BACALHAU_API_PASSWORD", "correct horse battery"),
    ]);
    let out = shoal_env(port, &["node", "list"], &good);
    assert!(out.status.success(), "{}", text(&out));
    let bad = env(&[
        ("BACALHAU_API_USERNAME", "ops"),
        ("BACALHAU_API_PASSWORD", "wrong horse battery"),
    ]);
    let out = shoal_env(port, &["node", "list"], &bad);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out).contains("Request Unauthorized"),
        "{}",
        text(&out)
    );

    let short = write(
        dir.path(),
        "short.yaml",
        "API:\n  Auth:\n    Users:\n      - Alias: shorty\n        Username: shorty\n        Password: '123456789'\n        Capabilities:\n          - Actions: [\"read:*\"]\n",
    );
    let out = Command::new(BIN)
        .args(["serve", "--orchestrator", "-c", short.to_str().unwrap()])
        .args(["--api-port", &free_port().to_string()])
        .arg("--data-dir")
        .arg(dir.path().join("s"))
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(
        text(&out).contains("password for user 'shorty' is too short, minimum length is 10"),
        "{}",
        text(&out)
    );
}

#[test]
fn a_key_scoped_to_a_namespace_sees_only_its_jobs_and_others_are_not_found() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = write(
        dir.path(),
        "ns.yaml",
        "API:\n  Auth:\n    Users:\n      - Alias: everyone\n        APIKey: ADMINADMINADMINADMINADMIN\n        Capabilities:\n          - Actions: [\"*\"]\n      - Alias: team-a\n        APIKey: TEAMATEAMATEAMATEAMATEAMA\n        Namespaces: [team-a]\n        Capabilities:\n          - Actions: [\"read:job\", \"write:job\", \"read:node\"]\n",
    );
    let port = free_port();
    let _hybrid = spawn(
        &[
            "serve",
            "--orchestrator",
            "--compute",
            "-c",
            cfg.to_str().unwrap(),
            "--api-port",
            &port.to_string(),
        ],
        &dir.path().join("o"),
    );
    let admin = env(&[("SHOAL_API_KEY", "ADMINADMINADMINADMINADMIN")]);
    let team_a = env(&[("SHOAL_API_KEY", "TEAMATEAMATEAMATEAMATEAMA")]);
    wait_nodes(port, &admin, 1);

    let b_file = write(
        dir.path(),
        "b.yaml",
        &std::fs::read_to_string(HELLO)
            .unwrap()
            .replace("Name: hello-wasm", "Name: hello-b\nNamespace: team-b"),
    );
    let b = job_id(&shoal_env(
        port,
        &[
            "job",
            "run",
            b_file.to_str().unwrap(),
            "--wait=false",
            "--id-only",
        ],
        &admin,
    ));
    // Submitted without a namespace, team-a's job goes to its only namespace.
    let a = job_id(&shoal_env(
        port,
        &["job", "run", HELLO, "--wait=false", "--id-only"],
        &team_a,
    ));

    let listed = shoal_env(port, &["job", "list", "--output", "json"], &team_a);
    let listed: serde_json::Value = serde_json::from_slice(&listed.stdout).unwrap();
    let ids: Vec<&str> = listed
        .as_array()
        .unwrap()
        .iter()
        .map(|j| j["ID"].as_str().unwrap())
        .collect();
    assert_eq!(ids, vec![a.as_str()], "team-a lists only its own job");
    let all = shoal_env(port, &["job", "list", "--output", "json"], &admin);
    let all: serde_json::Value = serde_json::from_slice(&all.stdout).unwrap();
    assert_eq!(all.as_array().unwrap().len(), 2);

    for cmd in [
        vec!["job", "describe", b.as_str()],
        vec!["job", "logs", b.as_str()],
        vec!["job", "history", b.as_str()],
        vec!["job", "stop", b.as_str()],
    ] {
        let out = shoal_env(port, &cmd, &team_a);
        assert_eq!(out.status.code(), Some(1), "{cmd:?}: {}", text(&out));
        let said = text(&out);
        assert!(
            said.contains(&format!("job {b} not found")),
            "{cmd:?}: {said}"
        );
        assert!(!said.contains("Forbidden"), "{cmd:?}: {said}");
    }
    let (code, _) = curl(
        port,
        &format!("/api/v1/orchestrator/jobs/{b}"),
        &["-H", "Authorization: Bearer TEAMATEAMATEAMATEAMATEAMA"],
    );
    assert_eq!(
        code, 404,
        "another namespace's job is not found, not forbidden"
    );

    // team-a may not submit into team-b.
    let out = shoal_env(
        port,
        &["job", "run", b_file.to_str().unwrap(), "--wait=false"],
        &team_a,
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out).contains("namespace 'team-b'"), "{}", text(&out));
}

#[test]
fn anonymous_write_runs_jobs_but_not_fleet_sql() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let _hybrid = spawn(
        &[
            "serve",
            "--orchestrator",
            "--compute",
            "--allow-anonymous",
            "write",
            "--api-port",
            &port.to_string(),
        ],
        &dir.path().join("o"),
    );
    wait_nodes(port, &[], 1);
    let out = shoal(port, &["job", "run", HELLO]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        text(&out).contains("Hello from a Shoal job file!"),
        "{}",
        text(&out)
    );
    let out = shoal(port, &["query", "SELECT hostname FROM system_info"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(
        text(&out).contains("does not have the required capability 'query'"),
        "{}",
        text(&out)
    );
}

#[test]
fn a_host_command_needs_the_exec_grant_beyond_write_job_and_the_denial_is_audited() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = write(
        dir.path(),
        "exec.yaml",
        "API:\n  Auth:\n    Users:\n      - Alias: admin\n        APIKey: ADMINADMINADMINADMINADMIN\n        Capabilities:\n          - Actions: [\"*\"]\n      - Alias: deployer\n        APIKey: DEPLOYDEPLOYDEPLOYDEPLOY\n        Capabilities:\n          - Actions: [\"read:job\", \"write:job\", \"read:node\"]\n      - Alias: operator\n        APIKey: OPERATOROPERATOROPERATOR\n        Capabilities:\n          - Actions: [\"read:job\", \"write:job\", \"read:node\", \"exec\"]\n",
    );
    let port = free_port();
    let _hybrid = spawn(
        &[
            "serve",
            "--orchestrator",
            "--compute",
            "--enable-exec",
            "--exec-allow",
            "/bin/echo",
            "-c",
            cfg.to_str().unwrap(),
            "--api-port",
            &port.to_string(),
        ],
        &dir.path().join("o"),
    );
    let admin = env(&[("SHOAL_API_KEY", "ADMINADMINADMINADMINADMIN")]);
    let deployer = env(&[("SHOAL_API_KEY", "DEPLOYDEPLOYDEPLOYDEPLOY")]);
    wait_nodes(port, &admin, 1);

    let out = shoal_env(port, &["exec", "--", "/bin/echo", "hi"], &deployer);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let said = text(&out);
    assert!(said.contains("Request Forbidden"), "{said}");
    assert!(
        said.contains("'exec'"),
        "the missing grant is named: {said}"
    );

    let audit = shoal_env(
        port,
        &[
            "audit",
            "list",
            "--principal",
            "deployer",
            "--output",
            "json",
        ],
        &admin,
    );
    let entries = text(&audit);
    assert!(
        entries.contains("denied 403") && entries.contains("exec"),
        "the denial is in the audit log: {entries}"
    );

    let out = shoal_env(port, &["exec", "--", "/bin/echo", "hi"], &admin);
    assert!(
        out.status.success(),
        "a key with exec runs it: {}",
        text(&out)
    );

    // `exec` runs a command; a shell script needs `exec:shell` as well.
    let operator = env(&[("SHOAL_API_KEY", "OPERATOROPERATOROPERATOR")]);
    let asked = shoal_env(port, &["auth", "can-i", "exec"], &deployer);
    assert_eq!(asked.status.code(), Some(1), "{}", text(&asked));
    assert!(
        text(&asked).contains(
            "no: user 'deployer' holds read:job, write:job, read:node; exec is not among them"
        ),
        "{}",
        text(&asked)
    );
    let asked = shoal_env(port, &["auth", "can-i", "exec"], &operator);
    assert!(asked.status.success(), "{}", text(&asked));
    assert_eq!(String::from_utf8_lossy(&asked.stdout).trim(), "yes");
    let asked = shoal_env(port, &["auth", "can-i", "exec:shell"], &operator);
    assert_eq!(asked.status.code(), Some(1), "{}", text(&asked));
    let asked = shoal_env(port, &["auth", "can-i", "exec:root"], &operator);
    assert!(!asked.status.success());
    assert!(
        text(&asked).contains("unknown capability"),
        "{}",
        text(&asked)
    );
    let out = shoal_env(port, &["exec", "--", "/bin/echo", "hi"], &operator);
    assert!(out.status.success(), "{}", text(&out));
    let out = shoal_env(port, &["exec", "--shell", "--", "echo hi"], &operator);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(
        text(&out).contains("'exec:shell'") && text(&out).contains("Shell: true"),
        "{}",
        text(&out)
    );
}
