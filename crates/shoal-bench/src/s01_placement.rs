//! S1: placement throughput of the scheduler — 5,000 nodes, 100,000 batch placements with
//! constraints.

use std::collections::HashMap;
use std::time::Instant;

use serde_json::json;
use shoal_scheduler::{NodeView, SchedulerConfig, SchedulerInput, schedule};
use shoal_types::{ConnectionStatus, Job, Membership, NodeInfo, NodeState, Resources, spec};

use crate::Ctx;
use crate::proc::{Shoal, free_port, wait_alive, wait_nodes};
use crate::report::Section;
use crate::simfleet::Fleet;
use crate::stats::{Stats, fmt, spread};

const NODES: usize = 5_000;
const PER_JOB: u64 = 1_000;

/// Runs S1.
pub async fn run(ctx: &Ctx) -> anyhow::Result<Section> {
    let placements: u64 = if ctx.quick { 20_000 } else { 100_000 };
    let reps = if ctx.quick { 3 } else { 5 };
    let mut rates = Vec::new();
    for _ in 0..reps {
        rates.push(once(placements)?);
    }
    let rates = Stats::new(rates);
    // Bounded: a run that does not finish is reported as such, with the scheduler's figure.
    let limit = std::time::Duration::from_secs(if ctx.quick { 240 } else { 600 });
    let durable = match tokio::time::timeout(limit, through_orchestrator(ctx)).await {
        Ok(Ok(d)) => Ok(d),
        Ok(Err(e)) => Err(format!("did not complete: {e:#}")),
        Err(_) => Err(format!("did not finish within {} s", limit.as_secs())),
    };
    let body = format!(
        "The pure scheduler (`shoal_scheduler::schedule`: feasibility, ranking, placement) over\n\
         {NODES} nodes in 10 regions; batch jobs of Count={PER_JOB} constrained to 8 regions\n\
         (`region in (r0..r7)`) and `tier != spot`; each node's free capacity shrinks as work is\n\
         placed. {placements} placements per repetition, {reps} repetitions; the orchestrator's\n\
         SQLite commit and the link are not included (S10 measures the durable path).\n\n\
         | measure | value (min–max) | target | peer |\n|---|---|---|---|\n\
         | placements/s, pure scheduler | {r} ({rmin}–{rmax}) | ≥ 10,000/s on 2 cores | Nomad C1M: 3,750/s on 5 servers |\n\
         | placements/s through the orchestrator | {d} | | |\n\n\
         The second row goes through the whole durable path: a `shoal serve --orchestrator`\n\
         process (release) with {NODES} simulated agents in another process (`shoal-bench\n\
         simfleet`, noop engine, labels `region=r{{i%10}}`, `tier=t{{i%7}}`); {clients} clients\n\
         submit {jobs} batch jobs of Count={PER_JOB} over REST, constrained to `region in (r0..r7)`\n\
         and `tier != t0`. A submission is answered after its placements are committed (the\n\
         executions and the `Run` messages in the nodes' outboxes), so placements/s = placements\n\
         / time until the last answer; the agents run and report the work at the same time.\n\
         {lat}\n",
        d = durable
            .as_ref()
            .map_or_else(|e| format!("not measured: {e}"), |d| fmt(d.rate)),
        clients = 8,
        jobs = if ctx.quick { 20 } else { 100 },
        lat = durable.as_ref().map_or(String::new(), |d| format!(
            "Submit latency per job: {}.",
            spread(&d.latency_ms, " ms")
        )),
        r = fmt(rates.median()),
        rmin = fmt(rates.min()),
        rmax = fmt(rates.max()),
    );
    Ok(Section {
        id: "s01-placement",
        title: "S1: placement throughput".into(),
        body,
    })
}

/// The orchestrator's figure.
struct Durable {
    rate: f64,
    latency_ms: Stats,
}

