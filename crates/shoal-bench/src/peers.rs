//! Peers measured in the same run, when they are installed (`bench/run.sh` installs them with
//! pip; a missing peer is reported, never invented).

use std::process::{Command, Stdio};
use std::time::Duration;

use crate::proc::rss_bytes;

/// Idle RSS (MiB) of a Salt minion running in the foreground with a local config; the minion
/// needs no master to sit idle, it keeps retrying in the background.
pub async fn salt_minion_idle_rss() -> Result<f64, String> {
    let which = Command::new("sh")
        .args(["-c", "command -v salt-minion"])
        .output()
        .map_err(|e| e.to_string())?;
    if !which.status.success() {
        return Err("salt-minion is not installed (`pip install salt`)".into());
    }
    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    let root = dir.path();
    let conf = root.join("minion");
    std::fs::write(
        &conf,
        format!(
            "master: 127.0.0.1\nid: bench-minion\nroot_dir: {r}\npki_dir: {r}/pki\ncachedir: {r}/cache\nsock_dir: {r}/sock\nlog_file: {r}/minion.log\npidfile: {r}/minion.pid\n",
            r = root.display()
        ),
    )
    .map_err(|e| e.to_string())?;
    let mut child = Command::new("salt-minion")
        .args(["-c"])
        .arg(root)
        .args(["-l", "quiet"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| format!("salt-minion did not start: {e}"))?;
    tokio::time::sleep(Duration::from_secs(8)).await;
    // The minion forks workers; count the whole process group under the first pid.
    let total = tree_rss(child.id());
    let _ = child.kill();
    let _ = child.wait();
    let _ = Command::new("pkill")
        .args(["-f", &root.display().to_string()])
        .status();
    total.map(|b| b as f64 / (1 << 20) as f64)
}

fn tree_rss(pid: u32) -> Result<u64, String> {
    let mut total = rss_bytes(pid).map_err(|e| e.to_string())?;
    let children =
        std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/children")).unwrap_or_default();
    for c in children
        .split_whitespace()
        .filter_map(|c| c.parse::<u32>().ok())
    {
        total += tree_rss(c).unwrap_or(0);
    }
    Ok(total)
}
