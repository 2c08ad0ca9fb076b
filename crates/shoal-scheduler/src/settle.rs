//! Steps every job type shares, run before its reconciler: settling work on lost nodes,
//! stopping everything of a finished job, retiring executions of older job versions.

use std::collections::BTreeSet;

use shoal_types::time::{NODE_LOST_GRACE_META, UnixNanos, go_duration, parse_duration};
use shoal_types::{ConnectionStatus, ExecutionId, JobStateType, JobType, NodeId};

use crate::ops::UNREACHABLE_PREFIX;
use crate::planner::Planner;

/// Fails live executions whose node is lost, so that their work can be placed elsewhere.
///
/// A node is lost when the orchestrator no longer knows it, or when it has been disconnected
/// for at least `node_lost_grace`. Before that, its executions are left alone: the node keeps
/// working while the link is down and reports its results when it returns. The failure is
/// retryable (the task did nothing wrong), except for ops jobs, which never retry and count the
/// node as unreachable instead.
pub(crate) fn settle_lost_nodes(p: &mut Planner) {
    let lost: Vec<(ExecutionId, String)> = p
        .executions()
        .filter(|e| !e.is_terminal())
        .filter_map(|e| lost_reason(p, &e.node_id).map(|why| (e.id.clone(), why)))
        .collect();
    let ops = p.job.job_type == JobType::Ops;
    for (id, why) in lost {
        if ops {
            p.settle_failed(&id, format!("{UNREACHABLE_PREFIX} {why}"), false);
        } else {
            p.settle_failed(&id, why, true);
        }
    }
}

/// Fails the live batch and service executions on drained nodes (retryable, so the work is
/// placed elsewhere). Daemon work belongs on every matching node and ops work runs once per
/// node, so both stay.
pub(crate) fn settle_drained_nodes(p: &mut Planner) {
    if !matches!(p.job.job_type, JobType::Batch | JobType::Service) {
        return;
    }
    let drained: Vec<(ExecutionId, String)> = p
        .executions()
        .filter(|e| !e.is_terminal())
        .filter(|e| p.node(&e.node_id).is_some_and(|n| n.state.drained))
        .map(|e| {
            let why = format!(
                "node {} drained by an operator; the work is placed elsewhere",
                e.node_id
            );
            (e.id.clone(), why)
        })
        .collect();
    for (id, why) in drained {
        p.settle_failed(&id, why, true);
    }
}

/// Why a node counts as lost, or `None` while it is connected or within its grace period.
pub(crate) fn lost_reason(p: &Planner, node_id: &NodeId) -> Option<String> {
    match p.node(node_id) {
        None => Some(format!(
            "node {node_id} lost: no longer registered with the orchestrator"
        )),
        Some(node) if node.state.connection == ConnectionStatus::Disconnected => {
            let away = p.now - node.last_seen;
            let grace = node_lost_grace(p)?;
            (away >= grace).then(|| {
                format!(
                    "node {node_id} lost: disconnected for {} (grace {})",
                    go_duration(away),
                    go_duration(grace)
                )
            })
        }
        Some(_) => None,
    }
}

/// How long this job's work waits for a disconnected node: the job's
/// `Meta["shoal.io/node-lost-grace"]` when set (`None` for `never`), else the orchestrator's
/// default. An unparsable value (refused at submit) falls back to the default.
pub(crate) fn node_lost_grace(p: &Planner) -> Option<UnixNanos> {
    match p.job.meta.get(NODE_LOST_GRACE_META).map(String::as_str) {
        Some("never") => None,
        Some(v) => Some(parse_duration(v).unwrap_or(p.config.node_lost_grace)),
        None => Some(p.config.node_lost_grace),
    }
}

/// Asks to be evaluated again when a disconnected node's grace runs out, so its work is
/// re-placed on time whatever the job's grace.
pub(crate) fn wake_at_grace_end(p: &mut Planner) {
    let Some(grace) = node_lost_grace(p) else {
        return;
    };
    let due = p
        .executions()
        .filter(|e| !e.is_terminal())
        .filter_map(|e| p.node(&e.node_id))
        .filter(|n| n.state.connection == ConnectionStatus::Disconnected)
        .map(|n| n.last_seen + grace + 1)
        .filter(|&at| at > p.now)
        .min();
    if let Some(at) = due {
        p.retry_at(at);
    }
}

/// A finished job (completed, failed or stopped by a user) keeps nothing running.
pub(crate) fn stop_everything(p: &mut Planner) {
    let message = match p.job.state.state_type {
        JobStateType::Completed => "job completed",
        JobStateType::Failed => "job failed",
        _ => "job stopped",
    };
    p.stop_all_live(message);
}

/// Executions of an older job version are replaced by the current one and do not count;
/// those on `held` nodes stay until a rollout reaches their node.
pub(crate) fn stop_old_versions(p: &mut Planner, held: &BTreeSet<NodeId>) {
    let version = p.job.version;
    let old: Vec<ExecutionId> = p
        .executions()
        .filter(|e| e.job_version < version && !e.is_terminal())
        .filter(|e| !held.contains(&e.node_id))
        .map(|e| e.id.clone())
        .collect();
    for id in old {
        p.stop(&id, format!("replaced by job version {version}"));
    }
}
