//! Rollouts, as a pure function: which nodes of a job's [`Rollout`] start next.
//!
//! `rolling.rs` carries a job's rollout out with it (see `docs/architecture.md`, "Rollouts").
//! The planner looks at the rollout settings, the targeted nodes in rollout order and what is
//! known about each of them now, and answers with one [`Decision`]. It keeps no state and reads
//! no clock: everything it needs is derived again from the nodes on every call, so a restarted
//! orchestrator continues from where the nodes are.
//!
//! ```text
//!  plan(input)
//!    ├─ failures > MaxFailures?            → Stopped   (checked first, so nothing starts after)
//!    ├─ every node settled?                → Done
//!    ├─ first phase with unsettled nodes:
//!    │    ├─ first one after the canaries,
//!    │    │  not promoted?                 → AwaitPromotion
//!    │    ├─ not opened yet, Pause running → Pause { until }     (waves mode)
//!    │    └─ its not-started nodes, up to
//!    │       Batch − running               → Start(nodes), or Wait when there is no room
//! ```
//!
//! A *phase* is a run of nodes that must all settle before the next run starts. In waves mode
//! each wave of `Batch` nodes is a phase (the canaries make up the first waves of their own); in
//! window mode the canaries are one phase and every other node the next, and inside a phase a
//! node starts as soon as another settles (Salt's sliding window). Either way no more than
//! `Batch` nodes are running at any time.
//!
//! A node is *settled* once it succeeded, failed, was unreachable or was rejected by its node:
//! none of those is waited for again. Failures count over the whole rollout (not per batch, the
//! Ansible pitfall); unreachable nodes count only with `Unreachable: count_as_failure`, and
//! rejected nodes (the node's policy refused the work) never count, as the change never ran.

use shoal_types::NodeId;
pub use shoal_types::rollout::{NodeProgress, RolloutNode};
use shoal_types::rollout::{Rollout, RolloutMode, UnreachablePolicy};
use shoal_types::time::UnixNanos;

/// Everything [`plan`] looks at.
#[derive(Debug, Clone, Copy)]
pub struct RolloutInput<'a> {
    /// The job's rollout settings.
    pub rollout: &'a Rollout,
    /// Every targeted node, in rollout order ([`rollout_order`]): canaries first.
    pub nodes: &'a [RolloutNode],
    /// Whether `shoal job promote` was given for this job version.
    pub promoted: bool,
    /// The current time.
    pub now: UnixNanos,
}

/// What to do now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Start these nodes now, in this order. Never empty.
    Start(Vec<NodeId>),
    /// Nothing to start until a running node settles.
    Wait,
    /// The canaries have settled; wait for `shoal job promote` (also given when AutoPromote is
    /// set but not every canary succeeded).
    AwaitPromotion,
    /// Between waves: start nothing before `until`, then ask again.
    Pause {
        /// When the next wave may start (Unix nanos).
        until: UnixNanos,
    },
    /// Every node settled and failures stayed within the limit.
    Done,
    /// Failures exceeded `MaxFailures`: start nothing more. Nodes still running are left to
    /// settle (and to be reverted, under `OnFailure: revert`); the job then fails with
    /// `reason`.
    Stopped {
        /// `rollout stopped: 3 failures > 2`.
        reason: String,
    },
}

/// The rollout settings turned into numbers of nodes for one rollout of `n` nodes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Resolved {
    /// Nodes in the rollout.
    pub nodes: usize,
    /// Most nodes running at once; at least 1.
    pub batch: usize,
    /// Canary nodes at the front of the order; at most `nodes`.
    pub canary: usize,
    /// Failures allowed before the rollout stops.
    pub max_failures: usize,
}

impl Resolved {
    /// Resolves `rollout` for `n` nodes: percentages round up, batch and a canary that was
    /// asked for are at least one node.
    pub fn new(rollout: &Rollout, n: usize) -> Self {
        let canary = if rollout.canary.is_zero() {
            0
        } else {
            rollout.canary.resolve_at_least_one(n).min(n)
        };
        Resolved {
            nodes: n,
            batch: rollout.batch.resolve_at_least_one(n),
            canary,
            max_failures: rollout.max_failures.resolve(n),
        }
    }

