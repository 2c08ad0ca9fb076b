//! TLS on the API port with the real binary and real clients (`curl`, the CLI): the automatic
//! CA, a certificate given as files, plain HTTP refused, and a replaced certificate served to
//! new connections without a restart.

mod common;
use common::*;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

/// `curl -s` the URL with extra arguments; the HTTP status, 0 when no HTTP answer came.
fn curl(url: &str, extra: &[&str]) -> u16 {
    let out = Command::new("curl")
        .args([
            "-s",
            "-o",
            "/dev/null",
            "-w",
            "%{http_code}",
            "--max-time",
            "5",
        ])
        .args(extra)
        .arg(url)
        .output()
        .expect("curl runs");
    String::from_utf8_lossy(&out.stdout)
        .trim()
        .parse()
        .unwrap_or(0)
}

/// Starts an orchestrator with `--tls` on `data` long enough for it to make its automatic
/// CA, and returns the CA's directory.
fn make_auto_ca(data: &Path) -> PathBuf {
    let port = free_port();
    let _orch = spawn(
        &[
            "serve",
            "--orchestrator",
            "--tls",
            "--allow-anonymous",
            "read",
            "--api-port",
            &port.to_string(),
        ],
        data,
    );
    let dir = data.join("orchestrator/tls");
    eventually("the automatic CA", || {
        curl(
            &format!("https://127.0.0.1:{port}/api/v1/agent/alive"),
            &["--cacert", dir.join("ca.pem").to_str().unwrap()],
        ) == 200
    });
    dir
}

