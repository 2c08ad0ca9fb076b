//! `shoal-bench simfleet`: a simulated fleet in a process of its own.
//!
//! N real compute agents (`shoal_compute::Agent`, the code a `shoal serve --compute` runs) with
//! the noop and query engines and in-memory ledgers, each with its own WebSocket to a real
//! `shoal serve --orchestrator` process. Keeping the fleet out of the orchestrator's process
//! lets the benchmarks read the orchestrator's own memory and CPU from `/proc`.
//!
//! The process prints `ready N` on stdout once every agent has been started (connections are
//! counted by the orchestrator), then runs until its stdin closes or it is killed.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use shoal_compute::{Agent, ComputeConfig};
use shoal_executors::ExecutorRegistry;
use shoal_types::Resources;
use tokio::io::AsyncReadExt;

/// `simfleet` arguments.
#[derive(clap::Args, Debug, Clone)]
pub struct SimfleetArgs {
    /// The orchestrator(s) to dial, comma-separated (`ws://HOST:PORT`). Agents are spread over
    /// them in turn: dialling one port on several loopback addresses (127.0.0.1, 127.0.0.2, ...)
    /// lifts the ~28,000 ephemeral ports one address pair allows.
    #[arg(long, value_delimiter = ',', required = true)]
    pub orchestrator: Vec<String>,
    /// How many agents to run.
    #[arg(long)]
    pub agents: usize,
    /// Join token the orchestrator requires.
    #[arg(long)]
    pub token: Option<String>,
    /// Labels `key=value,...` every agent carries (an `agent=i` label is always added). In a
    /// value, `{i%K}` becomes the agent's index modulo K (`region=r{i%10}`).
    #[arg(long, value_delimiter = ',')]
    pub labels: Vec<String>,
    /// Heartbeat period of every agent (`5s`, `500ms`).
    #[arg(long, value_parser = humantime_secs, default_value = "5")]
    pub heartbeat_secs: f64,
    /// Node ids are `PREFIX-i`.
    #[arg(long, default_value = "n-sim")]
    pub prefix: String,
    /// Agents started per batch; the next batch starts after `--ramp-pause-ms`.
    #[arg(long, default_value_t = 500)]
    pub ramp_batch: usize,
    /// Pause between batches of starts, in milliseconds.
    #[arg(long, default_value_t = 50)]
    pub ramp_pause_ms: u64,
    /// Where the agents keep their (small) execution folders; a temporary dir by default.
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
    /// Offer the `exec` engine with this allowlist rule (repeatable), running commands as
    /// this process's own user.
    #[arg(long)]
    pub exec_allow: Vec<String>,
}

fn humantime_secs(s: &str) -> Result<f64, String> {
    let s = s.trim();
    if let Some(ms) = s.strip_suffix("ms") {
        return ms
            .parse::<f64>()
            .map(|v| v / 1e3)
            .map_err(|e| e.to_string());
    }
    s.trim_end_matches('s')
        .parse::<f64>()
        .map_err(|e| format!("{s:?} is not a number of seconds: {e}"))
}

/// Replaces `{i%K}` in a label value with `i % K`.
fn expand(value: &str, i: usize) -> String {
    let Some(start) = value.find("{i%") else {
        return value.to_string();
    };
    let Some(len) = value[start..].find('}') else {
        return value.to_string();
    };
    match value[start + 3..start + len].parse::<usize>() {
        Ok(k) if k > 0 => format!(
            "{}{}{}",
            &value[..start],
            i % k,
            expand(&value[start + len + 1..], i)
        ),
        _ => value.to_string(),
    }
}

/// Raises this process's open-file limit to its hard limit (every agent is one socket);
/// returns the limit now in force. Children inherit it.
pub fn raise_nofile() -> u64 {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit write/read the struct we own.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) != 0 {
            return 1024;
        }
        lim.rlim_cur = lim.rlim_max;
        libc::setrlimit(libc::RLIMIT_NOFILE, &lim);
        libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim);
    }
    lim.rlim_cur
}

