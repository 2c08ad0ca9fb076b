//! "Deploy this config and reload" as one job: the exec engine's `Files`, end to end through a
//! devstack whose node allows one directory (`--exec-write-allow`) and the commands that use it.

mod common;
use common::*;

fn deploy_job(dir: &str, text: &str) -> String {
    format!(
        r#"Name: site-config
Type: ops
Tasks:
  - Name: main
    Engine:
      Type: exec
      Params:
        Command: /bin/cat
        Arguments: ["{dir}/site.conf"]
        Files:
          - Path: {dir}/site.conf
            Content: "{text}"
            Mode: "0604"
"#
    )
}

fn job_logs(d: &Devstack, job: &str) -> String {
    let out = d.shoal(&["job", "logs", job]);
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The file is in place, with its mode, before the command runs (the command prints it); a new
/// version replaces it whole and keeps the old one beside it; a path the node does not allow
/// is refused by the node, which says why, and nothing is written there.
#[test]
fn a_job_places_a_file_then_runs_its_command_and_keeps_the_previous_version() {
    use std::os::unix::fs::PermissionsExt;
    let etc = tempfile::tempdir().unwrap();
    let dir = etc.path().to_str().unwrap().to_string();
    let d = Devstack::start(
        1,
        &[
            "--enable-exec",
            "--exec-allow",
            "/bin/cat",
            "--exec-write-allow",
            &dir,
        ],
    );
    let out = d.run_file("v1.yaml", &deploy_job(&dir, "listen 8080"));
    assert!(out.status.success(), "{}", text(&out));
    eventually("version 1 to finish", || {
        json(d.port, &["job", "describe", "site-config"])["Job"]["State"]["StateType"]
            == "Completed"
    });
    let logs = job_logs(&d, "site-config");
    assert!(
        logs.contains("placed ") && logs.contains("site.conf (11 bytes, mode 0604)"),
        "{logs}"
    );
    assert!(
        logs.ends_with("listen 8080"),
        "the command saw the new file: {logs}"
    );
    let path = etc.path().join("site.conf");
    assert_eq!(std::fs::read_to_string(&path).unwrap(), "listen 8080");
    let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o604);

    let out = d.run_file("v2.yaml", &deploy_job(&dir, "listen 9090"));
    assert!(out.status.success(), "{}", text(&out));
    eventually("version 2 to finish", || {
        let j = json(d.port, &["job", "describe", "site-config"]);
        j["Job"]["Version"] == 2 && j["Job"]["State"]["StateType"] == "Completed"
    });
    assert_eq!(std::fs::read_to_string(&path).unwrap(), "listen 9090");
    let prev = etc.path().join("site.conf.shoal-prev");
    assert_eq!(std::fs::read_to_string(prev).unwrap(), "listen 8080");

    let elsewhere = tempfile::tempdir().unwrap();
    let other = elsewhere.path().to_str().unwrap();
    let bad = d.data.path().join("bad.yaml");
    std::fs::write(&bad, deploy_job(other, "x").replace("site-config", "bad")).unwrap();
    let out = d.shoal(&["job", "run", bad.to_str().unwrap()]);
    assert!(!out.status.success(), "the node refuses it: {}", text(&out));
    let described =
        String::from_utf8_lossy(&d.shoal(&["job", "describe", "bad"]).stdout).into_owned();
    assert!(
        described.contains("is not under the node's writable paths"),
        "{described}"
    );
    assert!(!elsewhere.path().join("site.conf").exists());
}