#[test]
fn the_tls_port_answers_curl_with_the_ca_refuses_plain_http_and_reloads_a_replaced_certificate() {
    let tmp = tempfile::tempdir().unwrap();
    let first = make_auto_ca(&tmp.path().join("a"));
    let second = make_auto_ca(&tmp.path().join("b"));

    let live = tmp.path().join("live");
    std::fs::create_dir_all(&live).unwrap();
    let (cert, key) = (live.join("cert.pem"), live.join("key.pem"));
    std::fs::copy(first.join("server.pem"), &cert).unwrap();
    std::fs::copy(first.join("server.key"), &key).unwrap();
    let port = free_port();
    let _orch = spawn(
        &[
            "serve",
            "--orchestrator",
            "--tls-cert",
            cert.to_str().unwrap(),
            "--tls-key",
            key.to_str().unwrap(),
            "--allow-anonymous",
            "read",
            "--api-port",
            &port.to_string(),
        ],
        &tmp.path().join("o"),
    );
    let https = format!("https://127.0.0.1:{port}/api/v1/agent/alive");
    let ca1 = first.join("ca.pem");
    let ca2 = second.join("ca.pem");
    eventually("the TLS port", || {
        curl(&https, &["--cacert", ca1.to_str().unwrap()]) == 200
    });
    assert_eq!(
        curl(&format!("http://127.0.0.1:{port}/api/v1/agent/alive"), &[]),
        0,
        "plain HTTP on the TLS port gets no HTTP answer"
    );
    assert_eq!(
        curl(&https, &["--cacert", ca2.to_str().unwrap()]),
        0,
        "a client trusting another CA refuses the server"
    );

    // The CLI over https with the CA it is told to trust.
    let url = format!("https://127.0.0.1:{port}");
    let out = Command::new(BIN)
        .args(["--api-host", &url, "--ca-cert", ca1.to_str().unwrap()])
        .args(["node", "list"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
    let out = Command::new(BIN)
        .args(["--api-host", &url, "node", "list"])
        .output()
        .unwrap();
    assert!(
        !out.status.success(),
        "without the CA the CLI refuses the server"
    );

    // Replace the files (key first, as a renewal script might): new connections get the new
    // certificate within seconds, and a half-replaced pair is never served.
    std::fs::copy(second.join("server.key"), &key).unwrap();
    std::fs::copy(second.join("server.pem"), &cert).unwrap();
    let deadline = Instant::now() + Duration::from_secs(5);
    while curl(&https, &["--cacert", ca2.to_str().unwrap()]) != 200 {
        assert!(
            Instant::now() < deadline,
            "the replaced certificate was not served within 5 s"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(curl(&https, &["--cacert", ca1.to_str().unwrap()]), 0);
}

#[test]
fn a_broken_certificate_file_stops_the_start_naming_the_file() {
    let tmp = tempfile::tempdir().unwrap();
    let cert = tmp.path().join("cert.pem");
    std::fs::write(&cert, "not a certificate").unwrap();
    let out = Command::new(BIN)
        .args([
            "serve",
            "--orchestrator",
            "--tls-cert",
            cert.to_str().unwrap(),
        ])
        .args(["--tls-key", cert.to_str().unwrap()])
        .args(["--api-port", &free_port().to_string()])
        .arg("--data-dir")
        .arg(tmp.path().join("o"))
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(text(&out).contains("cert.pem"), "{}", text(&out));
}

/// The hash line `serve --tls` printed (`--ca-hash sha256:...`), read from its stdout.
fn printed_ca_hash(child: &mut std::process::Child) -> String {
    use std::io::BufRead;
    let out = child.stdout.take().unwrap();
    for line in std::io::BufReader::new(out).lines() {
        let line = line.unwrap();
        if let Some(i) = line.find("--ca-hash ") {
            return line[i + "--ca-hash ".len()..]
                .split_whitespace()
                .next()
                .unwrap()
                .to_string();
        }
    }
    panic!("serve --tls printed no --ca-hash");
}

#[test]
fn an_agent_pinning_the_printed_ca_hash_joins_over_wss_and_a_wrong_pin_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let port = free_port();
    let mut orch = Command::new(BIN)
        .args([
            "serve",
            "--orchestrator",
            "--tls",
            "--allow-anonymous",
            "write",
        ])
        .args(["--token", "t", "--api-port", &port.to_string()])
        .arg("--data-dir")
        .arg(tmp.path().join("o"))
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let pin = printed_ca_hash(&mut orch);
    let _orch = Proc(orch);
    let url = format!("wss://127.0.0.1:{port}");
    let _good = spawn(
        &[
            "serve",
            "--compute",
            "--orchestrators",
            &url,
            "--token",
            "t",
            "--ca-hash",
            &pin,
            "--name",
            "n-pinned",
        ],
        &tmp.path().join("a"),
    );
    let wrong = format!("sha256:{}", "0".repeat(64));
    let log = tmp.path().join("wrong.log");
    let _bad = Proc(
        Command::new(BIN)
            .args([
                "serve",
                "--compute",
                "--orchestrators",
                &url,
                "--token",
                "t",
            ])
            .args(["--ca-hash", &wrong, "--name", "n-wrong"])
            .arg("--data-dir")
            .arg(tmp.path().join("b"))
            .stdout(std::process::Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap(),
    );
    let ca = tmp.path().join("o/orchestrator/tls/ca.pem");
    let api = format!("https://127.0.0.1:{port}");
    let cli = |args: &[&str]| {
        Command::new(BIN)
            .args(["--api-host", &api, "--ca-cert", ca.to_str().unwrap()])
            .args(args)
            .output()
            .unwrap()
    };
    eventually("the pinned agent to join over wss", || {
        String::from_utf8_lossy(&cli(&["node", "list"]).stdout).contains("n-pinned")
    });
    let hello = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../examples/hello-wasm.yaml"
    );
    let out = cli(&["job", "run", hello]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        text(&out).contains("Hello from a Shoal job file!"),
        "{}",
        text(&out)
    );
    eventually("the wrong pin to be refused in the agent's log", || {
        std::fs::read_to_string(&log)
            .unwrap_or_default()
            .contains("server certificate does not match pinned CA sha256:0000")
    });
    assert!(
        !String::from_utf8_lossy(&cli(&["node", "list"]).stdout).contains("n-wrong"),
        "an agent that does not trust the server never joins"
    );
}