/// Runs the fleet until stdin closes.
pub async fn run(args: SimfleetArgs) -> anyhow::Result<()> {
    let limit = raise_nofile();
    anyhow::ensure!(
        (args.agents as u64) + 100 < limit,
        "simfleet: {} agents need {} open files but this process may open {limit} \
         (RLIMIT_NOFILE hard limit); run several simfleet processes or raise the limit",
        args.agents,
        args.agents + 100
    );
    let mut labels = BTreeMap::new();
    for l in args.labels.iter().filter(|l| !l.is_empty()) {
        let (k, v) = l
            .split_once('=')
            .with_context(|| format!("simfleet: label {l:?} must be key=value"))?;
        labels.insert(k.trim().to_string(), v.trim().to_string());
    }
    let (_temp, dir) = match &args.data_dir {
        Some(d) => (None, d.clone()),
        None => {
            let t = tempfile::Builder::new()
                .prefix("shoal-simfleet-")
                .tempdir()?;
            let p = t.path().to_path_buf();
            (Some(t), p)
        }
    };
    // One registry shared by every agent: the engines are stateless (the query engine opens a
    // fresh SQLite connection per query).
    let mut executors = ExecutorRegistry::new();
    executors.register(Arc::new(shoal_executors::noop::NoopExecutor));
    executors.register(Arc::new(shoal_executors::query::QueryExecutor::default()));
    if !args.exec_allow.is_empty() {
        let mut policy = shoal_executors::exec::ExecPolicy::enabled_with(&args.exec_allow)
            .map_err(|e| anyhow::anyhow!("simfleet: --exec-allow: {e}"))?;
        // Commands run as this process's user: no user switch, whoever runs the benchmark.
        let me = std::process::Command::new("id").arg("-un").output()?;
        policy.default_user = String::from_utf8_lossy(&me.stdout).trim().to_string();
        shoal_executors::exec::install(&mut executors, policy);
    }
    let capacity = Resources {
        cpu: 4.0,
        memory: 8 << 30,
        disk: 100 << 30,
        gpu: 0,
    };
    let mut agents = Vec::with_capacity(args.agents);
    for i in 0..args.agents {
        let url = &args.orchestrator[i % args.orchestrator.len()];
        let mut c = ComputeConfig::new(dir.join(format!("a{i}")), url.clone());
        c.node_id = Some(format!("{}-{i}", args.prefix));
        c.labels = labels
            .iter()
            .map(|(k, v)| (k.clone(), expand(v, i)))
            .collect();
        c.labels.insert("agent".into(), i.to_string());
        c.capacity = Some(capacity);
        c.heartbeat_interval = Duration::from_secs_f64(args.heartbeat_secs);
        c.token = args.token.clone();
        c.in_memory_store = true;
        agents.push(
            Agent::start(c, executors.clone())
                .await
                .with_context(|| format!("simfleet: agent {i} did not start"))?,
        );
        if (i + 1) % args.ramp_batch.max(1) == 0 {
            tokio::time::sleep(Duration::from_millis(args.ramp_pause_ms)).await;
        }
    }
    println!("ready {}", agents.len());
    // Run until the parent closes our stdin (or kills us).
    let mut sink = [0u8; 64];
    let mut stdin = tokio::io::stdin();
    while stdin.read(&mut sink).await.unwrap_or(0) > 0 {}
    // Exit without closing links one by one: the orchestrator sees the sockets close.
    std::mem::forget(agents);
    Ok(())
}

/// A `simfleet` child process of this benchmark; killed when dropped.
pub struct Fleet {
    child: std::process::Child,
}

impl Fleet {
    /// Starts `shoal-bench simfleet` (this program) with `args` and waits until it has started
    /// every agent. Connections are the orchestrator's to count.
    pub fn spawn(
        orchestrator: &[String],
        agents: usize,
        token: &str,
        extra: &[&str],
    ) -> anyhow::Result<Fleet> {
        use std::io::BufRead;
        use std::process::{Command, Stdio};
        let exe = std::env::current_exe().context("simfleet: cannot find this program")?;
        let mut child = Command::new(exe)
            .arg("simfleet")
            .arg("--orchestrator")
            .arg(orchestrator.join(","))
            .args(["--agents", &agents.to_string(), "--token", token])
            .args(extra)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .env("RUST_LOG", "error")
            .spawn()
            .context("simfleet: cannot start the fleet process")?;
        let stdout = child.stdout.take().context("simfleet: no stdout")?;
        let mut line = String::new();
        std::io::BufReader::new(stdout).read_line(&mut line)?;
        anyhow::ensure!(
            line.starts_with("ready"),
            "simfleet: the fleet process did not start its agents (it said {line:?})"
        );
        Ok(Fleet { child })
    }

    /// The fleet process's id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for Fleet {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A `shoal serve --orchestrator` process (anonymous writes allowed, join token `bench`) with
/// `agents` simulated agents connected to it: what the fleet-scale scenarios measure against.
pub struct BenchFleet {
    /// The orchestrator.
    pub orchestrator: crate::proc::Shoal,
    /// The agents' process, stopped when this is dropped.
    _fleet: Fleet,
    /// The orchestrator's data dir (holds its admin API key).
    pub dir: tempfile::TempDir,
}

impl BenchFleet {
    /// Starts the orchestrator (`bin`) and `agents` agents with `fleet_args` (passed to
    /// `simfleet`), and waits until every agent is connected and a second has passed.
    pub async fn start(
        bin: &std::path::Path,
        agents: usize,
        fleet_args: &[&str],
    ) -> anyhow::Result<BenchFleet> {
        use crate::proc::{Shoal, free_port, wait_alive, wait_nodes};
        let dir = tempfile::tempdir()?;
        let port = free_port();
        let orchestrator = Shoal::spawn(
            bin,
            &[
                "serve",
                "--orchestrator",
                "--allow-anonymous",
                "write",
                "--token",
                "bench",
            ],
            dir.path(),
            port,
        )?;
        let client = orchestrator.client();
        wait_alive(&client, Duration::from_secs(30)).await?;
        let urls = vec![format!("ws://127.0.0.1:{port}")];
        let args: Vec<String> = fleet_args.iter().map(|s| s.to_string()).collect();
        let fleet = tokio::task::spawn_blocking(move || {
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            Fleet::spawn(&urls, agents, "bench", &args)
        })
        .await??;
        wait_nodes(&client, agents, Duration::from_secs(300)).await?;
        tokio::time::sleep(Duration::from_secs(1)).await;
        Ok(BenchFleet {
            orchestrator,
            _fleet: fleet,
            dir,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::expand;

    #[test]
    fn label_values_take_the_agent_index_modulo_k() {
        assert_eq!(expand("r{i%10}", 23), "r3");
        assert_eq!(expand("a{i%2}-b{i%5}", 7), "a1-b2");
        assert_eq!(expand("plain", 7), "plain");
        assert_eq!(expand("bad{i%x}", 7), "bad{i%x}");
    }
}
