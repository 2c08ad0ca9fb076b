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

use std::collections::BTreeMap;

use shoal_types::{DesiredStateType, Execution, ExecutionId, JobStateType, NodeId};

use crate::feasibility::{self, Kind, Purpose, Rejection};
use crate::planner::Planner;

pub(crate) fn reconcile(p: &mut Planner) {
    let mut by_node: BTreeMap<NodeId, Vec<Execution>> = BTreeMap::new();
    for e in p.current() {
        by_node
            .entry(e.node_id.clone())
            .or_default()
            .push(e.clone());
    }
    let request = p.requested();
    let mut running = false;
    let nodes = p.nodes.clone();
    for node in nodes {
        let id = node.id();
        let mut execs = by_node.remove(&id).unwrap_or_default();
        execs.sort_by(|a, b| {
            a.create_time
                .cmp(&b.create_time)
                .then_with(|| a.id.cmp(&b.id))
        });
        let live: Vec<&Execution> = execs.iter().filter(|e| !e.is_terminal()).collect();
        if let Some((keep, extra)) = live.split_first() {
            running = true;
            for e in extra {
                p.stop(&e.id, "more executions than needed on this node");
            }
            if keep.desired_state.state_type != DesiredStateType::Stopped {
                let free = p.free(&id);
                if let Err(r) = feasibility::check(node, p.job, &request, &free, Purpose::Keep) {
                    p.stop(&keep.id, no_longer_matches(&r));
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
        let last = execs.last();
        if let Some(last) = last {
            let ended = last.modify_time.max(last.create_time);
            let restart_at = ended.saturating_add(p.config.queue_backoff);
            if p.now < restart_at {
                p.retry_at(restart_at);
                let why = format!("restarting after the last execution {} ended", last.id);
                p.reject(&Rejection::new(id, Kind::Busy, why));
                running = true;
                continue;
            }
        }
        let previous: Option<ExecutionId> = last.map(|e| e.id.clone());
        p.place(id, 0, previous);
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
