//! S6: WASM throughput with a cached module — the engine alone, end to end through the
//! orchestrator, and the floor (the same module run directly in wasmtime).

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::json;
use shoal_executors::wasm::WasmExecutor;
use shoal_executors::{ExecutionRequest, Executor, LogSink, PreparedInput};
use shoal_types::{JobType, SpecConfig};
use tokio_util::sync::CancellationToken;

use crate::Ctx;
use crate::floor::DirectWasm;
use crate::jobs::{self, HELLO_WAT};
use crate::proc::{Shoal, free_port, wait_alive, wait_nodes};
use crate::report::Section;
use crate::stats::{Stats, fmt, ratio};

/// Runs S6.
pub async fn run(ctx: &Ctx) -> anyhow::Result<Section> {
    let reps = if ctx.quick { 3 } else { 7 };
    let runs = if ctx.quick { 2_000 } else { 20_000 };
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let workers = cores * 2;

    let engine = Stats::new(
        futures_reps(reps, || engine_throughput(runs, workers))
            .await
            .into_iter()
            .collect::<Result<_, _>>()?,
    );
    // wasmtime's WASI calls must not run inside the async runtime: plain threads.
    let floor: Vec<f64> = std::thread::spawn(move || {
        (0..reps)
            .map(|_| direct_throughput(runs, cores))
            .collect::<anyhow::Result<Vec<f64>>>()
    })
    .join()
    .expect("the floor thread does not panic")?;
    let floor = Stats::new(floor);
    let e2e_secs = if ctx.quick { 5 } else { 20 };
    let e2e = end_to_end(ctx, e2e_secs).await?;

    let body = format!(
        "Hello world in WASM with the module already compiled and cached. Throughput in runs per\n\
         second, median of {reps} repetitions (min–max).\n\n\
         | measure | runs/s | target |\n|---|---|---|\n\
         | Shoal's wasm engine ({workers} concurrent runs, {runs} runs) | {e} ({emin}–{emax}) | ≥ 10,000/s |\n\
         | floor: direct wasmtime, {cores} threads, fresh store+instance per run | {f} ({fmin}–{fmax}) | |\n\
         | engine / floor | {ratio} | |\n\
         | end to end: jobs completed/s through the orchestrator, `devstack --computes 3`, 16 submitting clients, {e2e_secs} s | {e2e} | |\n",
        e = fmt(engine.median()),
        emin = fmt(engine.min()),
        emax = fmt(engine.max()),
        f = fmt(floor.median()),
        fmin = fmt(floor.min()),
        fmax = fmt(floor.max()),
        ratio = ratio(engine.median() / floor.median()),
        e2e = fmt(e2e),
    );
    Ok(Section {
        id: "s06-wasm",
        title: "S6: WASM throughput (cached module)".into(),
        body,
    })
}

async fn futures_reps<F, Fut>(reps: usize, f: F) -> Vec<anyhow::Result<f64>>
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<f64>>,
{
    let mut out = Vec::new();
    for _ in 0..reps {
        out.push(f().await);
    }
    out
}

/// Runs per second through `WasmExecutor`, `workers` at a time.
async fn engine_throughput(runs: usize, workers: usize) -> anyhow::Result<f64> {
    let dir = tempfile::tempdir()?;
    let module = dir.path().join("hello.wat");
    std::fs::write(&module, HELLO_WAT)?;
    let exec = Arc::new(WasmExecutor::new()?);
    let request = ExecutionRequest {
        job_id: "bench".into(),
        execution_id: "bench".into(),
        job_type: JobType::Batch,
        engine: SpecConfig {
            kind: "wasm".into(),
            params: json!({ "EntryModule": "/app/hello.wat" })
                .as_object()
                .cloned()
                .unwrap_or_default(),
        },
        env: Default::default(),
        inputs: vec![PreparedInput {
            host_path: module,
            target: "/app/hello.wat".into(),
            read_write: false,
        }],
        results_dir: dir.path().join("results"),
        result_paths: vec![],
        resources: Default::default(),
        network: Default::default(),
        timeout: None,
    };
    // Warm the module cache.
    run_one(&exec, &request).await?;
    let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let t0 = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..workers {
        let (exec, request, next) = (exec.clone(), request.clone(), next.clone());
        tasks.push(tokio::spawn(async move {
            while next.fetch_add(1, std::sync::atomic::Ordering::Relaxed) < runs {
                run_one(&exec, &request).await?;
            }
            anyhow::Ok(())
        }));
    }
    for t in tasks {
        t.await??;
    }
    Ok(runs as f64 / t0.elapsed().as_secs_f64())
}

async fn run_one(exec: &WasmExecutor, request: &ExecutionRequest) -> anyhow::Result<()> {
    let (sink, mut rx) = LogSink::channel();
    let drain = tokio::spawn(async move { while rx.recv().await.is_some() {} });
    let exit = exec
        .run(request.clone(), sink, CancellationToken::new())
        .await
        .map_err(|e| anyhow::anyhow!("wasm run failed: {e}"))?;
    anyhow::ensure!(exit.code == 0, "hello world exited {}", exit.code);
    let _ = drain.await;
    Ok(())
}

/// Runs per second directly in wasmtime on `threads` threads.
fn direct_throughput(runs: usize, threads: usize) -> anyhow::Result<f64> {
    let direct = Arc::new(DirectWasm::new(HELLO_WAT.as_bytes())?);
    direct.run_once()?;
    let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let t0 = Instant::now();
    std::thread::scope(|s| {
        let handles: Vec<_> = (0..threads)
            .map(|_| {
                let (direct, next) = (direct.clone(), next.clone());
                s.spawn(move || -> anyhow::Result<()> {
                    while next.fetch_add(1, std::sync::atomic::Ordering::Relaxed) < runs {
                        direct.run_once()?;
                    }
                    Ok(())
                })
            })
            .collect();
        handles
            .into_iter()
            .try_for_each(|h| h.join().expect("bench thread panicked"))
    })?;
    Ok(runs as f64 / t0.elapsed().as_secs_f64())
}

/// Completed jobs per second through a devstack with 3 agents, 16 clients submitting and
/// waiting, for `secs` seconds.
async fn end_to_end(ctx: &Ctx, secs: u64) -> anyhow::Result<f64> {
    let dir = tempfile::tempdir()?;
    let shoal = Shoal::spawn(
        &ctx.shoal,
        &["devstack", "--computes", "3"],
        dir.path(),
        free_port(),
    )?;
    let client = shoal.client();
    wait_alive(&client, Duration::from_secs(30)).await?;
    wait_nodes(&client, 3, Duration::from_secs(30)).await?;
    let job = Arc::new(jobs::hello_wasm());
    let deadline = Instant::now() + Duration::from_secs(secs);
    let t0 = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..16 {
        let (client, job) = (client.clone(), job.clone());
        tasks.push(tokio::spawn(async move {
            let mut done = 0usize;
            while Instant::now() < deadline {
                let id = client.submit(&job).await?;
                jobs::wait_completed(&client, &id, Duration::from_secs(60)).await?;
                done += 1;
            }
            anyhow::Ok(done)
        }));
    }
    let mut done = 0;
    for t in tasks {
        done += t.await??;
    }
    Ok(done as f64 / t0.elapsed().as_secs_f64())
}
