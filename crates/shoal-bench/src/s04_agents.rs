//! S4: connected-agent scale — a `shoal serve --orchestrator` process, a simulated fleet in
//! another process ramped to 50,000 agents (quick: 5,000), the orchestrator's memory per
//! agent, its CPU while the fleet only sends heartbeats, and the connect ramp time.

use std::time::{Duration, Instant};

use crate::Ctx;
use crate::proc::{Shoal, connected_nodes, cpu_seconds, free_port, rss_bytes, wait_alive};
use crate::report::Section;
use crate::simfleet::{Fleet, raise_nofile};
use crate::stats::{Stats, fmt};

/// Heartbeats per second the fleet is set to send (perf.md's S4 target rate).
const HEARTBEATS_PER_SEC: f64 = 5_000.0;

/// One binary's figures.
struct Scale {
    agents: usize,
    base_rss: f64,
    rss: Stats,
    idle_cpu: f64,
    ramp: f64,
    started: f64,
    fleet_rss: f64,
}

/// Runs S4.
pub async fn run(ctx: &Ctx) -> anyhow::Result<Section> {
    let wanted: usize = if ctx.quick { 5_000 } else { 50_000 };
    // Every agent is one socket in the orchestrator's process and one in the fleet's.
    let nofile = raise_nofile();
    let fits = (nofile as usize).saturating_sub(500);
    let n = wanted.min(fits);
    let heartbeat = (n as f64 / HEARTBEATS_PER_SEC).max(1.0);
    let mut runs = Vec::new();
    if let Some(b) = &ctx.baseline {
        runs.push(("baseline", scale(ctx, b, n, heartbeat).await?));
    }
    runs.push(("this build", scale(ctx, &ctx.shoal, n, heartbeat).await?));

    let capped = if n < wanted {
        format!(
            "\n**Capped at {n} agents, not {wanted}**: this machine's `RLIMIT_NOFILE` hard limit is \
             {nofile} open files per process and cannot be raised here, and each agent is one \
             socket in the orchestrator's process. The per-agent figures are measured at {n}.\n"
        )
    } else {
        String::new()
    };
    let mut body = format!(
        "A `shoal serve --orchestrator` process (release) and a simulated fleet in another process\n\
         (`shoal-bench simfleet`: {n} real agents with noop + query engines and in-memory ledgers,\n\
         each with its own WebSocket over loopback). Agents heartbeat every {heartbeat:.1} s\n\
         ({hbs:.0} heartbeats/s in all). RSS and CPU from `/proc/PID` of the orchestrator;\n\
         connections counted in its node list once a second.{base}\n{capped}\n",
        hbs = n as f64 / heartbeat,
        base = if ctx.baseline.is_some() {
            " The baseline column is an older `shoal` binary (`--baseline`) measured in the same run."
        } else {
            ""
        },
    );
    let col = |f: &dyn Fn(&Scale) -> String| -> String {
        runs.iter().map(|(_, s)| format!(" {} |", f(s))).collect()
    };
    body.push_str(&format!(
        "| measure |{} target |\n|---|{}---|\n",
        runs.iter()
            .map(|(name, _)| format!(" {name} |"))
            .collect::<String>(),
        "---|".repeat(runs.len())
    ));
    body.push_str(&format!(
        "| agents connected |{} 50,000 |\n",
        col(&|s| format!("{} of {n}", s.agents))
    ));
    body.push_str(&format!(
        "| orchestrator RSS, empty → with the fleet |{} |\n",
        col(&|s| format!(
            "{} → {} MiB ({}–{})",
            fmt(s.base_rss / MIB),
            fmt(s.rss.median() / MIB),
            fmt(s.rss.min() / MIB),
            fmt(s.rss.max() / MIB)
        ))
    ));
    body.push_str(&format!(
        "| **orchestrator RSS per agent** |{} ≤ 20 KB |\n",
        col(&|s| format!(
            "**{:.1} KB**",
            (s.rss.median() - s.base_rss) / n as f64 / 1000.0
        ))
    ));
    body.push_str(&format!(
        "| orchestrator CPU, fleet idle ({:.0} heartbeats/s) |{} ≥ 5,000 heartbeats/s under 25% |\n",
        n as f64 / heartbeat,
        col(&|s| format!("{:.1}% of one core", s.idle_cpu))
    ));
    body.push_str(&format!(
        "| connect ramp: fleet start → all connected |{} 50k in seconds |\n",
        col(&|s| format!("{:.1} s (agents started after {:.1} s)", s.ramp, s.started))
    ));
    body.push_str(&format!(
        "| fleet process RSS per agent (for scale) |{} |\n",
        col(&|s| format!("{:.0} KB", s.fleet_rss / n as f64 / 1000.0))
    ));
    Ok(Section {
        id: "s04-agents",
        title: "S4: connected-agent scale".into(),
        body,
    })
}

const MIB: f64 = (1 << 20) as f64;

/// Ramps a fleet of `n` against one orchestrator binary and measures it.
async fn scale(
    ctx: &Ctx,
    bin: &std::path::Path,
    n: usize,
    heartbeat: f64,
) -> anyhow::Result<Scale> {
    let idle_secs = if ctx.quick { 5 } else { 10 };
    let dir = tempfile::tempdir()?;
    let port = free_port();
    let orch = Shoal::spawn(
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
    let client = orch.client();
    wait_alive(&client, Duration::from_secs(30)).await?;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let base_rss = rss_bytes(orch.pid())? as f64;

    // One loopback address per 20,000 agents keeps every (source, destination) pair well
    // inside the ephemeral port range.
    let urls: Vec<String> = (0..n.div_ceil(20_000))
        .map(|i| format!("ws://127.0.0.{}:{port}", i + 1))
        .collect();
    let t0 = Instant::now();
    let hb = format!("{heartbeat}");
    let fleet = tokio::task::spawn_blocking(move || {
        Fleet::spawn(&urls, n, "bench", &["--heartbeat-secs", &hb])
    })
    .await??;
    let started = t0.elapsed().as_secs_f64();
    // Count connections as the orchestrator sees them, once a second (the node list of a
    // large fleet is itself work for the orchestrator).
    let limit = Duration::from_secs(300);
    let ramp = loop {
        let c = connected_nodes(&client).await;
        if c >= n {
            break t0.elapsed().as_secs_f64();
        }
        anyhow::ensure!(
            t0.elapsed() < limit,
            "only {c} of {n} agents connected within {limit:?}"
        );
        tokio::time::sleep(Duration::from_millis(1000)).await;
    };
    // Idle: only heartbeats. Let the ramp's allocations settle first.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let cpu0 = cpu_seconds(orch.pid())?;
    let w0 = Instant::now();
    let mut rss = Vec::new();
    for _ in 0..idle_secs * 2 {
        rss.push(rss_bytes(orch.pid())? as f64);
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let idle_cpu = (cpu_seconds(orch.pid())? - cpu0) / w0.elapsed().as_secs_f64() * 100.0;
    let fleet_rss = rss_bytes(fleet.pid())? as f64;
    let agents = connected_nodes(&client).await;
    drop(fleet);
    drop(orch);
    Ok(Scale {
        agents,
        base_rss,
        rss: Stats::new(rss),
        idle_cpu,
        ramp,
        started,
        fleet_rss,
    })
}
