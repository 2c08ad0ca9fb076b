//! S9: the compute agent's footprint — idle RSS of a real `shoal serve --compute` process, and
//! what each running job adds.

use std::time::Duration;

use serde_json::json;
use shoal_types::spec;

use crate::Ctx;
use crate::proc::{Shoal, cpu_seconds, free_port, rss_bytes, wait_alive, wait_nodes};
use crate::report::Section;
use crate::stats::{Stats, fmt};

/// A WASI module that sleeps 60 s: one `poll_oneoff` on a monotonic clock subscription.
const SLEEPER_WAT: &str = r#"(module
  (import "wasi_snapshot_preview1" "poll_oneoff" (func $poll (param i32 i32 i32 i32) (result i32)))
  (memory (export "memory") 1)
  (func (export "_start")
    ;; subscription at 0: userdata(8) tag(1)=clock pad id(4)=monotonic timeout(8) precision(8) flags(2)
    (i64.store (i32.const 0) (i64.const 1))
    (i32.store8 (i32.const 8) (i32.const 0))
    (i32.store (i32.const 16) (i32.const 1))
    (i64.store (i32.const 24) (i64.const 60000000000))
    (i64.store (i32.const 32) (i64.const 0))
    (i32.store16 (i32.const 40) (i32.const 0))
    (drop (call $poll (i32.const 0) (i32.const 64) (i32.const 1) (i32.const 128)))))"#;

/// Runs S9.
pub async fn run(ctx: &Ctx) -> anyhow::Result<Section> {
    let jobs_running = if ctx.quick { 10 } else { 50 };
    let dir = tempfile::tempdir()?;
    let port = free_port();
    let orch = Shoal::spawn(
        &ctx.shoal,
        &[
            "serve",
            "--orchestrator",
            "--allow-anonymous",
            "write",
            "--token",
            "bench",
        ],
        &dir.path().join("o"),
        port,
    )?;
    let client = orch.client();
    wait_alive(&client, Duration::from_secs(30)).await?;
    let url = format!("ws://127.0.0.1:{port}");
    let agent = Shoal::spawn(
        &ctx.shoal,
        &[
            "serve",
            "--compute",
            "--orchestrators",
            &url,
            "--token",
            "bench",
        ],
        &dir.path().join("a"),
        free_port(),
    )?;
    wait_nodes(&client, 1, Duration::from_secs(30)).await?;
    // Let start-up allocations settle, then sample for a few seconds.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let mut idle = Vec::new();
    let cpu0 = cpu_seconds(agent.pid())?;
    let t0 = std::time::Instant::now();
    for _ in 0..10 {
        idle.push(rss_bytes(agent.pid())? as f64 / (1 << 20) as f64);
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let idle_cpu_pct = (cpu_seconds(agent.pid())? - cpu0) / t0.elapsed().as_secs_f64() * 100.0;
    let idle = Stats::new(idle);

    let job = spec::parse_job_value(json!({
        "Type": "batch", "Count": jobs_running,
        "Tasks": [{ "Name": "main",
            "Engine": { "Type": "wasm", "Params": { "EntryModule": "/app/sleep.wat" } },
            "InputSources": [{ "Target": "/app/sleep.wat",
                "Source": { "Type": "inline", "Params": { "URL": SLEEPER_WAT } } }],
            "Resources": { "CPU": "1m", "Memory": "16Mi" } }],
    }))?;
    let id = client.submit(&job).await?;
    // Wait until every partition runs on the node.
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    loop {
        let running = client
            .executions(&id)
            .await?
            .iter()
            .filter(|e| e.compute_state.state_type.to_string() == "Running")
            .count();
        if running >= jobs_running as usize {
            break;
        }
        anyhow::ensure!(
            std::time::Instant::now() < deadline,
            "only {running} of {jobs_running} sleeping jobs started"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    let busy = rss_bytes(agent.pid())? as f64 / (1 << 20) as f64;
    let per_job_kib = (busy - idle.median()) * 1024.0 / jobs_running as f64;
    let _ = client.stop(&id, "benchmark done").await;
    drop(agent);
    drop(orch);

    let salt = crate::peers::salt_minion_idle_rss().await;
    let salt_row = match &salt {
        Ok(mib) => format!(
            "| peer: Salt minion, idle | {} MiB | | Shoal / Salt = {:.2} |\n",
            fmt(*mib),
            idle.median() / mib
        ),
        Err(why) => format!("| peer: Salt minion, idle | not measured: {why} | | |\n"),
    };
    let body = format!(
        "A real `shoal serve --compute` process (release, engines: noop, wasm, docker when the\n\
         daemon answers, query) connected to an orchestrator in another process. RSS from\n\
         `/proc/PID/status`; idle is sampled 10 times over 2 s after the link is up.\n\n\
         | measure | value | target | ratio |\n|---|---|---|---|\n\
         | idle agent RSS | {i} MiB ({imin}–{imax}) | ≤ 15 MB | |\n\
         | idle agent CPU (heartbeats) | {idle_cpu_pct:.2}% of one core | | |\n\
         | per running WASM job ({jobs_running} sleeping jobs, 16 MiB limit each) | {per_job_kib:.0} KiB | | |\n\
         {salt_row}",
        i = fmt(idle.median()),
        imin = fmt(idle.min()),
        imax = fmt(idle.max()),
    );
    Ok(Section {
        id: "s09-footprint",
        title: "S9: agent footprint".into(),
        body,
    })
}
