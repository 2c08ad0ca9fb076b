//! S12: `shoal exec` of `true` on a simulated fleet (issue 16's benchmark) — time from the
//! submission to every node accounted, beside S11's fleet query at the same size.
//!
//! The fleet is `shoal-bench simfleet` with the real `exec` engine on every agent (allowlist
//! `/bin/true`, running as the benchmark's own user): each node really forks and waits for
//! `/bin/true`, and reports over its own WebSocket.

use std::time::{Duration, Instant};

use shoal_client::Client;
use shoal_types::{Job, JobStateType, spec};

use crate::Ctx;
use crate::proc::cpu_seconds;
use crate::report::Section;
use crate::simfleet::BenchFleet;
use crate::stats::{Stats, spread};

/// Runs S12.
pub async fn run(ctx: &Ctx) -> anyhow::Result<Section> {
    let n = if ctx.quick { 200 } else { 1_000 };
    let reps = if ctx.quick { 3 } else { 10 };
    eprintln!("S12: {n} agents, {}", ctx.shoal.display());
    let bench = BenchFleet::start(&ctx.shoal, n, &["--exec-allow", "/bin/true"]).await?;
    // Host commands need the `exec` grant, which anonymous callers never get: use the admin
    // key the orchestrator made in its data dir.
    let key_file = bench.dir.path().join("orchestrator").join("admin-api-key");
    let key = std::fs::read_to_string(key_file)?;
    let orch = &bench.orchestrator;
    let client = orch
        .client()
        .with_credentials(&shoal_client::Credentials::ApiKey(key.trim().to_string()));
    // One run to warm up (first exec on every node), not counted.
    exec_true(&client, n).await?;
    let (mut seen, mut recorded) = (Vec::new(), Vec::new());
    let cpu0 = cpu_seconds(orch.pid())?;
    for _ in 0..reps {
        let (s, r) = exec_true(&client, n).await?;
        seen.push(s);
        recorded.push(r);
    }
    let orch_cpu_s = (cpu_seconds(orch.pid())? - cpu0) / reps as f64;
    drop(bench);
    let (seen, recorded) = (Stats::new(seen), Stats::new(recorded));
    let body = format!(
        "A `shoal serve --orchestrator` process and {n} simulated agents in another process\n\
         (`shoal-bench simfleet`, one WebSocket each over loopback) with the real `exec` engine\n\
         (allowlist `/bin/true`). Each run submits what `shoal exec -- /bin/true` submits (an\n\
         ops job, exec engine) over REST and polls the job every 5 ms until it ended, which is\n\
         when every node is accounted for; every run must end `{n} succeeded`. {reps} runs.\n\
         *Recorded* is the orchestrator's own time from the job's creation to its last state\n\
         change (no polling in it).\n\n\
         | agents | submit → 100% accounted, client, ms | recorded by the orchestrator, ms | orchestrator CPU per run | target |\n\
         |---|---|---|---|---|\n\
         | {n} | {} | {} | {orch_cpu_s:.2} s | 100% < 1,000 ms at 1,000 nodes |\n\n\
         S11 (fleet SQL fan-out) answers at the same fleet sizes; an exec run adds a durable\n\
         execution per node (stored, sent through the node's outbox, reported and stored again)\n\
         and a process per node.\n",
        spread(&seen, ""),
        spread(&recorded, ""),
    );
    Ok(Section {
        id: "s12-exec",
        title: "S12: `shoal exec` on every node".into(),
        body,
    })
}

fn exec_job() -> anyhow::Result<Job> {
    spec::parse_job(
        "Type: ops\nTasks:\n  - Name: main\n    Engine: {Type: exec, Params: {Command: /bin/true}}\n    Network: {Type: None}\n    Timeouts: {ExecutionTimeout: 60, TotalTimeout: 70}\n",
    )
    .map_err(|e| anyhow::anyhow!("S12: the exec job does not parse: {e}"))
}

/// One run: (ms until the client saw the job end, ms the orchestrator recorded).
async fn exec_true(client: &Client, n: usize) -> anyhow::Result<(f64, f64)> {
    let job = exec_job()?;
    let t0 = Instant::now();
    let id = client.submit(&job).await?;
    let deadline = t0 + Duration::from_secs(120);
    loop {
        let view = client.job(&id, "").await?;
        let j = &view.job;
        if j.state.state_type.is_terminal() {
            let seen = t0.elapsed().as_secs_f64() * 1e3;
            anyhow::ensure!(
                j.state.state_type == JobStateType::Completed
                    && j.state.message.contains(&format!("{n} succeeded")),
                "S12: the exec job ended {} ({})",
                j.state.state_type,
                j.state.message
            );
            let recorded = (j.modify_time - j.create_time) as f64 / 1e6;
            return Ok((seen, recorded));
        }
        anyhow::ensure!(
            Instant::now() < deadline,
            "S12: the exec job did not end within 120 s ({})",
            j.state.message
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}
