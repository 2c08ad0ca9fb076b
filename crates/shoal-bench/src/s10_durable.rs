//! S10: durable submits per second with acknowledgement latency; kill -9 and time to ready,
//! after the load and with a large stored history.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::ensure;
use shoal_store::OrchestratorStore;
use shoal_types::{JobId, JobState, JobStateType};

use crate::Ctx;
use crate::floor::sqlite_inserts_per_sec;
use crate::jobs;
use crate::proc::{Shoal, free_port, wait_alive, wait_nodes};
use crate::report::Section;
use crate::simfleet::Fleet;
use crate::stats::{Stats, fmt, ratio, spread};

/// Concurrent submitting clients.
const CLIENTS: usize = 64;
/// Simulated agents that run the submitted jobs.
const AGENTS: usize = 100;

/// Runs S10.
pub async fn run(ctx: &Ctx) -> anyhow::Result<Section> {
    let load_secs = if ctx.quick { 5 } else { 30 };
    let stored_jobs: usize = if ctx.quick { 100_000 } else { 1_000_000 };
    let dir = tempfile::tempdir()?;
    let port = free_port();
    let orchestrator = [
        "serve",
        "--orchestrator",
        "--allow-anonymous",
        "write",
        "--token",
        "bench",
    ];
    let shoal = Shoal::spawn(&ctx.shoal, &orchestrator, dir.path(), port)?;
    let client = shoal.client();
    wait_alive(&client, Duration::from_secs(30)).await?;
    // The jobs run on a simulated fleet in another process (the real agent code, noop
    // engine, in-memory ledgers), so the orchestrator process does only what it does in
    // production: accept, commit, place, send, and apply the reports.
    let urls = vec![format!("ws://127.0.0.1:{port}")];
    let fleet =
        tokio::task::spawn_blocking(move || Fleet::spawn(&urls, AGENTS, "bench", &[])).await??;
    wait_nodes(&client, AGENTS, Duration::from_secs(60)).await?;

    // Load: CLIENTS tasks submit no-op jobs back to back for `load_secs`.
    let job = Arc::new(jobs::noop(1));
    let deadline = Instant::now() + Duration::from_secs(load_secs);
    let t0 = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..CLIENTS {
        let (client, job) = (client.clone(), job.clone());
        tasks.push(tokio::spawn(async move {
            let mut acks = Vec::new();
            let mut ids = Vec::new();
            while Instant::now() < deadline {
                let s = Instant::now();
                let id = client.submit(&job).await?;
                acks.push(s.elapsed().as_secs_f64() * 1e3);
                ids.push(id);
            }
            anyhow::Ok((acks, ids))
        }));
    }
    let (mut acks, mut ids) = (Vec::new(), Vec::new());
    for t in tasks {
        let (a, i) = t.await??;
        acks.extend(a);
        ids.extend(i);
    }
    let elapsed = t0.elapsed().as_secs_f64();
    let rate = acks.len() as f64 / elapsed;

    // kill -9 right after the load, restart on the same state, time until the API answers.
    shoal.kill9();
    let shoal = Shoal::spawn(&ctx.shoal, &orchestrator, dir.path(), port)?;
    let client = shoal.client();
    let ready_after_load = wait_alive(&client, Duration::from_secs(120)).await?;
    // Nothing acknowledged is lost: every id answers after the restart (sampled for speed).
    let step = (ids.len() / 200).max(1);
    for id in ids.iter().step_by(step) {
        client.job(id, "").await?;
    }
    drop(fleet);
    drop(shoal);

    // A large stored history: seed the store directly, then start an orchestrator on it.
    let big = tempfile::tempdir()?;
    let seed_secs = seed(big.path(), stored_jobs)?;
    let port = free_port();
    let shoal = Shoal::spawn(
        &ctx.shoal,
        &["serve", "--orchestrator", "--allow-anonymous", "write"],
        big.path(),
        port,
    )?;
    let client = shoal.client();
    let ready_big = wait_alive(&client, Duration::from_secs(300)).await?;
    let listed = client.list_jobs(1, "", false).await?;
    ensure!(
        !listed.items.is_empty(),
        "the seeded jobs are readable after start"
    );
    drop(shoal);

    let body_json = serde_json::to_string(&*job)?;
    let floor_dir = tempfile::tempdir()?;
    let floor_n = if ctx.quick { 20_000 } else { 100_000 };
    let floor = sqlite_inserts_per_sec(floor_dir.path(), &body_json, floor_n)?;
    let acks = Stats::new(acks);
    let body = format!(
        "{CLIENTS} clients submit no-op batch jobs back to back for {load_secs} s over REST to a\n\
         `shoal serve --orchestrator` process; {AGENTS} simulated agents in another process (the\n\
         real agent code, noop engine) run them. Each submission is answered once the job and its\n\
         placement are committed (WAL, synchronous=NORMAL; submissions that arrive together share\n\
         one transaction); the agents run and report the work at the same time. Floor: the same\n\
         job JSON inserted into a bare SQLite table, one transaction per insert, same settings.\n\n\
         | measure | value | target |\n|---|---|---|\n\
         | durable submits/s | {rate} ({n} jobs) | ≥ 10,000/s |\n\
         | submit ack latency | {a}, p99 {a99} ms, max {amax} ms | |\n\
         | floor: bare SQLite inserts/s | {floor} | |\n\
         | Shoal / floor | {ratio} | |\n\
         | kill -9 after the load → API ready | {r1} ms | < 5 s |\n\
         | start with {stored} stored jobs → API ready | {r2} ms (seeding took {seed_secs:.0} s) | < 5 s at 1,000,000 |\n",
        rate = fmt(rate),
        n = acks.n(),
        a = spread(&acks, " ms"),
        a99 = fmt(acks.q(0.99)),
        amax = fmt(acks.max()),
        floor = fmt(floor),
        ratio = ratio(rate / floor),
        r1 = fmt(ready_after_load.as_secs_f64() * 1e3),
        stored = stored_jobs,
        r2 = fmt(ready_big.as_secs_f64() * 1e3),
    );
    Ok(Section {
        id: "s10-durable",
        title: "S10: durable submits and recovery".into(),
        body,
    })
}

/// Writes `n` completed jobs with a history entry each, in large transactions; returns seconds.
fn seed(dir: &std::path::Path, n: usize) -> anyhow::Result<f64> {
    let t0 = Instant::now();
    let mut store = OrchestratorStore::open(dir)?;
    let template = jobs::noop(1);
    let mut written = 0;
    while written < n {
        let tx = store.begin()?;
        for _ in 0..(n - written).min(50_000) {
            let mut job = template.clone();
            job.id = JobId::generate().to_string();
            job.name = job.id.clone();
            job.version = 1;
            job.state = JobState::new(JobStateType::Completed, "");
            tx.put_job(&job)?;
            written += 1;
        }
        tx.commit()?;
    }
    Ok(t0.elapsed().as_secs_f64())
}
