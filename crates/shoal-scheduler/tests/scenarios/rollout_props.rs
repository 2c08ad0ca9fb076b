//! RO7: properties of the rollout planner, driven in a loop against simulated nodes.
//!
//! Each case is a fleet of up to 500 nodes with a fate drawn for every node (succeeds, fails,
//! is unreachable before or after dispatch, or is rejected) and a run time. The simulation does
//! what a faithful orchestrator would: starts what the planner says, promotes when asked, waits
//! out pauses, and settles the earliest running node whenever the planner waits.

use proptest::prelude::*;
use shoal_scheduler::rollout::{
    Decision, NodeProgress, Resolved, RolloutInput, RolloutNode, failures, plan, summarize,
};
use shoal_types::NodeId;
use shoal_types::rollout::{Amount, Rollout, RolloutMode, UnreachablePolicy};
use shoal_types::time::GoDuration;

const S: i64 = 1_000_000_000;

/// How a node's part in the rollout ends once started.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Fate {
    Succeed,
    Fail,
    /// Lost after it was started.
    Vanish,
    /// Offline before dispatch: known unreachable from the start.
    Offline,
    Reject,
}

impl Fate {
    fn progress(self) -> NodeProgress {
        match self {
            Fate::Succeed => NodeProgress::Succeeded,
            Fate::Fail => NodeProgress::Failed,
            Fate::Vanish | Fate::Offline => NodeProgress::Unreachable,
            Fate::Reject => NodeProgress::Rejected,
        }
    }
}

fn fate(failures: bool) -> BoxedStrategy<Fate> {
    if failures {
        prop_oneof![
            80 => Just(Fate::Succeed),
            6 => Just(Fate::Fail),
            5 => Just(Fate::Vanish),
            5 => Just(Fate::Offline),
            4 => Just(Fate::Reject),
        ]
        .boxed()
    } else {
        Just(Fate::Succeed).boxed()
    }
}

fn amount(max_count: u32, min_percent: u8) -> impl Strategy<Value = Amount> {
    prop_oneof![
        (0..=max_count).prop_map(Amount::Count),
        (min_percent..=100u8).prop_map(Amount::Percent),
    ]
}

fn rollout() -> impl Strategy<Value = Rollout> {
    (
        amount(60, 1).prop_map(|a| if a.is_zero() { Amount::Count(1) } else { a }),
        any::<bool>(),
        prop_oneof![3 => Just(Amount::Count(0)), 1 => amount(5, 1)],
        any::<bool>(),
        prop_oneof![Just(0i64), 1i64..120],
        amount(30, 0),
        any::<bool>(),
    )
        .prop_map(
            |(batch, window, canary, auto_promote, pause, max_failures, count_unreachable)| {
                let mode = if window {
                    RolloutMode::Window
                } else {
                    RolloutMode::Waves
                };
                Rollout {
                    batch,
                    mode,
                    canary,
                    auto_promote,
                    pause: if window {
                        GoDuration::default()
                    } else {
                        GoDuration::from_secs(pause)
                    },
                    max_failures,
                    unreachable: if count_unreachable {
                        UnreachablePolicy::CountAsFailure
                    } else {
                        UnreachablePolicy::Skip
                    },
                    ..Rollout::default()
                }
            },
        )
}

/// A fleet: each node's fate and run time in seconds.
fn fleet(failures: bool) -> impl Strategy<Value = Vec<(Fate, i64)>> {
    (1usize..=500).prop_flat_map(move |n| prop::collection::vec((fate(failures), 0i64..100), n..=n))
}

/// What one run of the simulation saw.
struct Run {
    nodes: Vec<RolloutNode>,
    stopped: bool,
    /// Sizes of the `Start` decisions, in order.
    starts: Vec<usize>,
}

/// Drives the planner to the end, checking the step invariants on the way.
fn simulate(r: &Rollout, fleet: &[(Fate, i64)]) -> Result<Run, TestCaseError> {
    let resolved = Resolved::new(r, fleet.len());
    let mut nodes: Vec<RolloutNode> = fleet
        .iter()
        .enumerate()
        .map(|(i, (fate, _))| RolloutNode {
            node_id: NodeId::new(format!("n-{i:03}")),
            progress: if *fate == Fate::Offline {
                NodeProgress::Unreachable
            } else {
                NodeProgress::NotStarted
            },
            since: 0,
            message: String::new(),
        })
        .collect();
    let mut ends: Vec<Option<i64>> = vec![None; fleet.len()];
    let (mut now, mut promoted, mut stopped) = (0i64, false, false);
    let mut starts = Vec::new();
    let mut ended = false;
    // Every step starts, settles, promotes or pauses, so this bound is never reached by a
    // planner that makes progress.
    for _ in 0..4 * fleet.len() + 10 {
        let running = |nodes: &[RolloutNode]| {
            nodes
                .iter()
                .filter(|n| n.progress == NodeProgress::Running)
                .count()
        };
        let decision = plan(RolloutInput {
            rollout: r,
            nodes: &nodes,
            promoted,
            now,
        });
        let failed = failures(&nodes, r.unreachable);
        prop_assert_eq!(
            matches!(decision, Decision::Stopped { .. }),
            failed > resolved.max_failures,
            "stopped exactly when {} failures exceed {}: {:?}",
            failed,
            resolved.max_failures,
            decision
        );
        match decision {
            Decision::Start(ids) => {
                prop_assert!(!stopped, "a node started after the rollout stopped");
                prop_assert!(!ids.is_empty());
                if r.mode == RolloutMode::Waves {
                    prop_assert_eq!(running(&nodes), 0, "a wave started before the last settled");
                }
                for id in &ids {
                    let i = nodes.iter().position(|n| &n.node_id == id).unwrap();
                    prop_assert_eq!(nodes[i].progress, NodeProgress::NotStarted, "{} twice", id);
                    nodes[i].progress = NodeProgress::Running;
                    nodes[i].since = now;
                    let (fate, secs) = fleet[i];
                    ends[i] = Some(now + if fate == Fate::Reject { 0 } else { secs * S });
                }
                prop_assert!(
                    running(&nodes) <= resolved.batch,
                    "{} running, batch {}",
                    running(&nodes),
                    resolved.batch
                );
                starts.push(ids.len());
            }
            Decision::AwaitPromotion => {
                prop_assert!(!promoted && resolved.canary > 0);
                promoted = true;
            }
            Decision::Pause { until } => {
                prop_assert!(until > now);
                prop_assert_eq!(running(&nodes), 0);
                now = until;
            }
            Decision::Done => {
                prop_assert!(nodes.iter().all(|n| n.progress.is_settled()));
                ended = true;
                break;
            }
            Decision::Stopped { reason } => {
                prop_assert_eq!(
                    reason,
                    format!(
                        "rollout stopped: {failed} {} > {}",
                        if failed == 1 { "failure" } else { "failures" },
                        resolved.max_failures
                    )
                );
                stopped = true;
                if running(&nodes) == 0 {
                    ended = true;
                    break;
                }
                settle_next(&mut nodes, &mut ends, fleet, &mut now);
            }
            Decision::Wait => {
                prop_assert!(running(&nodes) > 0, "waits with nothing running");
                settle_next(&mut nodes, &mut ends, fleet, &mut now);
            }
        }
    }
    prop_assert!(ended, "the planner made no progress");
    prop_assert!(
        nodes
            .iter()
            .all(|n| n.progress.is_settled() || n.progress == NodeProgress::NotStarted),
        "the rollout ended with nodes running"
    );
    Ok(Run {
        nodes,
        stopped,
        starts,
    })
}

