//! The web UI in a real headless browser (Debian's chromium driven through chromedriver):
//! a job from the list to its executions and live logs, the nodes page, and login with a
//! read-only user who sees no write button and whose forged write is refused by the API.
//!
//! Without chromedriver the tests say so and pass, unless `SHOAL_REQUIRE_BROWSER=1` (set by
//! `.ci/run`, which installs chromium). With `SHOAL_UI_SCREENSHOTS=DIR` each page's
//! screenshot is written there (how `docs/ui/` is made); otherwise under the test's temp dir.

mod common;
use common::*;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use fantoccini::{Client, ClientBuilder, Locator};

const HELLO: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../examples/hello-wasm.yaml"
);

/// A chromedriver process on a free port, or `None` (with the reason printed) when there is
/// none on this machine.
fn chromedriver() -> Option<(Proc, u16)> {
    let found = Command::new("chromedriver")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !found {
        assert!(
            std::env::var("SHOAL_REQUIRE_BROWSER").as_deref() != Ok("1"),
            "chromedriver is missing; install Debian's chromium and chromium-driver"
        );
        eprintln!(
            "skipped: chromedriver is not installed (apt-get install chromium chromium-driver)"
        );
        return None;
    }
    let port = free_port();
    let child = Command::new("chromedriver")
        .args([format!("--port={port}"), "--allowed-ips=127.0.0.1".into()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("chromedriver starts");
    eventually("chromedriver to listen", || {
        std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
    });
    Some((Proc(child), port))
}

async fn browser(driver_port: u16, profile: &Path) -> Client {
    let mut caps = serde_json::Map::new();
    caps.insert(
        "goog:chromeOptions".into(),
        serde_json::json!({
            "args": [
                "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--disable-background-networking", "--disable-component-update",
                "--window-size=1400,900",
                format!("--user-data-dir={}", profile.display()),
            ]
        }),
    );
    ClientBuilder::rustls()
        .expect("native roots load")
        .capabilities(caps)
        .connect(&format!("http://127.0.0.1:{driver_port}"))
        .await
        .expect("a browser session starts")
}

fn shots_dir(tmp: &Path) -> PathBuf {
    let dir = std::env::var_os("SHOAL_UI_SCREENSHOTS")
        .map(PathBuf::from)
        .unwrap_or_else(|| tmp.join("screenshots"));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

async fn shot(c: &Client, dir: &Path, name: &str) {
    let png = c.screenshot().await.expect("a screenshot");
    std::fs::write(dir.join(format!("{name}.png")), png).unwrap();
}

/// Waits (bounded) until the element's text satisfies `cond`; returns the text.
async fn text_until(c: &Client, css: &str, cond: impl Fn(&str) -> bool) -> String {
    let deadline = std::time::Instant::now() + Duration::from_secs(15);
    loop {
        if let Ok(el) = c.find(Locator::Css(css)).await
            && let Ok(t) = el.text().await
            && cond(&t)
        {
            return t;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{css} never showed what was expected; page: {}",
            c.source().await.unwrap_or_default()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Clicks the element with this id; pages that refresh themselves replace their elements, so
/// a click that finds a replaced one tries again (bounded).
async fn click(c: &Client, id: &str) {
    let deadline = std::time::Instant::now() + Duration::from_secs(15);
    loop {
        let clicked = match c.find(Locator::Id(id)).await {
            Ok(el) => el.click().await.is_ok(),
            Err(_) => false,
        };
        if clicked {
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "#{id} could not be clicked; page: {}",
            c.source().await.unwrap_or_default()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// A devstack of `computes` agents on a free port, once they are all connected.
fn devstack(computes: usize, data: &Path) -> (Proc, u16) {
    let port = free_port();
    let n = computes.to_string();
    let p = port.to_string();
    let proc = spawn(&["devstack", "--computes", &n, "--api-port", &p], data);
    eventually("devstack", || connected_nodes(port) == computes);
    (proc, port)
}

fn job_id(out: &std::process::Output) -> String {
    assert!(out.status.success(), "{}", text(out));
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_is_followed_from_the_list_to_its_executions_and_logs_and_nodes_show_capacity() {
    let Some((_driver, driver_port)) = chromedriver() else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let (_devstack, port) = devstack(2, tmp.path());
    let id = job_id(&shoal(port, &["job", "run", HELLO, "--id-only"]));
    let short = &id[..10];

    let shots = shots_dir(tmp.path());
    let c = browser(driver_port, &tmp.path().join("profile")).await;
    let base = format!("http://127.0.0.1:{port}");
    c.goto(&format!("{base}/ui/jobs")).await.unwrap();
    let link = c
        .find(Locator::LinkText(short))
        .await
        .expect("the job is listed");
    shot(&c, &shots, "jobs").await;
    link.click().await.unwrap();
    let exit = text_until(&c, "#executions td.exit", |t| !t.is_empty()).await;
    assert_eq!(exit, "0");
    let logs = text_until(&c, "#logs", |t| t.contains("Hello")).await;
    assert!(logs.contains("Hello from a Shoal job file!"), "{logs}");
    assert_eq!(
        c.find(Locator::Id("job-state"))
            .await
            .unwrap()
            .text()
            .await
            .unwrap(),
        "Completed"
    );
    assert!(
        c.find(Locator::Id("stop")).await.is_ok(),
        "devstack's anonymous visitor may write, so Stop is offered"
    );
    shot(&c, &shots, "job").await;

    c.goto(&format!("{base}/ui/nodes")).await.unwrap();
    let nodes = text_until(&c, "#nodes", |t| t.contains("n-devstack-1")).await;
    assert!(nodes.contains("region=eu"), "{nodes}");
    assert!(nodes.contains("2 of 2 connected"), "{nodes}");
    // A label set from the control plane shows without a reload.
    let out = shoal(port, &["node", "label", "n-devstack-1", "role=edge"]);
    assert!(out.status.success(), "{}", text(&out));
    text_until(&c, "#nodes", |t| t.contains("role=edge")).await;
    shot(&c, &shots, "nodes").await;
    c.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_read_only_user_logs_in_sees_no_stop_button_and_a_forged_stop_is_refused() {
    let Some((_driver, driver_port)) = chromedriver() else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let cfg = tmp.path().join("users.yaml");
    std::fs::write(
        &cfg,
        "API:\n  Auth:\n    Users:\n      - Alias: admin\n        APIKey: ADMINADMINADMINADMINADMIN\n        Capabilities:\n          - Actions: [\"*\"]\n      - Alias: viewer\n        Username: viewer\n        Password: viewerpassword\n        Capabilities:\n          - Actions: [\"read:job\", \"read:node\"]\n",
    )
    .unwrap();
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
        &tmp.path().join("o"),
    );
    let admin = [("SHOAL_API_KEY", "ADMINADMINADMINADMINADMIN".to_string())];
    eventually("the node", || {
        let out = shoal_env(port, &["node", "list", "--output", "json"], &admin);
        String::from_utf8_lossy(&out.stdout).contains("CONNECTED")
    });
    let id = job_id(&shoal_env(
        port,
        &["job", "run", HELLO, "--id-only"],
        &admin,
    ));

    let shots = shots_dir(tmp.path());
    let c = browser(driver_port, &tmp.path().join("profile")).await;
    let base = format!("http://127.0.0.1:{port}");
    c.goto(&format!("{base}/ui/jobs/{id}")).await.unwrap();
    let url = c.current_url().await.unwrap();
    assert_eq!(url.path(), "/ui/login", "no session: to the login page");
    c.find(Locator::Id("username"))
        .await
        .unwrap()
        .send_keys("viewer")
        .await
        .unwrap();
    c.find(Locator::Id("password"))
        .await
        .unwrap()
        .send_keys("wrong-password")
        .await
        .unwrap();
    c.find(Locator::Id("login"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    let error = text_until(&c, "#login-error", |t| !t.is_empty()).await;
    assert!(error.contains("invalid basic auth credentials"), "{error}");
    shot(&c, &shots, "login").await;
    c.find(Locator::Id("username"))
        .await
        .unwrap()
        .send_keys("viewer")
        .await
        .unwrap();
    c.find(Locator::Id("password"))
        .await
        .unwrap()
        .send_keys("viewerpassword")
        .await
        .unwrap();
    c.find(Locator::Id("login"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();

    // Back on the job it asked for, which it may read, logs included (the WebSocket carries
    // the session cookie alone), but with no Stop button.
    text_until(&c, "#job-state", |t| t == "Completed").await;
    assert_eq!(
        c.current_url().await.unwrap().path(),
        format!("/ui/jobs/{id}")
    );
    text_until(&c, "#logs", |t| t.contains("Hello")).await;
    assert!(
        c.find(Locator::Id("stop")).await.is_err(),
        "no Stop for read-only"
    );

    // The API refuses a forged stop with this session, from the right origin or another.
    let cookie = c.get_named_cookie("shoal_session").await.unwrap();
    let forged = |origin: &str| {
        let out = Command::new("curl")
            .args(["-s", "-o", "/dev/null", "-w", "%{http_code}", "-X", "POST"])
            .args(["-H", &format!("Cookie: shoal_session={}", cookie.value())])
            .args(["-H", &format!("Origin: {origin}")])
            .arg(format!("{base}/ui/jobs/{id}/stop"))
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).to_string()
    };
    assert_eq!(forged(&base), "403", "read-only may not stop");
    assert_eq!(
        forged("http://evil.example"),
        "403",
        "another site may not write"
    );
    let audit = shoal_env(port, &["audit", "list", "--output", "json"], &admin);
    let audit = String::from_utf8_lossy(&audit.stdout).to_string();
    assert!(
        audit.contains("user 'viewer' does not have the required capability 'write:job'"),
        "{audit}"
    );
    c.close().await.unwrap();
}

/// The job page shows a rollout: its phase, counts and nodes; a writer promotes it past the
/// canary with a button, and the page follows it to the end.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rollout_waiting_after_its_canary_is_promoted_from_the_job_page() {
    let Some((_driver, driver_port)) = chromedriver() else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let (_devstack, port) = devstack(3, tmp.path());
    let file = tmp.path().join("canary.yaml");
    std::fs::write(
        &file,
        "Name: canary\nType: ops\nRollout: {Canary: 1, Batch: 2}\nTasks:\n  - Name: main\n    Engine: {Type: noop}\n",
    )
    .unwrap();
    let id = job_id(&shoal(
        port,
        &[
            "job",
            "run",
            file.to_str().unwrap(),
            "--id-only",
            "--wait=false",
        ],
    ));

    let shots = shots_dir(tmp.path());
    let c = browser(driver_port, &tmp.path().join("profile")).await;
    c.goto(&format!("http://127.0.0.1:{port}/ui/jobs/{id}"))
        .await
        .unwrap();
    let phase = text_until(&c, "#rollout-phase", |t| {
        t.starts_with("awaiting promotion")
    })
    .await;
    assert!(phase.contains("1 canary succeeded"), "{phase}");
    let nodes = text_until(&c, "#rollout-nodes", |t| t.contains("not-started")).await;
    assert!(nodes.contains("n-devstack-0 succeeded"), "{nodes}");
    shot(&c, &shots, "rollout").await;
    click(&c, "promote").await;
    let done = text_until(&c, "#rollout-phase", |t| t.starts_with("rollout done")).await;
    assert_eq!(done, "rollout done: 3 succeeded");
    assert!(
        c.find(Locator::Id("promote")).await.is_err(),
        "nothing is left to promote"
    );
    c.close().await.unwrap();
}

/// From the nodes list to one node: its engines, why one is not offered, its exec policy;
/// a writer cordons it with a button, and the scheduler sees the cordon at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_page_shows_its_engines_and_policy_and_cordons_it() {
    let Some((_driver, driver_port)) = chromedriver() else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let (_devstack, port) = devstack(2, tmp.path());
    let shots = shots_dir(tmp.path());
    let c = browser(driver_port, &tmp.path().join("profile")).await;
    c.goto(&format!("http://127.0.0.1:{port}/ui/nodes"))
        .await
        .unwrap();
    let href = c
        .find(Locator::LinkText("n-devstack-1"))
        .await
        .expect("node ids link to their page")
        .attr("href")
        .await
        .unwrap()
        .unwrap_or_default();
    assert_eq!(href, "/ui/nodes/n-devstack-1");
    c.goto(&format!("http://127.0.0.1:{port}{href}"))
        .await
        .unwrap();
    let engines = text_until(&c, "#node-engines", |t| t.contains("noop")).await;
    assert!(engines.contains("wasm"), "{engines}");
    let unavailable = text_until(&c, "#node-unavailable", |t| t.contains("exec")).await;
    assert!(unavailable.contains("exec disabled"), "{unavailable}");
    shot(&c, &shots, "node").await;
    click(&c, "cordon").await;
    text_until(&c, "#node-cordon", |t| t == "cordoned").await;
    let listed = json(port, &["node", "list"]);
    let node = listed
        .as_array()
        .unwrap()
        .iter()
        .find(|n| n["Info"]["NodeID"] == "n-devstack-1")
        .cloned()
        .unwrap_or_default();
    assert_eq!(node["Cordoned"], true, "{node}");
    click(&c, "uncordon").await;
    text_until(&c, "#node-membership", |t| !t.contains("cordoned")).await;
    c.close().await.unwrap();
}