    /// The number of waves in waves mode: the canaries in waves of `batch`, then the rest.
    pub fn waves(&self) -> usize {
        self.canary.div_ceil(self.batch) + (self.nodes - self.canary).div_ceil(self.batch)
    }

    /// The phase (a wave, in waves mode) that the node at `position` of the rollout order
    /// belongs to, counted from 1, and how many phases there are.
    pub fn phase_of(&self, mode: RolloutMode, position: usize) -> (usize, usize) {
        let phases = self.phases(mode);
        let at = phases
            .iter()
            .position(|p| p.contains(&position))
            .unwrap_or(phases.len().saturating_sub(1));
        (at + 1, phases.len())
    }

    /// The phases as index ranges into the node order (see the module docs).
    fn phases(&self, mode: RolloutMode) -> Vec<std::ops::Range<usize>> {
        let mut phases = Vec::new();
        for group in [0..self.canary, self.canary..self.nodes] {
            if group.is_empty() {
                continue;
            }
            match mode {
                RolloutMode::Window => phases.push(group),
                RolloutMode::Waves => {
                    let mut start = group.start;
                    while start < group.end {
                        let end = (start + self.batch).min(group.end);
                        phases.push(start..end);
                        start = end;
                    }
                }
            }
        }
        phases
    }
}

/// The deterministic rollout order: the canaries chosen earlier first (a canary stays a canary
/// when the node set changes), then every other targeted node, each part sorted by node id.
/// Canaries that are no longer targeted are dropped. On a first rollout pass no canaries: the
/// first `Canary` nodes by id become the canaries.
pub fn rollout_order(targets: &[NodeId], canaries: &[NodeId]) -> Vec<NodeId> {
    let mut first: Vec<NodeId> = targets
        .iter()
        .filter(|t| canaries.contains(t))
        .cloned()
        .collect();
    let mut rest: Vec<NodeId> = targets
        .iter()
        .filter(|t| !canaries.contains(t))
        .cloned()
        .collect();
    first.sort();
    first.dedup();
    rest.sort();
    rest.dedup();
    first.extend(rest);
    first
}

/// Failures so far, as counted against `MaxFailures`.
pub fn failures(nodes: &[RolloutNode], unreachable: UnreachablePolicy) -> usize {
    nodes
        .iter()
        .filter(|n| match n.progress {
            NodeProgress::Failed => true,
            NodeProgress::Unreachable => unreachable == UnreachablePolicy::CountAsFailure,
            _ => false,
        })
        .count()
}

/// Decides what the rollout does now.
///
/// Pure: the same input always gives the same decision. Guarantees, for input the caller
/// keeps consistent (it starts what it is told to and reports what happens):
/// - no more than `Batch` nodes are running once the started nodes are;
/// - the answer is [`Decision::Stopped`] exactly when failures exceed `MaxFailures`, and since
///   failures only grow, nothing starts after the first stop;
/// - in waves mode a wave starts only when the one before it has settled and `Pause` passed;
/// - only nodes that were not started are ever started, each once.
pub fn plan(input: RolloutInput<'_>) -> Decision {
    let nodes = input.nodes;
    let r = Resolved::new(input.rollout, nodes.len());
    let failed = failures(nodes, input.rollout.unreachable);
    if failed > r.max_failures {
        let noun = if failed == 1 { "failure" } else { "failures" };
        return Decision::Stopped {
            reason: format!("rollout stopped: {failed} {noun} > {}", r.max_failures),
        };
    }
    let phases = r.phases(input.rollout.mode);
    let Some(current) = phases
        .iter()
        .position(|p| nodes[p.clone()].iter().any(|n| !n.progress.is_settled()))
    else {
        return Decision::Done;
    };
    let phase = &nodes[phases[current].clone()];
    let first_after_canaries = r.canary > 0 && phases[current].start == r.canary;
    if first_after_canaries && !input.promoted && !auto_promoted(input, &r) {
        return Decision::AwaitPromotion;
    }
    let opened = phase.iter().any(|n| {
        matches!(
            n.progress,
            NodeProgress::Running | NodeProgress::Succeeded | NodeProgress::Failed
        )
    });
    let pause = input.rollout.pause.nanos();
    if input.rollout.mode == RolloutMode::Waves && current > 0 && pause > 0 && !opened {
        let settled_at = nodes[phases[current - 1].clone()]
            .iter()
            .map(|n| n.since)
            .max()
            .unwrap_or(UnixNanos::MIN);
        let until = settled_at.saturating_add(pause);
        if input.now < until {
            return Decision::Pause { until };
        }
    }
    let running = nodes
        .iter()
        .filter(|n| n.progress == NodeProgress::Running)
        .count();
    let start: Vec<NodeId> = phase
        .iter()
        .filter(|n| n.progress == NodeProgress::NotStarted)
        .take(r.batch.saturating_sub(running))
        .map(|n| n.node_id.clone())
        .collect();
    if start.is_empty() {
        Decision::Wait
    } else {
        Decision::Start(start)
    }
}

