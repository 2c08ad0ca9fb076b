//! The real `shoal` binary as a child process, and what `/proc` says about a process.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use shoal_client::Client;
use shoal_types::ConnectionStatus;

/// A free TCP port on 127.0.0.1.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free loopback port")
}

/// A running `shoal` process, killed (SIGKILL) when dropped.
pub struct Shoal {
    child: Child,
    /// The API port it serves (for orchestrators and devstack).
    pub port: u16,
}

impl Shoal {
    /// Starts `shoal ARGS --data-dir DIR --api-port PORT`.
    pub fn spawn(bin: &Path, args: &[&str], data: &Path, port: u16) -> anyhow::Result<Shoal> {
        let child = Command::new(bin)
            .args(args)
            .arg("--data-dir")
            .arg(data)
            .args(["--api-port", &port.to_string()])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .with_context(|| format!("cannot start {}", bin.display()))?;
        Ok(Shoal { child, port })
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// A client for its API.
    pub fn client(&self) -> Client {
        Client::new("127.0.0.1", self.port)
    }

    /// Sends SIGKILL and reaps the process.
    pub fn kill9(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Shoal {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Waits until the API answers; returns how long that took.
pub async fn wait_alive(client: &Client, limit: Duration) -> anyhow::Result<Duration> {
    let t0 = Instant::now();
    loop {
        if client.alive().await.is_ok() {
            return Ok(t0.elapsed());
        }
        if t0.elapsed() > limit {
            bail!(
                "the API at {} did not answer within {limit:?}",
                client.url()
            );
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

/// Waits until at least `n` nodes are connected. Polls less often for large fleets: listing
/// 10,000 nodes is work the orchestrator would otherwise do every few milliseconds.
pub async fn wait_nodes(client: &Client, n: usize, limit: Duration) -> anyhow::Result<()> {
    let t0 = Instant::now();
    let poll = Duration::from_millis((n as u64 / 20).clamp(20, 500));
    loop {
        let connected = connected_nodes(client).await;
        if connected >= n {
            return Ok(());
        }
        if t0.elapsed() > limit {
            bail!("only {connected} of {n} nodes connected within {limit:?}");
        }
        tokio::time::sleep(poll).await;
    }
}

/// How many nodes the orchestrator counts as connected (0 when it does not answer).
pub async fn connected_nodes(client: &Client) -> usize {
    client
        .nodes()
        .await
        .map(|nodes| {
            nodes
                .iter()
                .filter(|n| n.connection == ConnectionStatus::Connected)
                .count()
        })
        .unwrap_or(0)
}

/// Resident memory of a process, in bytes (`VmRSS`).
pub fn rss_bytes(pid: u32) -> anyhow::Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .with_context(|| format!("no /proc entry for pid {pid}"))?;
    let kb = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse::<u64>().ok())
        .context("no VmRSS line")?;
    Ok(kb * 1024)
}

/// CPU time (user + system) a process has used, in seconds.
pub fn cpu_seconds(pid: u32) -> anyhow::Result<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    // Fields after the command name (which may hold spaces) start after the last ')'.
    let rest = stat.rsplit_once(')').map(|(_, r)| r).context("bad stat")?;
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks = f[11].parse::<f64>()? + f[12].parse::<f64>()?;
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
    Ok(ticks / hz)
}

/// The release `shoal` binary next to this one (both are built by `bench/run.sh`).
pub fn default_shoal_bin() -> PathBuf {
    std::env::current_exe()
        .ok()
        .and_then(|p| p.parent().map(|d| d.join("shoal")))
        .unwrap_or_else(|| PathBuf::from("shoal"))
}
