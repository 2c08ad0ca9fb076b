//! Properties of batch plans over random clusters and execution histories.

use std::collections::{BTreeMap, BTreeSet};

use proptest::prelude::*;
use shoal_scheduler::NodeView;
use shoal_types::{ComputeStateType, ConnectionStatus, Execution, Membership, Resources};

use crate::harness::*;

#[derive(Debug, Clone)]
struct NodeSpec {
    wasm_only: bool,
    memory_gib: u64,
    used_gib: u64,
    connected: bool,
    approved: bool,
    away_secs: i64,
}

fn node_spec() -> impl Strategy<Value = NodeSpec> {
    (
        any::<bool>(),
        1u64..=8,
        0u64..=8,
        prop::bool::weighted(0.8),
        prop::bool::weighted(0.9),
        0i64..600,
    )
        .prop_map(
            |(wasm_only, memory_gib, used, connected, approved, away_secs)| NodeSpec {
                wasm_only,
                memory_gib,
                used_gib: used.min(memory_gib),
                connected,
                approved,
                away_secs,
            },
        )
}

/// One past execution: on which node, ending how (`None` = still live).
type Attempt = (usize, Option<u8>);

fn history(count: usize) -> impl Strategy<Value = Vec<Vec<Attempt>>> {
    let attempt = (0usize..5, prop::option::weighted(0.7, 0u8..5));
    prop::collection::vec(prop::collection::vec(attempt, 0..4), count)
}

fn scenario() -> impl Strategy<Value = (Vec<NodeSpec>, u32, u64, bool, Vec<Vec<Attempt>>)> {
    (
        prop::collection::vec(node_spec(), 1..6),
        1u32..6,
        1u64..4,
        any::<bool>(),
    )
        .prop_flat_map(|(nodes, count, memory_gib, docker)| {
            (
                Just(nodes),
                Just(count),
                Just(memory_gib),
                Just(docker),
                history(count as usize),
            )
        })
}

fn build(
    nodes: &[NodeSpec],
    count: u32,
    memory_gib: u64,
    docker: bool,
    history: &[Vec<Attempt>],
) -> Cluster {
    let job = batch(count)
        .engine(if docker { "docker" } else { "wasm" })
        .memory(&format!("{memory_gib}Gi"));
    let views: Vec<NodeView> = nodes
        .iter()
        .enumerate()
        .map(|(i, s)| {
            let mut n = node(&format!("n-{i}")).memory(s.memory_gib * GIB);
            if s.wasm_only {
                n = n.engines(&["wasm"]);
            }
            if !s.connected {
                n.state.connection = ConnectionStatus::Disconnected;
                n.last_seen = T0 - s.away_secs * SEC;
            }
            if !s.approved {
                n.state.membership = Membership::Pending;
            }
            n
        })
        .collect();
    let mut c = Cluster::new(job, views);
    for (i, s) in nodes.iter().enumerate() {
        c.use_elsewhere(
            &format!("n-{i}"),
            Resources {
                memory: s.used_gib * GIB,
                ..Default::default()
            },
        );
    }
    // Lay down the history through the harness, then rewrite each execution's outcome.
    let node_count = nodes.len();
    for (partition, attempts) in history.iter().enumerate() {
        for (k, (node_index, end)) in attempts.iter().enumerate() {
            // Only the last attempt of a partition may still be live.
            let end = if k + 1 < attempts.len() {
                Some(end.unwrap_or(2))
            } else {
                *end
            };
            let plan = shoal_scheduler::Plan {
                new_executions: vec![shoal_scheduler::NewExecution {
                    node_id: shoal_types::NodeId::new(format!("n-{}", node_index % node_count)),
                    partition_index: partition as u32,
                    previous_execution: None,
                    resources: Resources {
                        memory: memory_gib * GIB,
                        ..Default::default()
                    },
                    job_version: None,
                    unreachable: None,
                }],
                ..Default::default()
            };
            c.apply(&plan);
            let id = c.executions.last().unwrap().id.to_string();
            match end {
                None => c.execution_mut(&id).compute_state.state_type = ComputeStateType::Running,
                Some(0) => c.complete(&id, 0),
                Some(1) => c.complete(&id, 1),
                Some(2) => c.fail(&id, "transient", true),
                Some(3) => c.refuse(&id, "busy"),
                Some(_) => c.fail(&id, "user error", false),
            }
            c.advance(1);
        }
    }
    c
}

fn live_partitions(executions: &[Execution]) -> BTreeSet<u32> {
    executions
        .iter()
        .filter(|e| !e.is_terminal())
        .map(|e| e.partition_index)
        .collect()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn batch_plans_respect_partitions_feasibility_and_capacity(
        (nodes, count, memory_gib, docker, history) in scenario(),
        later in 0i64..900,
    ) {
        let mut c = build(&nodes, count, memory_gib, docker, &history);
        c.advance(later);
        let views = c.views();
        let plan = c.plan();

        // At most one live execution per partition: new ones only where none is live.
        let live = live_partitions(&c.executions);
        let mut seen = BTreeSet::new();
        for new in &plan.new_executions {
            prop_assert!(!live.contains(&new.partition_index) || plan.updates.iter().any(|u| {
                c.execution(u.execution_id.as_str()).partition_index == new.partition_index
                    && u.compute.is_some()
            }), "partition {} already has a live execution", new.partition_index);
            prop_assert!(seen.insert(new.partition_index), "two new executions for partition {}", new.partition_index);
        }

        // Only feasible nodes, and never more than a node has free.
        let mut taken: BTreeMap<String, u64> = BTreeMap::new();
        for new in &plan.new_executions {
            let view = views.iter().find(|v| v.id() == new.node_id).unwrap();
            let info = &view.state.info.compute_node_info;
            prop_assert!(view.state.is_schedulable());
            let engine = if docker { "docker" } else { "wasm" };
            prop_assert!(info.execution_engines.iter().any(|e| e == engine));
            prop_assert!(new.resources.fits_in(&info.max_capacity));
            *taken.entry(new.node_id.to_string()).or_default() += new.resources.memory;
        }
        for (node_id, memory) in taken {
            let view = views.iter().find(|v| v.id().as_str() == node_id).unwrap();
            prop_assert!(memory <= view.free.memory, "{node_id}: {memory} placed, {} free", view.free.memory);
        }

        // A failed job creates nothing.
        if plan.job_state.as_ref().is_some_and(|s| s.state_type == shoal_types::JobStateType::Failed) {
            prop_assert!(plan.new_executions.is_empty());
        }
    }
}