/// AutoPromote promotes only on evidence: every canary succeeded.
fn auto_promoted(input: RolloutInput<'_>, r: &Resolved) -> bool {
    input.rollout.auto_promote
        && input.nodes[..r.canary]
            .iter()
            .all(|n| n.progress == NodeProgress::Succeeded)
}

/// Where every node of a rollout stands, one bucket per node.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RolloutSummary {
    /// Succeeded (healthy).
    pub succeeded: Vec<NodeId>,
    /// Failed.
    pub failed: Vec<NodeId>,
    /// Did not answer.
    pub unreachable: Vec<NodeId>,
    /// Refused the work.
    pub rejected: Vec<NodeId>,
    /// Started and not settled yet; empty once the rollout is over.
    pub running: Vec<NodeId>,
    /// Never started (the rollout stopped, or has not reached them yet).
    pub not_started: Vec<NodeId>,
}

impl RolloutSummary {
    /// How many nodes the summary holds (each node is in exactly one bucket).
    pub fn total(&self) -> usize {
        self.succeeded.len()
            + self.failed.len()
            + self.unreachable.len()
            + self.rejected.len()
            + self.running.len()
            + self.not_started.len()
    }

    /// One line, succeeded always and other buckets when not empty, with the nodes named for
    /// the buckets an operator acts on: `8 succeeded, 2 unreachable (n-3, n-7)`.
    pub fn message(&self) -> String {
        let mut parts = vec![format!("{} succeeded", self.succeeded.len())];
        let named = [
            ("failed", &self.failed),
            ("unreachable", &self.unreachable),
            ("rejected", &self.rejected),
        ];
        for (word, ids) in named {
            if !ids.is_empty() {
                parts.push(format!("{} {word} ({})", ids.len(), name_some(ids)));
            }
        }
        for (word, ids) in [
            ("running", &self.running),
            ("not-started", &self.not_started),
        ] {
            if !ids.is_empty() {
                parts.push(format!("{} {word}", ids.len()));
            }
        }
        parts.join(", ")
    }
}

/// Up to five node ids, then how many more.
fn name_some(ids: &[NodeId]) -> String {
    const SHOWN: usize = 5;
    let mut text = ids
        .iter()
        .take(SHOWN)
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(", ");
    if ids.len() > SHOWN {
        text.push_str(&format!(" and {} more", ids.len() - SHOWN));
    }
    text
}

/// Sorts the nodes of a rollout into their buckets, keeping the rollout order inside each.
pub fn summarize(nodes: &[RolloutNode]) -> RolloutSummary {
    let mut s = RolloutSummary::default();
    for n in nodes {
        let bucket = match n.progress {
            NodeProgress::NotStarted => &mut s.not_started,
            NodeProgress::Running => &mut s.running,
            NodeProgress::Succeeded => &mut s.succeeded,
            NodeProgress::Failed => &mut s.failed,
            NodeProgress::Unreachable => &mut s.unreachable,
            NodeProgress::Rejected => &mut s.rejected,
        };
        bucket.push(n.node_id.clone());
    }
    s
}

#[cfg(test)]
mod tests {
    use shoal_types::rollout::{Amount, Rollout, RolloutMode, UnreachablePolicy};
    use shoal_types::time::GoDuration;

    use super::*;
    use NodeProgress::*;

    const S: i64 = 1_000_000_000;

