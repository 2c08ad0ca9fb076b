//! S2: one hello-world WASM job, submit → Completed through the orchestrator.

use std::time::{Duration, Instant};

use crate::Ctx;
use crate::floor::DirectWasm;
use crate::jobs::{self, HELLO_WAT};
use crate::proc::{Shoal, free_port, wait_alive, wait_nodes};
use crate::report::Section;
use crate::stats::{Stats, fmt, spread};

/// Runs S2.
pub async fn run(ctx: &Ctx) -> anyhow::Result<Section> {
    let runs = if ctx.quick { 200 } else { 2000 };
    let dir = tempfile::tempdir()?;
    let shoal = Shoal::spawn(
        &ctx.shoal,
        &["devstack", "--computes", "1"],
        dir.path(),
        free_port(),
    )?;
    let client = shoal.client();
    wait_alive(&client, Duration::from_secs(30)).await?;
    wait_nodes(&client, 1, Duration::from_secs(30)).await?;
    let job = jobs::hello_wasm();
    let mut total = Vec::with_capacity(runs);
    let mut ack = Vec::with_capacity(runs);
    for i in 0..runs + 20 {
        let t0 = Instant::now();
        let id = client.submit(&job).await?;
        let acked = t0.elapsed();
        jobs::wait_completed(&client, &id, Duration::from_secs(30)).await?;
        if i >= 20 {
            // The first runs warm the module cache and the connections.
            total.push(t0.elapsed().as_secs_f64() * 1e3);
            ack.push(acked.as_secs_f64() * 1e3);
        }
    }
    drop(shoal);
    // wasmtime's WASI calls must not run inside the async runtime: a plain thread.
    let floor: Vec<f64> = std::thread::spawn(move || {
        let direct = DirectWasm::new(HELLO_WAT.as_bytes())?;
        (0..runs)
            .map(|_| direct.run_once())
            .collect::<anyhow::Result<Vec<f64>>>()
    })
    .join()
    .expect("the floor thread does not panic")?;
    let (total, ack, floor) = (Stats::new(total), Stats::new(ack), Stats::new(floor));
    let body = format!(
        "Hello world in WASM (WAT uploaded inline), one job at a time, `devstack --computes 1`\n\
         (release build). The client is Rust over HTTP/1.1 keep-alive and polls the job until it\n\
         is Completed. A job's path: REST submit → durable SQLite commit → placement → `Run` over\n\
         the agent link → durable accept on the node → wasm run (cached module) → durable report\n\
         → orchestrator commit → client poll.\n\n\
         | measure | runs | median (p10–p90) | p99 | max | target |\n|---|---|---|---|---|---|\n\
         | submit → Completed | {n} | {t} | {t99} ms | {tmax} ms | p50 < 20 ms (issue 2), p50 ≤ 5 ms (issue 7) |\n\
         | submit acknowledged | {n} | {a} | {a99} ms | {amax} ms | |\n\
         | floor: same module run directly in wasmtime | {fnum} | {f} | {f99} ms | {fmax} ms | |\n\n\
         Shoal's end-to-end median is **{ratio}× the direct run** ({over} ms of orchestration on top\n\
         of the module's own run).\n",
        n = total.n(),
        t = spread(&total, " ms"),
        t99 = fmt(total.q(0.99)),
        tmax = fmt(total.max()),
        a = spread(&ack, " ms"),
        a99 = fmt(ack.q(0.99)),
        amax = fmt(ack.max()),
        fnum = floor.n(),
        f = spread(&floor, " ms"),
        f99 = fmt(floor.q(0.99)),
        fmax = fmt(floor.max()),
        ratio = fmt(total.median() / floor.median()),
        over = fmt(total.median() - floor.median()),
    );
    Ok(Section {
        id: "s02-latency",
        title: "S2: single-job latency (hello-world WASM)".into(),
        body,
    })
}
