//! Placement of pieces of work (a batch partition, a service replica) on the best feasible
//! node, and what to do when a piece cannot be placed: fail the job or queue it, with reasons.

use std::cmp::Ordering;
use std::collections::{BTreeMap, BTreeSet, BinaryHeap};

use shoal_types::time::go_duration;
use shoal_types::{ExecutionId, JobStateType, NodeId, Resources};

use crate::NodeView;
use crate::feasibility::{self, Kind, Purpose, Rejection};
use crate::planner::Planner;
use crate::rank;

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
    pub suitable: usize,
    /// Every node's reason, for the first piece that could not be placed.
    pub reasons: Vec<Rejection>,
}

/// A node that can take the next piece, ordered by rank: the highest score, then the
/// smallest node id (nodes are sorted by id, so the smallest position).
struct Ranked {
    score: f64,
    at: usize,
    /// The node's placement count when this entry was made; an older entry is stale.
    stamp: u32,
}

impl PartialEq for Ranked {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}
impl Eq for Ranked {}
impl PartialOrd for Ranked {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Ranked {
    fn cmp(&self, other: &Self) -> Ordering {
        self.score
            .total_cmp(&other.score)
            .then_with(|| other.at.cmp(&self.at))
    }
}

/// Places each piece, in order, on the best node for it; later pieces see the capacity and
/// spread taken by earlier ones.
///
/// What holds for every piece alike (membership, connection, engines, constraints, total
/// capacity) is checked once per node; the nodes that pass wait in a heap ordered by rank.
/// Placing a piece changes only the chosen node's score, so each placement costs a heap pop
/// and push instead of a pass over the fleet: 1,000 pieces on 5,000 nodes took 5 million
/// feasibility checks before. A piece with its own exclusions (a retry that avoids the
/// nodes it failed on) takes the full pass, which is rare.
pub(crate) fn place_all(p: &mut Planner, work: Vec<Work>) -> Outcome {
    let mut outcome = Outcome::default();
    if work.is_empty() {
        return outcome;
    }
    let request = p.requested();
    let mut open = Vec::new();
    let mut fixed = Vec::new();
    for (at, &node) in p.nodes.iter().enumerate() {
        match feasibility::check_static(node, p.job, &request) {
            Ok(()) => open.push(at),
            Err(r) => fixed.push(r),
        }
    }
    for r in &fixed {
        p.reject(r);
    }
    let mut stamps = vec![0u32; p.nodes.len()];
    let mut heap: BinaryHeap<Ranked> = open
        .iter()
        .filter_map(|&at| ranked(p, at, 0, &request))
        .collect();
    outcome.suitable = heap.len();
    for w in work {
        let chosen = pop_best(&mut heap, &stamps, p, &w);
        match chosen {
            Some(at) => {
                outcome.placed += 1;
                p.place(p.nodes[at].id(), w.partition, w.previous.clone());
                // The chosen node's score changed; its older heap entry, if any, is stale.
                stamps[at] += 1;
                if let Some(r) = ranked(p, at, stamps[at], &request) {
                    heap.push(r);
                }
            }
            None => {
                if outcome.unplaced == 0 {
                    let (_, rejections) = candidates(p, &w);
                    for r in &rejections {
                        p.reject(r);
                    }
                    outcome.reasons = rejections;
                }
                outcome.unplaced += 1;
            }
        }
    }
    // Nodes that never had room: free capacity only shrinks within a plan, so their reason
    // is the one they had for the first piece.
    for at in open {
        let node = p.nodes[at];
        let id = node.id();
        if !p.has_reason(&id)
            && let Some(r) = feasibility::busy(node, &request, &p.free(&id))
        {
            p.reject(&r);
        }
    }
    outcome
}

/// Takes the best node for `w` off the heap. The work's exclusions are skipped, and a node
/// where its partition failed before is taken only when no other node has room (a last
/// resort, not a ban). Skipped entries go back; stale ones (an older score) are dropped.
fn pop_best(
    heap: &mut BinaryHeap<Ranked>,
    stamps: &[u32],
    p: &mut Planner,
    w: &Work,
) -> Option<usize> {
    let plain = w.avoid.is_empty() && w.exclude.is_empty();
    let (mut skipped, mut fallback, mut best) = (Vec::new(), None, None);
    while let Some(top) = heap.pop() {
        if top.stamp != stamps[top.at] {
            continue;
        }
        if plain {
            best = Some(top);
            break;
        }
        let id = p.nodes[top.at].id();
        if let Some(why) = w.exclude.get(&id) {
            p.reject(&Rejection::new(id, Kind::Excluded, why.clone()));
            skipped.push(top);
        } else if w.avoid.contains(&id) {
            match fallback {
                None => fallback = Some(top),
                Some(_) => skipped.push(top),
            }
        } else {
            best = Some(top);
            break;
        }
    }
    let chosen = match (best, fallback) {
        (Some(best), Some(tried)) => {
            let why = format!("partition {} failed on this node before", w.partition);
            p.reject(&Rejection::new(p.nodes[tried.at].id(), Kind::Excluded, why));
            skipped.push(tried);
            Some(best.at)
        }
        (Some(best), None) => Some(best.at),
        (None, tried) => tried.map(|t| t.at),
    };
    heap.extend(skipped);
    chosen
}

/// The node at `at` ranked for `request`, if it has room for it.
fn ranked(p: &Planner, at: usize, stamp: u32, request: &Resources) -> Option<Ranked> {
    let node = p.nodes[at];
    let id = node.id();
    let free = p.free(&id);
    if request.shortfall(&free).is_some() {
        return None;
    }
    let max = &node.state.info.compute_node_info.max_capacity;
    Some(Ranked {
        score: rank::score_of(max, &free, p.load(&id), request),
        at,
        stamp,
    })
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
    let impossible =
        || not_enough_nodes(requested, p.nodes.len(), outcome.suitable, &outcome.reasons);
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