/// Placements through a real orchestrator process with a simulated fleet.
async fn through_orchestrator(ctx: &Ctx) -> anyhow::Result<Durable> {
    let jobs = if ctx.quick { 20 } else { 100 };
    let clients = 8;
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
        dir.path(),
        port,
    )?;
    let client = orch.client();
    wait_alive(&client, std::time::Duration::from_secs(30)).await?;
    let urls = vec![format!("ws://127.0.0.1:{port}")];
    let fleet = tokio::task::spawn_blocking(move || {
        Fleet::spawn(
            &urls,
            NODES,
            "bench",
            &["--labels", "region=r{i%10},tier=t{i%7}"],
        )
    })
    .await??;
    wait_nodes(&client, NODES, std::time::Duration::from_secs(300)).await?;
    let job = spec::parse_job_value(json!({
        "Type": "batch", "Count": PER_JOB,
        "Constraints": [
            { "Key": "region", "Operator": "in",
              "Values": ["r0", "r1", "r2", "r3", "r4", "r5", "r6", "r7"] },
            { "Key": "tier", "Operator": "!=", "Values": ["t0"] },
        ],
        "Tasks": [{ "Name": "main", "Engine": { "Type": "noop" },
                    "Resources": { "CPU": "10m", "Memory": "16Mi" } }],
    }))?;
    let job = std::sync::Arc::new(job);
    let next = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let t0 = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..clients {
        let (client, job, next) = (client.clone(), job.clone(), next.clone());
        tasks.push(tokio::spawn(async move {
            let (mut lat, mut ids) = (Vec::new(), Vec::new());
            while next.fetch_add(1, std::sync::atomic::Ordering::Relaxed) < jobs {
                let s = Instant::now();
                ids.push(client.submit(&job).await?);
                lat.push(s.elapsed().as_secs_f64() * 1e3);
            }
            anyhow::Ok((lat, ids))
        }));
    }
    let (mut latency, mut ids) = (Vec::new(), Vec::new());
    for t in tasks {
        let (l, i) = t.await??;
        latency.extend(l);
        ids.extend(i);
    }
    let secs = t0.elapsed().as_secs_f64();
    // Every job was placed in full when its submission was answered.
    for id in &ids {
        let placed = client.executions(id).await?.len();
        anyhow::ensure!(
            placed == PER_JOB as usize,
            "S1: job {id} was placed on {placed} nodes, not {PER_JOB}"
        );
    }
    drop(fleet);
    drop(orch);
    Ok(Durable {
        rate: (jobs as u64 * PER_JOB) as f64 / secs,
        latency_ms: Stats::new(latency),
    })
}

fn once(placements: u64) -> anyhow::Result<f64> {
    let mut nodes: Vec<NodeView> = (0..NODES).map(node).collect();
    let index: HashMap<String, usize> = nodes
        .iter()
        .enumerate()
        .map(|(i, n)| (n.state.info.node_id.clone(), i))
        .collect();
    let job = job();
    let config = SchedulerConfig::default();
    let mut placed = 0u64;
    let t0 = Instant::now();
    while placed < placements {
        let plan = schedule(SchedulerInput {
            job: &job,
            executions: &[],
            nodes: &nodes,
            now: 1,
            config: &config,
            rollout: None,
        });
        anyhow::ensure!(
            !plan.new_executions.is_empty(),
            "the scheduler placed nothing: {:?}",
            plan.job_state
        );
        for e in &plan.new_executions {
            let n = &mut nodes[index[e.node_id.as_str()]];
            n.free = n.free.saturating_sub(&e.resources);
        }
        placed += plan.new_executions.len() as u64;
    }
    Ok(placed as f64 / t0.elapsed().as_secs_f64())
}

fn job() -> Job {
    let mut job = spec::parse_job_value(json!({
        "Name": "s1", "Type": "batch", "Count": PER_JOB,
        "Constraints": [
            { "Key": "region", "Operator": "in",
              "Values": ["r0", "r1", "r2", "r3", "r4", "r5", "r6", "r7"] },
            { "Key": "tier", "Operator": "!=", "Values": ["spot"] },
        ],
        "Tasks": [{ "Name": "main", "Engine": { "Type": "noop" },
                    "Resources": { "CPU": "10m", "Memory": "16Mi" } }],
    }))
    .expect("the S1 job is valid");
    job.id = "s1".into();
    job.version = 1;
    job
}

fn node(i: usize) -> NodeView {
    let mut info = NodeInfo {
        node_id: format!("node-{i:05}"),
        ..Default::default()
    };
    info.labels.insert("region".into(), format!("r{}", i % 10));
    info.labels.insert(
        "tier".into(),
        if i.is_multiple_of(7) {
            "spot"
        } else {
            "standard"
        }
        .into(),
    );
    let capacity = Resources {
        cpu: 16.0,
        memory: 32 << 30,
        disk: 100 << 30,
        gpu: 0,
    };
    info.compute_node_info.execution_engines = vec!["noop".into(), "wasm".into()];
    info.compute_node_info.max_capacity = capacity;
    NodeView {
        state: NodeState {
            info,
            membership: Membership::Approved,
            connection: ConnectionStatus::Connected,
            connection_state: Default::default(),
            operator_labels: Default::default(),
            cordoned: false,
            drained: false,
        },
        free: capacity,
        last_seen: 1,
    }
}
