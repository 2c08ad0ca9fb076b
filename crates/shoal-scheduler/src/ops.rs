//! Ops jobs: once on every node that matches at submission, then an account per node.
//!
//! The first evaluation creates one execution on every feasible node; every other node gets a
//! rejection and is *not matching*. Nothing is added or retried later. When every execution is
//! terminal, each targeted node is in exactly one bucket:
//!
//! ```text
//!   succeeded    Completed, exit code 0
//!   failed       Completed, exit code ≠ 0
//!   errored      Failed, Cancelled or refused (the task could not run to completion)
//!   unreachable  the node did not answer before the deadline, or was lost
//! ```
//!
//! The deadline is the job's `TotalTimeout` (its `ExecutionTimeout` when there is none),
//! counted from submission. At the deadline, work on disconnected nodes is settled as
//! unreachable and work on connected nodes is cancelled by its node (and so lands in errored).

use shoal_types::time::go_duration;
use shoal_types::{
    ComputeStateType, ConnectionStatus, Execution, ExecutionId, JobStateType, NodeId,
};

use crate::feasibility::{self, Purpose, Rejection};
use crate::placement;
use crate::planner::Planner;

/// Compute-state message prefix that marks an execution settled as unreachable. Executions
/// whose compute-state details carry `Unreachable` = `true` count as unreachable too.
pub const UNREACHABLE_PREFIX: &str = "unreachable:";

const SECOND: i64 = 1_000_000_000;

/// The per-node account of an ops job's executions (see [`ops_buckets`]).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OpsSummary {
    /// Completed with exit code 0.
    pub succeeded: Vec<NodeId>,
    /// Completed with a non-zero exit code.
    pub failed: Vec<NodeId>,
    /// Failed, cancelled or refused by the node: the task did not run to completion.
    pub errored: Vec<NodeId>,
    /// Did not answer before the deadline, or the node was lost.
    pub unreachable: Vec<NodeId>,
    /// Still running (not terminal yet).
    pub in_progress: Vec<NodeId>,
}

impl OpsSummary {
    /// Whether every execution finished and succeeded (the CLI exits 0 only then).
    pub fn all_succeeded(&self) -> bool {
        self.failed.is_empty()
            && self.errored.is_empty()
            && self.unreachable.is_empty()
            && self.in_progress.is_empty()
    }

    /// One line: `ops job finished: 3 succeeded, 1 failed (exit≠0), 1 errored, 1 unreachable`.
    pub fn message(&self) -> String {
        format!(
            "ops job finished: {} succeeded, {} failed (exit≠0), {} errored, {} unreachable",
            self.succeeded.len(),
            self.failed.len(),
            self.errored.len(),
            self.unreachable.len()
        )
    }
}

/// Sorts an ops job's executions into buckets by node, one bucket per execution.
///
/// Pass the executions of one job version. Nodes that were not matching have no execution;
/// they are in the plan's rejections and the job's history, not here.
pub fn ops_buckets<'e>(executions: impl IntoIterator<Item = &'e Execution>) -> OpsSummary {
    let mut summary = OpsSummary::default();
    for e in executions {
        let node = e.node_id.clone();
        let bucket = match e.compute_state.state_type {
            _ if !e.is_terminal() => &mut summary.in_progress,
            ComputeStateType::Completed if e.exit_code().unwrap_or(0) == 0 => {
                &mut summary.succeeded
            }
            ComputeStateType::Completed => &mut summary.failed,
            _ if is_unreachable(e) => &mut summary.unreachable,
            _ => &mut summary.errored,
        };
        bucket.push(node);
    }
    summary
}

/// Whether an ended execution was settled as unreachable (its node did not answer in time or
/// was lost), rather than failed or refused by its node.
pub fn is_unreachable(e: &Execution) -> bool {
    e.compute_state.message.starts_with(UNREACHABLE_PREFIX)
        || e.compute_state
            .details
            .get("Unreachable")
            .is_some_and(|v| v == "true")
}