    fn nodes(n: usize) -> Vec<RolloutNode> {
        (0..n)
            .map(|i| RolloutNode {
                node_id: NodeId::new(format!("n-{i:02}")),
                progress: NotStarted,
                since: 0,
                message: String::new(),
            })
            .collect()
    }

    fn plan_at(rollout: &Rollout, nodes: &[RolloutNode], promoted: bool, now: i64) -> Decision {
        plan(RolloutInput {
            rollout,
            nodes,
            promoted,
            now,
        })
    }

    fn ids(range: std::ops::Range<usize>) -> Vec<NodeId> {
        range.map(|i| NodeId::new(format!("n-{i:02}"))).collect()
    }

    fn set(nodes: &mut [RolloutNode], range: std::ops::Range<usize>, p: NodeProgress, at: i64) {
        for n in &mut nodes[range] {
            n.progress = p;
            n.since = at;
        }
    }

    #[test]
    fn waves_start_the_next_batch_only_when_the_last_one_settled() {
        let r = Rollout {
            batch: Amount::Percent(25),
            ..Rollout::default()
        };
        let mut ns = nodes(20);
        assert_eq!(Resolved::new(&r, 20).waves(), 4);
        assert_eq!(plan_at(&r, &ns, false, 0), Decision::Start(ids(0..5)));
        set(&mut ns, 0..5, Running, 0);
        set(&mut ns, 0..4, Succeeded, 1);
        assert_eq!(plan_at(&r, &ns, false, 1), Decision::Wait);
        set(&mut ns, 4..5, Succeeded, 2);
        assert_eq!(plan_at(&r, &ns, false, 2), Decision::Start(ids(5..10)));
        set(&mut ns, 5..20, Succeeded, 3);
        assert_eq!(plan_at(&r, &ns, false, 3), Decision::Done);
    }

    #[test]
    fn a_window_refills_as_soon_as_a_node_settles() {
        let r = Rollout {
            batch: Amount::Count(3),
            mode: RolloutMode::Window,
            ..Rollout::default()
        };
        let mut ns = nodes(6);
        assert_eq!(plan_at(&r, &ns, false, 0), Decision::Start(ids(0..3)));
        set(&mut ns, 0..3, Running, 0);
        set(&mut ns, 1..2, Succeeded, 1);
        assert_eq!(plan_at(&r, &ns, false, 1), Decision::Start(ids(3..4)));
    }

    #[test]
    fn the_rollout_stops_exactly_when_failures_exceed_the_limit() {
        let r = Rollout {
            batch: Amount::Count(5),
            max_failures: Amount::Count(2),
            ..Rollout::default()
        };
        let mut ns = nodes(20);
        set(&mut ns, 0..5, Succeeded, 1);
        set(&mut ns, 5..7, Failed, 2);
        set(&mut ns, 7..10, Succeeded, 2);
        assert_eq!(plan_at(&r, &ns, false, 2), Decision::Start(ids(10..15)));
        set(&mut ns, 10..15, Running, 2);
        set(&mut ns, 10..11, Failed, 3);
        let stopped = Decision::Stopped {
            reason: "rollout stopped: 3 failures > 2".into(),
        };
        assert_eq!(plan_at(&r, &ns, false, 3), stopped);
        set(&mut ns, 11..15, Succeeded, 4);
        assert_eq!(plan_at(&r, &ns, false, 4), stopped);
        let s = summarize(&ns);
        assert_eq!(
            (s.succeeded.len(), s.failed.len(), s.not_started.len()),
            (12, 3, 5)
        );
        assert_eq!(
            s.message(),
            "12 succeeded, 3 failed (n-05, n-06, n-10), 5 not-started"
        );
    }

