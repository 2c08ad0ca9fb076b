//! S1: placement throughput of the scheduler — 5,000 nodes, 100,000 batch placements with
//! constraints.

use std::collections::HashMap;
use std::time::Instant;

use serde_json::json;
use shoal_scheduler::{NodeView, SchedulerConfig, SchedulerInput, schedule};
use shoal_types::{ConnectionStatus, Job, Membership, NodeInfo, NodeState, Resources, spec};

use crate::Ctx;
use crate::report::Section;
use crate::stats::{Stats, fmt};

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
    let body = format!(
        "The pure scheduler (`shoal_scheduler::schedule`: feasibility, ranking, placement) over\n\
         {NODES} nodes in 10 regions; batch jobs of Count={PER_JOB} constrained to 8 regions\n\
         (`region in (r0..r7)`) and `tier != spot`; each node's free capacity shrinks as work is\n\
         placed. {placements} placements per repetition, {reps} repetitions; the orchestrator's\n\
         SQLite commit and the link are not included (S10 measures the durable path).\n\n\
         | measure | value (min–max) | target | peer |\n|---|---|---|---|\n\
         | placements/s | {r} ({rmin}–{rmax}) | ≥ 10,000/s on 2 cores | Nomad C1M: 3,750/s on 5 servers |\n",
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
    let mut job = spec::read_job_value(json!({
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
    spec::apply_defaults(&mut job);
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
        },
        free: capacity,
        last_seen: 1,
    }
}