pub(crate) fn reconcile(p: &mut Planner) {
    let deadline = deadline(p);
    if p.current().next().is_none() {
        place_everywhere(p);
        if let Some(deadline) = deadline.filter(|_| p.placed_any()) {
            p.retry_at(deadline);
        }
        return;
    }
    match deadline {
        Some(deadline) if p.now >= deadline => settle_at_deadline(p, deadline),
        Some(deadline) => p.retry_at(deadline),
        None => {}
    }
    let summary = ops_buckets(p.current());
    if !summary.in_progress.is_empty() {
        p.set_state(JobStateType::Running, "job running");
    } else if summary.all_succeeded() {
        p.set_state(JobStateType::Completed, summary.message());
    } else {
        p.set_state(JobStateType::Failed, summary.message());
    }
}

/// The first evaluation: one execution on every feasible node, reasons for all others.
fn place_everywhere(p: &mut Planner) {
    let request = p.requested();
    let mut rejections: Vec<Rejection> = Vec::new();
    let nodes = p.nodes.clone();
    for node in nodes {
        let id = node.id();
        match feasibility::check(node, p.job, &request, &p.free(&id), Purpose::Place) {
            Ok(()) => p.place(id, 0, None),
            Err(r) => {
                p.reject(&r);
                rejections.push(r);
            }
        }
    }
    if p.placed_any() {
        p.set_state(JobStateType::Running, "job running");
    } else {
        let message = placement::not_enough_nodes(1, p.nodes.len(), 0, &rejections);
        p.fail(message);
    }
}

fn deadline(p: &Planner) -> Option<i64> {
    time_limit(p).map(|limit| p.job.create_time.saturating_add(limit))
}

/// The job's time limit in nanoseconds: its `TotalTimeout`, else its `ExecutionTimeout`;
/// `None` when it has neither.
pub(crate) fn time_limit(p: &Planner) -> Option<i64> {
    let timeouts = p.job.tasks.first()?.timeouts;
    let limit = if timeouts.total_timeout > 0 {
        timeouts.total_timeout
    } else {
        timeouts.execution_timeout
    };
    (limit > 0).then(|| (limit as i64).saturating_mul(SECOND))
}

/// How long a connected node has, after the deadline, to confirm the cancel before its
/// execution is written off as unreachable (a frozen node keeps its link open and never
/// confirms, and must not hold the job open until the disconnect timeout).
pub const CANCEL_GRACE_SECS: i64 = 5;

/// At the deadline, nothing is left waiting: a node that is away is written off as
/// unreachable, and a node that is here is asked to cancel (and reports Cancelled); one that
/// has not confirmed [`CANCEL_GRACE_SECS`] later is written off as unreachable too.
fn settle_at_deadline(p: &mut Planner, deadline: i64) {
    let waited = go_duration(deadline - p.job.create_time);
    settle_late(p, |_| deadline, &waited);
}

/// [`settle_at_deadline`] with a deadline per execution (`deadline_of`), which `waited`
/// names in the messages: a rollout counts each node's from when its turn came. Executions
/// not due yet only ask to be looked at again at their deadline.
pub(crate) fn settle_late(p: &mut Planner, deadline_of: impl Fn(&Execution) -> i64, waited: &str) {
    let live: Vec<(ExecutionId, NodeId, i64)> = p
        .current()
        .filter(|e| !e.is_terminal())
        .map(|e| (e.id.clone(), e.node_id.clone(), deadline_of(e)))
        .collect();
    for (id, node_id, deadline) in live {
        if p.now < deadline {
            p.retry_at(deadline);
            continue;
        }
        let grace_over = p.now >= deadline.saturating_add(CANCEL_GRACE_SECS * SECOND);
        let away = p
            .node(&node_id)
            .is_none_or(|n| n.state.connection == ConnectionStatus::Disconnected);
        if away {
            let message = format!(
                "{UNREACHABLE_PREFIX} node {node_id} did not report within the job's deadline of {waited}"
            );
            p.settle_failed(&id, message, false);
        } else if grace_over {
            let message = format!(
                "{UNREACHABLE_PREFIX} node {node_id} is connected but did not report within the job's deadline of {waited}, nor confirm the cancel {CANCEL_GRACE_SECS}s later"
            );
            p.settle_failed(&id, message, false);
        } else {
            p.stop(&id, format!("deadline of {waited} passed"));
            p.retry_at(deadline.saturating_add(CANCEL_GRACE_SECS * SECOND));
        }
    }
}