    #[test]
    fn unreachable_nodes_are_skipped_unless_they_count_as_failures() {
        let mut r = Rollout {
            batch: Amount::Count(10),
            max_failures: Amount::Count(1),
            ..Rollout::default()
        };
        let mut ns = nodes(10);
        set(&mut ns, 3..4, Unreachable, 0);
        set(&mut ns, 7..8, Unreachable, 0);
        let start = plan_at(&r, &ns, false, 0);
        let Decision::Start(started) = start else {
            panic!("{start:?}")
        };
        assert_eq!(started.len(), 8, "unreachable nodes are not started");
        for n in ns.iter_mut().filter(|n| n.progress == NotStarted) {
            n.progress = Succeeded;
        }
        assert_eq!(plan_at(&r, &ns, false, 1), Decision::Done);
        assert_eq!(
            summarize(&ns).message(),
            "8 succeeded, 2 unreachable (n-03, n-07)"
        );
        r.unreachable = UnreachablePolicy::CountAsFailure;
        assert_eq!(
            plan_at(&r, &ns, false, 1),
            Decision::Stopped {
                reason: "rollout stopped: 2 failures > 1".into()
            }
        );
    }

    #[test]
    fn canaries_go_first_and_wait_for_promotion() {
        let r = Rollout {
            batch: Amount::Count(3),
            canary: Amount::Count(1),
            ..Rollout::default()
        };
        let mut ns = nodes(10);
        assert_eq!(Resolved::new(&r, 10).waves(), 4);
        assert_eq!(plan_at(&r, &ns, false, 0), Decision::Start(ids(0..1)));
        set(&mut ns, 0..1, Succeeded, 1);
        assert_eq!(plan_at(&r, &ns, false, 1), Decision::AwaitPromotion);
        assert_eq!(plan_at(&r, &ns, true, 1), Decision::Start(ids(1..4)));
    }

    #[test]
    fn auto_promotion_needs_every_canary_to_succeed() {
        let r = Rollout {
            batch: Amount::Count(2),
            canary: Amount::Count(2),
            auto_promote: true,
            max_failures: Amount::Count(5),
            ..Rollout::default()
        };
        let mut ns = nodes(6);
        set(&mut ns, 0..2, Succeeded, 1);
        assert_eq!(plan_at(&r, &ns, false, 1), Decision::Start(ids(2..4)));
        set(&mut ns, 1..2, Failed, 1);
        assert_eq!(plan_at(&r, &ns, false, 1), Decision::AwaitPromotion);
    }

    #[test]
    fn waves_pause_between_each_other_from_the_last_settle() {
        let r = Rollout {
            batch: Amount::Count(2),
            pause: GoDuration::from_secs(30),
            ..Rollout::default()
        };
        let mut ns = nodes(4);
        assert_eq!(plan_at(&r, &ns, false, 0), Decision::Start(ids(0..2)));
        set(&mut ns, 0..1, Succeeded, 5 * S);
        set(&mut ns, 1..2, Succeeded, 10 * S);
        let until = 40 * S;
        assert_eq!(plan_at(&r, &ns, false, 10 * S), Decision::Pause { until });
        assert_eq!(plan_at(&r, &ns, false, until), Decision::Start(ids(2..4)));
    }

    #[test]
    fn a_stopped_rollout_starts_nothing_even_with_room() {
        let r = Rollout {
            batch: Amount::Count(4),
            mode: RolloutMode::Window,
            ..Rollout::default()
        };
        let mut ns = nodes(8);
        set(&mut ns, 0..4, Running, 0);
        set(&mut ns, 0..1, Failed, 1);
        assert_eq!(
            plan_at(&r, &ns, false, 1),
            Decision::Stopped {
                reason: "rollout stopped: 1 failure > 0".into()
            }
        );
    }

    #[test]
    fn an_empty_rollout_is_done_and_rejected_nodes_do_not_count() {
        assert_eq!(plan_at(&Rollout::default(), &[], false, 0), Decision::Done);
        let mut ns = nodes(2);
        set(&mut ns, 0..2, Rejected, 0);
        assert_eq!(plan_at(&Rollout::default(), &ns, false, 0), Decision::Done);
        assert_eq!(
            summarize(&ns).message(),
            "0 succeeded, 2 rejected (n-00, n-01)"
        );
    }

    #[test]
    fn remembered_canaries_lead_the_order_then_every_node_by_id() {
        let t = |s: &str| NodeId::new(s.to_string());
        let order = rollout_order(
            &[t("n-c"), t("n-a"), t("n-d"), t("n-b")],
            &[t("n-d"), t("n-x")],
        );
        assert_eq!(order, [t("n-d"), t("n-a"), t("n-b"), t("n-c")]);
    }
}
