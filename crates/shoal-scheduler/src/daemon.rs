//! Daemon jobs: one long-running execution on every matching node, including nodes that join
//! or are relabelled later.
//!
//! Per node, in id order:
//!
//! ```text
//!   live execution, node still matches      → keep (a disconnected node keeps working)
//!   live execution, node no longer matches  → stop it
//!   no live execution, node feasible        → place one; a restart waits `queue_backoff` after
//!                                             the last one ended, so a crashing task does not
//!                                             spin
//!   no live execution, node not feasible    → reason in the plan's rejections
//! ```
//!
//! The job is Running from submission until stopped, also while no node matches: daemons wait
//! for nodes to join instead of failing.

use std::collections::BTreeSet;

use shoal_types::{DesiredStateType, ExecutionId, JobStateType, NodeId};

use crate::feasibility::{self, Kind, Purpose, Rejection};
use crate::planner::Planner;

/// Reconciles every node except the `held` ones, which a rollout has not brought to the
/// current version (their earlier version keeps running; see `rolling.rs`).
pub(crate) fn reconcile(p: &mut Planner, held: &BTreeSet<NodeId>) {
    // Positions of the current version's executions, per node (by position in `p.nodes`);
    // executions on nodes the orchestrator no longer knows are settled by `settle`.
    let mut by_node: Vec<Vec<usize>> = vec![Vec::new(); p.nodes.len()];
    let current: Vec<usize> = p.current_positions().collect();
    for at in current {
        if let Some(node) = p.node_index(p.execution(at).node_id.as_str()) {
            by_node[node].push(at);
        }
    }
    let request = p.requested();
    let mut running = false;
    let nodes = p.nodes.clone();
    for (node_at, node) in nodes.into_iter().enumerate() {
        let id = node.id();
        if held.contains(&id) {
            running = true;
            continue;
        }
        let mut execs = std::mem::take(&mut by_node[node_at]);
        execs.sort_by(|&a, &b| {
            let (a, b) = (p.execution(a), p.execution(b));
            a.create_time
                .cmp(&b.create_time)
                .then_with(|| a.id.cmp(&b.id))
        });
        let live: Vec<(ExecutionId, bool)> = execs
            .iter()
            .map(|&at| p.execution(at))
            .filter(|e| !e.is_terminal())
            .map(|e| {
                let stopping = e.desired_state.state_type == DesiredStateType::Stopped;
                (e.id.clone(), stopping)
            })
            .collect();
        if let Some(((keep, stopping), extra)) = live.split_first() {
            running = true;
            for (e, _) in extra {
                p.stop(e, "more executions than needed on this node");
            }
            if !stopping {
                let free = p.free(&id);
                if let Err(r) = feasibility::check(node, p.job, &request, &free, Purpose::Keep) {
                    p.stop(keep, no_longer_matches(&r));
                }
            }
            continue;
        }
        if let Err(r) = feasibility::check(node, p.job, &request, &p.free(&id), Purpose::Place) {
            // Capacity frees up without any event this job hears about, so look again later;
            // a node that reconnects or changes labels triggers a new evaluation by itself.
            if r.kind == Kind::Busy {
                p.retry_at(p.now + p.config.queue_backoff);
            }
            p.reject(&r);
            continue;
        }
        let last = execs
            .last()
            .map(|&at| p.execution(at))
            .map(|e| (e.id.clone(), e.modify_time.max(e.create_time)));
        if let Some((last, ended)) = &last {
            let restart_at = ended.saturating_add(p.config.queue_backoff);
            if p.now < restart_at {
                p.retry_at(restart_at);
                let why = format!("restarting after the last execution {last} ended");
                p.reject(&Rejection::new(id, Kind::Busy, why));
                running = true;
                continue;
            }
        }
        p.place(id, 0, last.map(|(id, _)| id));
        running = true;
    }
    if running {
        p.set_state(JobStateType::Running, "job running");
    } else {
        p.set_state(JobStateType::Running, "waiting for matching nodes");
    }
}

fn no_longer_matches(r: &Rejection) -> String {
    if r.kind == Kind::Constraint {
        format!("node no longer matches the job's constraints: {}", r.reason)
    } else {
        format!("node no longer matches the job: {}", r.reason)
    }
}
