//! Bacalhau's official Python SDK (`bacalhau-sdk` 1.4.2, `bacalhau-apiclient` 1.4.1) against a
//! devstack started from the real binary: submit, list, describe, executions, history, stop.
//!
//! The script is `tests/python/sdk_roundtrip.py` at the repository root; `.ci/run` installs the
//! SDK.

mod common;
use common::*;

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

#[test]
fn bacalhau_python_sdk_submits_lists_describes_and_stops_jobs() {
    let sdk = Command::new("python3")
        .args(["-c", "import bacalhau_sdk, bacalhau_apiclient"])
        .output();
    assert!(
        sdk.as_ref().is_ok_and(|o| o.status.success()),
        "the Bacalhau Python SDK is not installed; run .ci/run, or: \
         pip install bacalhau-sdk==1.4.2 bacalhau-apiclient==1.4.1 ({sdk:?})"
    );

    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let _devstack = Proc(
        Command::new(BIN)
            .args([
                "devstack",
                "--computes",
                "2",
                "--api-port",
                &port.to_string(),
            ])
            .arg("--data-dir")
            .arg(dir.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("devstack starts"),
    );
    let deadline = Instant::now() + Duration::from_secs(60);
    while connected_nodes(port) < 2 {
        assert!(Instant::now() < deadline, "devstack did not come up");
        std::thread::sleep(Duration::from_millis(50));
    }

    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/python/sdk_roundtrip.py");
    let out = Command::new("python3")
        .arg(&script)
        .env("BACALHAU_API_HOST", "127.0.0.1")
        .env("BACALHAU_API_PORT", port.to_string())
        .env("BACALHAU_DIR", dir.path())
        .output()
        .expect("python3 runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "the SDK script failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let seen: serde_json::Value = serde_json::from_str(stdout.trim()).expect("one JSON line");
    assert_eq!(seen["state"], "Completed", "{seen}");
    assert_eq!(seen["described"], "sdk-noop", "{seen}");
    assert!(
        seen["execution_node"]
            .as_str()
            .is_some_and(|n| n.starts_with("n-devstack-")),
        "{seen}"
    );
    assert_eq!(seen["stopped"], "Stopped", "{seen}");
}
