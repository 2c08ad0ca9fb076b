//! Placement of pieces of work (a batch partition, a service replica) on the best feasible
//! node, and what to do when a piece cannot be placed: fail the job or queue it, with reasons.

use std::collections::{BTreeMap, BTreeSet};

use shoal_types::{ExecutionId, JobStateType, NodeId};

use crate::NodeView;
use crate::feasibility::{self, Kind, Purpose, Rejection};
use crate::planner::Planner;
use crate::rank::{self, Candidate};
use crate::settle::go_duration;

const SECOND: i64 = 1_000_000_000;

/// One execution to place.
#[derive(Debug, Clone, Default)]
pub(crate) struct Work {
    pub partition: u32,
    /// The execution this one replaces.
    pub previous: Option<ExecutionId>,
    /// Nodes where this partition failed before: used only when no other node is feasible.
    pub avoid: BTreeSet<NodeId>,
    /// Nodes that must not get it, with the reason (they refused it at admission).
    pub exclude: BTreeMap<NodeId, String>,
}

impl Work {
    pub fn fresh(partition: u32) -> Self {
        Work {
            partition,
            ..Default::default()
        }
    }
}

/// What happened to a batch of work.
#[derive(Debug, Default)]
pub(crate) struct Outcome {
    pub placed: usize,
    pub unplaced: usize,
    /// Nodes that could have taken at least one piece.
    pub suitable: BTreeSet<NodeId>,
    /// Every node's reason, for the first piece that could not be placed.
    pub reasons: Vec<Rejection>,
}

/// Places each piece, in order, on the best node for it; later pieces see the capacity and
/// spread taken by earlier ones.
pub(crate) fn place_all(p: &mut Planner, work: Vec<Work>) -> Outcome {
    let mut outcome = Outcome::default();
    for w in work {
        let (feasible, rejections) = candidates(p, &w);
        for r in &rejections {
            p.reject(r);
        }
        let request = p.requested();
        let ranked: Vec<Candidate> = feasible
            .iter()
            .map(|node| Candidate {
                node_id: node.id(),
                max: &node.state.info.compute_node_info.max_capacity,
                free: p.free(&node.id()),
                load: p.load(&node.id()),
            })
            .collect();
        match rank::best(&ranked, &request) {
            Some(node) => {
                outcome.placed += 1;
                outcome.suitable.extend(feasible.iter().map(|n| n.id()));
                p.place(node, w.partition, w.previous.clone());
            }
            None => {
                if outcome.unplaced == 0 {
                    outcome.reasons = rejections;
                }
                outcome.unplaced += 1;
            }
        }
    }
    outcome
}

/// The nodes that may take `work`, and why the others may not.
fn candidates<'a>(p: &Planner<'a>, work: &Work) -> (Vec<&'a NodeView>, Vec<Rejection>) {
    let request = p.requested();
    let mut feasible = Vec::new();
    let mut rejections = Vec::new();
    for &node in &p.nodes {
        let id = node.id();
        // The node's own reasons come first: they say more than its history with this job.
        if let Err(r) = feasibility::check(node, p.job, &request, &p.free(&id), Purpose::Place) {
            rejections.push(r);
        } else if let Some(why) = work.exclude.get(&id) {
            rejections.push(Rejection::new(id, Kind::Excluded, why.clone()));
        } else {
            feasible.push(node);
        }
    }
    // A node where this partition failed is a last resort, not a ban: the failure was
    // retryable, and a single-node cluster must still be able to retry.
    let (fresh, tried): (Vec<&NodeView>, Vec<&NodeView>) = feasible
        .into_iter()
        .partition(|n| !work.avoid.contains(&n.id()));
    if fresh.is_empty() {
        return (tried, rejections);
    }
    for node in tried {
        let why = format!("partition {} failed on this node before", work.partition);
        rejections.push(Rejection::new(node.id(), Kind::Excluded, why));
    }
    (fresh, rejections)
}

