//! S5: a daemon job rolled out to a simulated fleet, and how fast a silent node is noticed.
//!
//! The fleet is the real agent code, many agents in this process (`shoal-testkit`), each with
//! its own WebSocket to a real orchestrator on loopback, in-memory ledgers and an engine that
//! holds every execution until it is stopped (a daemon that costs no process). A few agents dial
//! through a [`LinkProxy`](shoal_testkit::LinkProxy) that the scenario freezes: a silent
//! partition, which only the missing heartbeats reveal.

use std::time::{Duration, Instant};

use shoal_testkit::{Cluster, ClusterConfig};
use shoal_types::{ComputeStateType, ConnectionStatus};

use crate::Ctx;
use crate::report::Section;
use crate::stats::{Stats, fmt, spread};

/// Agents that dial through a proxy, frozen one after another to time detection.
const PROBES: usize = 5;

/// Runs S5.
pub async fn run(ctx: &Ctx) -> anyhow::Result<Section> {
    let fleet = if ctx.quick { 1000 } else { 5000 };
    raise_fd_limit(4 * fleet as u64 + 1024);
    // The full run uses the defaults (5 s heartbeats, 15 s timeout): 5,000 agents beating
    // every second in the orchestrator's own process (2 cores) is not a fleet anyone runs.
    let heartbeat = Duration::from_secs(if ctx.quick { 1 } else { 5 });
    let timeout = heartbeat * 3;
    let mut cfg = ClusterConfig::new(fleet)
        .held_noop()
        .in_memory_stores()
        .heartbeat_interval(heartbeat);
    cfg.disconnect_timeout = timeout;
    for i in 0..PROBES {
        cfg = cfg.with_link_proxy_for(i);
    }
    let t0 = Instant::now();
    let mut cluster = Cluster::start(cfg).await?;
    cluster.wait_limit = Duration::from_secs(300);
    cluster.wait_for_nodes(fleet).await?;
    let joined = t0.elapsed();

    // Rollout: submit → an execution Running on every node.
    let job = shoal_types::spec::parse_job(
        "Name: fleet-agent\nType: daemon\nTasks:\n  - Name: t\n    Engine:\n      Type: noop\n",
    )?;
    let t0 = Instant::now();
    let id = cluster.client().submit(&job).await?;
    let submitted = t0.elapsed();
    let deadline = Instant::now() + Duration::from_secs(300);
    let mut placed_at = None;
    // Reading 5,000 executions costs the orchestrator's process tens of milliseconds; a
    // watcher that read them back to back would take a core from the rollout it measures.
    // It waits three times as long as its last read took (at least 10 ms) instead, so it
    // uses at most a quarter of a core, and the figure errs late by up to one wait.
    let mut poll_cost = Duration::ZERO;
    let all_running = loop {
        let read_at = Instant::now();
        let execs = cluster.orchestrator().executions(&id).await?;
        poll_cost = poll_cost.max(read_at.elapsed());
        if placed_at.is_none() && execs.len() >= fleet {
            placed_at = Some(t0.elapsed());
        }
        let running = execs
            .iter()
            .filter(|e| e.compute_state.state_type == ComputeStateType::Running)
            .count();
        if running == fleet {
            break t0.elapsed();
        }
        anyhow::ensure!(
            Instant::now() < deadline,
            "the rollout stalled: {running} of {fleet} running after 300 s"
        );
        tokio::time::sleep((read_at.elapsed() * 3).max(Duration::from_millis(10))).await;
    };

    // Detection: freeze one probe's link at a time; time until the orchestrator shows it
    // disconnected. The fleet keeps heartbeating (and the daemon keeps running) meanwhile.
    let mut detect = Vec::new();
    for i in 0..PROBES {
        let node = cluster.node_id(i);
        let proxy = cluster.proxy(i).expect("probes dial through a proxy");
        let t0 = Instant::now();
        proxy.freeze();
        cluster
            .wait_node_status(&node, ConnectionStatus::Disconnected)
            .await?;
        detect.push(t0.elapsed().as_secs_f64() * 1e3);
        cluster
            .proxy(i)
            .expect("probes dial through a proxy")
            .restore();
        cluster
            .wait_node_status(&node, ConnectionStatus::Connected)
            .await?;
    }
    cluster.shutdown().await;

    let detect = Stats::new(detect);
    let hb_ms = heartbeat.as_secs_f64() * 1e3;
    let body = format!(
        "{fleet} simulated agents (the real agent code in one process, each with its own WebSocket\n\
         to the orchestrator over loopback, in-memory ledgers, an engine that holds executions\n\
         until stopped); heartbeat every {hb} s, disconnect timeout {to} s (3 heartbeats; the\n\
         defaults are 5 s and 15 s).\n\n\
         | measure | value | target |\n|---|---|---|\n\
         | fleet joined (start → {fleet} connected) | {join} s | |\n\
         | daemon job submit acknowledged | {ack} ms | |\n\
         | submit → {fleet} executions placed | {placed} ms | |\n\
         | **submit → running on all {fleet} nodes** | **{all} ms** | < 2 s |\n\
         | silent node (frozen link) → shown disconnected, {probes} probes | {det} | ≤ 3 heartbeats ({limit} ms) |\n\n\
         Detection is measured from the freeze; the node's last heartbeat came up to one interval\n\
         earlier, so the figure lies between 2 and 3 intervals plus the engine's check delay.\n\
         The median is **{ratio} heartbeat intervals**.\n\n\
         The watcher reads the job's executions (the API's list) and then waits three times as\n\
         long as the read took; its slowest read took {poll} ms, so \"running on all\" errs late by\n\
         up to about three times that.\n",
        hb = heartbeat.as_secs(),
        to = timeout.as_secs(),
        join = fmt(joined.as_secs_f64()),
        ack = fmt(submitted.as_secs_f64() * 1e3),
        placed = placed_at.map_or("-".into(), |d| fmt(d.as_secs_f64() * 1e3)),
        all = fmt(all_running.as_secs_f64() * 1e3),
        probes = PROBES,
        det = spread(&detect, " ms"),
        limit = fmt(3.0 * hb_ms),
        ratio = fmt(detect.median() / hb_ms),
        poll = fmt(poll_cost.as_secs_f64() * 1e3),
    );
    Ok(Section {
        id: "s05-rollout",
        title: format!("S5: daemon rollout to {fleet} nodes, lost-node detection"),
        body,
    })
}

/// Every agent holds two sockets (its end and the orchestrator's): lift the soft limit on open
/// files towards the hard one.
fn raise_fd_limit(want: u64) {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit only read and write the struct passed to them.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) == 0 && lim.rlim_cur < want {
            lim.rlim_cur = want.min(lim.rlim_max);
            libc::setrlimit(libc::RLIMIT_NOFILE, &lim);
        }
    }
}