/// Settles every running node that ends at the earliest end time, and moves the clock there.
fn settle_next(
    nodes: &mut [RolloutNode],
    ends: &mut [Option<i64>],
    fleet: &[(Fate, i64)],
    now: &mut i64,
) {
    let Some(at) = ends.iter().flatten().copied().min() else {
        return;
    };
    *now = (*now).max(at);
    for i in 0..nodes.len() {
        if ends[i] == Some(at) {
            nodes[i].progress = fleet[i].0.progress();
            nodes[i].since = *now;
            ends[i] = None;
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    /// RO7: never more than the batch running, a stop exactly when failures exceed the limit
    /// and nothing started after it, and every node in exactly one final bucket.
    #[test]
    fn rollouts_keep_their_limits_and_account_for_every_node(
        r in rollout(),
        fleet in fleet(true),
    ) {
        let run = simulate(&r, &fleet)?;
        let summary = summarize(&run.nodes);
        prop_assert_eq!(summary.total(), fleet.len());
        prop_assert!(summary.running.is_empty());
        let limit = Resolved::new(&r, fleet.len()).max_failures;
        let failed = failures(&run.nodes, r.unreachable);
        prop_assert_eq!(run.stopped, failed > limit);
        if !run.stopped {
            prop_assert!(summary.not_started.is_empty(), "{}", summary.message());
        }
        for (node, (fate, _)) in run.nodes.iter().zip(&fleet) {
            prop_assert!(
                node.progress == fate.progress() || node.progress == NodeProgress::NotStarted,
                "{} ended {:?}, fated {:?}", node.node_id, node.progress, fate
            );
        }
    }

    /// Waves mode without failures gives exactly ceil(canary/batch) + ceil(rest/batch) waves,
    /// ceil(N/batch) without a canary, each started whole.
    #[test]
    fn waves_mode_without_failures_gives_ceil_n_over_batch_waves(
        r in rollout().prop_map(|r| Rollout { mode: RolloutMode::Waves, ..r }),
        fleet in fleet(false),
    ) {
        let resolved = Resolved::new(&r, fleet.len());
        let run = simulate(&r, &fleet)?;
        prop_assert!(!run.stopped);
        prop_assert_eq!(run.starts.len(), resolved.waves());
        if resolved.canary == 0 {
            prop_assert_eq!(run.starts.len(), fleet.len().div_ceil(resolved.batch));
        }
        prop_assert_eq!(summarize(&run.nodes).succeeded.len(), fleet.len());
    }
}

/// RO1's shape: 20 nodes, `Batch: 25%`, 4 waves of 5.
#[test]
fn twenty_nodes_at_25_percent_roll_in_four_waves_of_five() {
    let r = Rollout {
        batch: Amount::Percent(25),
        ..Rollout::default()
    };
    let run = simulate(&r, &[(Fate::Succeed, 3); 20]).unwrap();
    assert_eq!(run.starts, [5, 5, 5, 5]);
}

/// RO2's shape: 20 nodes, 3 of them fail, `MaxFailures: 2`; the wave holding the 3rd failure
/// finishes and later nodes never start.
#[test]
fn the_third_failure_over_a_limit_of_two_stops_the_rollout_after_its_wave() {
    let r = Rollout {
        batch: Amount::Percent(25),
        max_failures: Amount::Count(2),
        ..Rollout::default()
    };
    let mut fleet = [(Fate::Succeed, 3); 20];
    for i in [2, 6, 11] {
        fleet[i].0 = Fate::Fail;
    }
    let run = simulate(&r, &fleet).unwrap();
    assert!(run.stopped);
    assert_eq!(run.starts, [5, 5, 5]);
    let s = summarize(&run.nodes);
    assert_eq!(
        (s.succeeded.len(), s.failed.len(), s.not_started.len()),
        (12, 3, 5)
    );
}