/// What waiting is allowed when some work could not be placed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum WhenStuck {
    /// A job that must finish (batch): if no node can ever take the work, fail even when
    /// other partitions are running, since the job could never complete.
    FailIfImpossible,
    /// A job that runs until stopped (service): once running, keep the replicas it has and
    /// wait for a node, rather than kill the whole service.
    KeepRunning,
}

/// Decides between failing and waiting, given the outcome of [`place_all`].
///
/// `active` says whether the job has other live work (including placements in this plan).
/// A job with nothing running is `Queued` while it waits; a job that no node can ever run fails
/// at once unless it has a `QueueTimeout` (then it waits for nodes to join or change until the
/// timeout). Waiting only for transient reasons has no limit without a `QueueTimeout`.
pub(crate) fn handle_unplaced(p: &mut Planner, outcome: &Outcome, active: bool, when: WhenStuck) {
    if outcome.unplaced == 0 {
        return;
    }
    let queue_timeout = p.job.tasks.first().map_or(0, |t| t.timeouts.queue_timeout);
    let never = outcome.reasons.iter().all(|r| !r.transient());
    let requested = outcome.placed + outcome.unplaced;
    let impossible = || {
        not_enough_nodes(
            requested,
            p.nodes.len(),
            outcome.suitable.len(),
            &outcome.reasons,
        )
    };
    if never && queue_timeout == 0 && (!active || when == WhenStuck::FailIfImpossible) {
        let message = impossible();
        p.fail(message);
        return;
    }
    let mut next = p.now + p.config.queue_backoff;
    if !active {
        let deadline = p
            .job
            .create_time
            .saturating_add((queue_timeout as i64).saturating_mul(SECOND));
        if queue_timeout > 0 && p.now >= deadline {
            let message = format!(
                "gave up after queueing for {}: {}",
                go_duration(p.now - p.job.create_time),
                impossible()
            );
            p.fail(message);
            return;
        }
        if queue_timeout > 0 {
            next = next.min(deadline);
        }
        let headline = wait_message(&outcome.reasons);
        let explained = format!("{headline}{}", bullets(&outcome.reasons));
        p.set_state_explained(JobStateType::Queued, headline, Some(explained));
    }
    p.retry_at(next);
}

/// Bacalhau's message for work no node can take, one line per node.
pub(crate) fn not_enough_nodes(
    requested: usize,
    available: usize,
    suitable: usize,
    reasons: &[Rejection],
) -> String {
    format!(
        "not enough nodes to run job. requested: {requested}, available: {available}, suitable: {suitable}.{}",
        bullets(reasons)
    )
}

fn bullets(reasons: &[Rejection]) -> String {
    reasons
        .iter()
        .map(|r| format!("\n• node {}: {}", r.node_id, r.reason))
        .collect()
}

/// What a queued job waits for, in one line: `waiting for capacity: 2 nodes busy (job needs
/// 2 GiB memory, 1.1 GiB free)`.
pub(crate) fn wait_message(reasons: &[Rejection]) -> String {
    let busy: Vec<&Rejection> = reasons.iter().filter(|r| r.kind == Kind::Busy).collect();
    let away = reasons
        .iter()
        .filter(|r| r.kind == Kind::Disconnected)
        .count();
    let mut parts = Vec::new();
    if let Some(first) = busy.first() {
        parts.push(format!("{} busy ({})", nodes(busy.len()), first.reason));
    }
    if away > 0 {
        parts.push(format!("{} disconnected", nodes(away)));
    }
    match (busy.is_empty(), parts.is_empty()) {
        (false, _) => format!("waiting for capacity: {}", parts.join(", ")),
        (true, false) => format!("waiting for nodes: {}", parts.join(", ")),
        (true, true) if reasons.is_empty() => "waiting for nodes: none registered".to_string(),
        (true, true) => {
            format!(
                "waiting for a node that can run the job: none of {} can",
                nodes(reasons.len())
            )
        }
    }
}

fn nodes(n: usize) -> String {
    if n == 1 {
        "1 node".to_string()
    } else {
        format!("{n} nodes")
    }
}
