//! Carrying out a job's `Rollout`: which nodes it targets, where each stands, and what the
//! planner's decision means for the job's executions.
//!
//! ```text
//!  reconcile_ops / reconcile_daemon
//!    ├─ the rollout state of this job version (stored), or a new one:
//!    │    targets = nodes that match the job now, in rollout order      targets()
//!    ├─ refresh: each unsettled node's progress from its executions     refresh()
//!    ├─ drive: ask rollout::plan until it stops saying Start            drive()
//!    │    Start → the node is away?  ops: an execution settled unreachable
//!    │                               daemon: marked unreachable
//!    │           otherwise           place (daemon: stop the old version there first)
//!    └─ the decision in words, history events when it changes, the job's state
//! ```
//!
//! The state is kept with the job (the orchestrator stores [`Plan::rollout`]), so an
//! orchestrator that restarts picks up the current wave. A node's progress is taken from its
//! executions while it runs and kept once it settled: a daemon that passed its health check
//! and crashes later is the daemon's business, not the rollout's.
//!
//! Ops jobs: a node succeeds when its command exits 0. Daemon jobs (a version update): a node
//! succeeds when the new version has been running for `Health.MinHealthy` and fails when it
//! ends, or is not healthy within `Health.Deadline`. Until the rollout reaches a node, the
//! node keeps its earlier version; under `OnFailure: revert` the nodes that got the new
//! version are given the earlier one back. A daemon rollout that stopped updates nothing more:
//! nodes it did not reach keep their version, and nodes that join later wait for a new
//! version rather than get the one that failed.
//!
//! [`Plan::rollout`]: crate::Plan::rollout

use std::collections::BTreeSet;

use shoal_types::rollout::{
    NodeProgress, OnFailure, PHASE_AWAITING_PROMOTION, PHASE_DONE, PHASE_REVERTED, Rollout,
    RolloutNode, RolloutState,
};
use shoal_types::time::{go_duration, rfc3339};
use shoal_types::{
    ComputeStateType, ConnectionStatus, Event, Execution, ExecutionId, JobStateType, NodeId,
};

use crate::feasibility::{self, Purpose, Rejection};
use crate::ops::is_unreachable;
use crate::placement;
use crate::planner::Planner;
use crate::rollout::{Decision, Resolved, RolloutInput, plan, summarize};

/// Starts one node's part of the rollout, or says why the node cannot start (it then settles
/// at once, as unreachable or rejected).
type StartNode = fn(&mut Planner, &NodeId) -> Result<(), (NodeProgress, String)>;

/// Carries out an ops job's rollout: once on every targeted node, a batch at a time.
pub(crate) fn reconcile_ops(p: &mut Planner) {
    let Some(mut state) = state_or_new(p) else {
        return;
    };
    if state.outcome.is_some() {
        return;
    }
    ops_deadlines(p);
    refresh(p, &mut state, ops_progress);
    let decision = drive(p, &mut state, start_ops);
    let finished = explain(p, &mut state, &decision);
    if let Some(outcome) = finished {
        if matches!(decision, Decision::Done) {
            p.set_state(JobStateType::Completed, outcome);
        } else {
            p.set_state(JobStateType::Failed, outcome);
        }
    } else {
        p.set_state(JobStateType::Running, "job running");
    }
    p.set_rollout(state);
}

/// Carries out a daemon job's rollout (a first version or an update), then lets the daemon
/// reconciler look after every node the rollout does not hold.
pub(crate) fn reconcile_daemon(p: &mut Planner, held: BTreeSet<NodeId>) {
    let Some(mut state) = state_or_new(p) else {
        return;
    };
    let mut held = held;
    if state.outcome.is_none() {
        refresh(p, &mut state, daemon_progress);
        let decision = drive(p, &mut state, start_daemon);
        if let Decision::Stopped { .. } = decision
            && state.rollout.on_failure == OnFailure::Revert
            && !state.reverted()
        {
            revert(p, &mut state);
        }
        explain(p, &mut state, &decision);
        held = held_by(p, &state);
        // What this plan started is in hand already; the daemon reconciler does not see it.
        held.extend(p.placed_nodes());
    }
    crate::daemon::reconcile(p, &held);
    p.set_rollout(state);
}

/// A job that ended (stopped by a user, failed) ends its rollout: nodes not reached stay not
/// started, and the state says how it ended.
pub(crate) fn job_ended(p: &mut Planner) {
    let Some(state) = p.rollout else {
        return;
    };
    if state.outcome.is_some() {
        return;
    }
    let mut state = state.clone();
    for n in state.nodes.iter_mut() {
        if n.progress == NodeProgress::Running {
            n.progress = NodeProgress::Failed;
            n.since = p.now;
            n.message = "the job ended while it ran".into();
        }
    }
    let summary = summarize(&state.nodes);
    let outcome = format!(
        "rollout ended with the job ({}): {}",
        p.job.state.message,
        summary.message()
    );
    state.phase = "ended".into();
    state.outcome = Some(outcome);
    p.set_rollout(state);
}

/// The nodes whose daemon work the rollout holds back from the daemon reconciler: every node
/// of a rollout in progress that is not running the new version, and after a rollout that
/// stopped, every node it did not update (and any node that joined since).
pub(crate) fn held_nodes(p: &Planner) -> BTreeSet<NodeId> {
    if p.job.job_type != shoal_types::JobType::Daemon || p.job.rollout.is_none() {
        return BTreeSet::new();
    }
    match p.rollout {
        Some(state) => held_by(p, state),
        // A first plan of this version: every node is held until the rollout reaches it.
        None => p.nodes.iter().map(|n| n.id()).collect(),
    }
}

fn held_by(p: &Planner, state: &RolloutState) -> BTreeSet<NodeId> {
    let stopped = state.ended_early();
    let reverted = state.reverted();
    if state.outcome.is_some() && !stopped {
        return BTreeSet::new();
    }
    let mut held: BTreeSet<NodeId> = state
        .nodes
        .iter()
        .filter(|n| {
            reverted || !matches!(n.progress, NodeProgress::Running | NodeProgress::Succeeded)
        })
        .map(|n| n.node_id.clone())
        .collect();
    if stopped {
        // Nodes outside the rollout get nothing new after a failed one.
        for n in &p.nodes {
            if state.node(n.id().as_str()).is_none() {
                held.insert(n.id());
            }
        }
    }
    held
}

/// The stored state of this version, or a new one targeting the nodes that match the job now.
/// `None` when the job failed because no node matches.
fn state_or_new(p: &mut Planner) -> Option<RolloutState> {
    if let Some(state) = p.rollout {
        return Some(state.clone());
    }
    let rollout = p.job.rollout.clone().unwrap_or_default();
    let targets = targets(p);
    if targets.is_empty() && p.job.job_type == shoal_types::JobType::Ops {
        return None;
    }
    let r = Resolved::new(&rollout, targets.len());
    let text = format!(
        "rollout of version {} to {} node{}: {} in {} wave{} of at most {}{}",
        p.job.version,
        targets.len(),
        plural(targets.len()),
        if r.canary > 0 {
            format!("{} canary first, then the rest", r.canary)
        } else {
            "all".into()
        },
        r.waves(),
        plural(r.waves()),
        r.batch,
        if r.max_failures > 0 {
            format!(", stopping after more than {} failures", r.max_failures)
        } else {
            ", stopping at the first failure".into()
        },
    );
    let nodes = targets
        .into_iter()
        .map(|node_id| RolloutNode {
            node_id,
            progress: NodeProgress::NotStarted,
            since: p.now,
            message: String::new(),
        })
        .collect();
    rollout_event(p, text);
    Some(RolloutState {
        job_version: p.job.version,
        rollout,
        nodes,
        promoted: false,
        phase: String::new(),
        outcome: None,
    })
}

/// The nodes the rollout reaches, in rollout order: every node that matches the job's
/// constraints and engines, connected or not (a node that is away when its turn comes counts
/// as unreachable instead of being left out unseen). An ops job no node matches fails here,
/// with each node's reason.
fn targets(p: &mut Planner) -> Vec<NodeId> {
    let request = p.requested();
    let mut matching = Vec::new();
    let mut rejections: Vec<Rejection> = Vec::new();
    let nodes = p.nodes.clone();
    for node in nodes {
        let id = node.id();
        match feasibility::check(node, p.job, &request, &p.free(&id), Purpose::Keep) {
            Ok(()) => matching.push(id),
            Err(r) => {
                p.reject(&r);
                rejections.push(r);
            }
        }
    }
    if matching.is_empty() && p.job.job_type == shoal_types::JobType::Ops {
        let message = placement::not_enough_nodes(1, p.nodes.len(), 0, &rejections);
        p.fail(message);
    }
    crate::rollout::rollout_order(&matching, &[])
}

/// Takes each unsettled node's progress from its executions of this version.
fn refresh(
    p: &mut Planner,
    state: &mut RolloutState,
    progress: fn(&mut Planner, &Rollout, &Execution) -> (NodeProgress, String),
) {
    for i in 0..state.nodes.len() {
        if state.nodes[i].progress != NodeProgress::Running {
            continue;
        }
        let latest = p
            .current()
            .filter(|e| e.node_id == state.nodes[i].node_id)
            .max_by(|a, b| {
                a.create_time
                    .cmp(&b.create_time)
                    .then_with(|| a.id.cmp(&b.id))
            })
            .cloned();
        let Some(e) = latest else {
            continue;
        };
        let (now_at, message) = progress(p, &state.rollout, &e);
        let n = &mut state.nodes[i];
        if now_at != n.progress {
            n.progress = now_at;
            n.since = p.now;
            n.message = message;
        }
    }
}

fn ops_progress(_: &mut Planner, _: &Rollout, e: &Execution) -> (NodeProgress, String) {
    match e.compute_state.state_type {
        _ if !e.is_terminal() => (NodeProgress::Running, String::new()),
        ComputeStateType::Completed => match e.exit_code().unwrap_or(0) {
            0 => (NodeProgress::Succeeded, "exit code 0".into()),
            code => (NodeProgress::Failed, format!("exit code {code}")),
        },
        ComputeStateType::AskForBidRejected => {
            (NodeProgress::Rejected, e.compute_state.message.clone())
        }
        _ if is_unreachable(e) => (NodeProgress::Unreachable, e.compute_state.message.clone()),
        _ => (NodeProgress::Failed, e.compute_state.message.clone()),
    }
}

fn daemon_progress(p: &mut Planner, rollout: &Rollout, e: &Execution) -> (NodeProgress, String) {
    if e.is_terminal() {
        let (progress, _) = ops_progress(p, rollout, e);
        let progress = match progress {
            NodeProgress::Succeeded => NodeProgress::Failed,
            other => other,
        };
        let why = if e.compute_state.message.is_empty() {
            format!("{} ended ({})", e.id, e.compute_state.state_type.as_str())
        } else {
            format!("{} ended: {}", e.id, e.compute_state.message)
        };
        return (progress, why);
    }
    let health = &rollout.health;
    let deadline_at = e.create_time.saturating_add(health.deadline.nanos());
    if e.compute_state.state_type == ComputeStateType::Running {
        let healthy_at = e.modify_time.saturating_add(health.min_healthy.nanos());
        if p.now >= healthy_at {
            let text = format!("running for {} without exiting", health.min_healthy);
            return (NodeProgress::Succeeded, text);
        }
        p.retry_at(healthy_at.min(deadline_at));
    }
    if p.now >= deadline_at {
        p.stop(&e.id, format!("not healthy within {}", health.deadline));
        let text = format!(
            "not healthy within {} (rollout health deadline)",
            health.deadline
        );
        return (NodeProgress::Failed, text);
    }
    p.retry_at(deadline_at);
    (NodeProgress::Running, String::new())
}

/// Asks the planner until it stops saying `Start`, starting what it says; returns its last
/// decision.
fn drive(p: &mut Planner, state: &mut RolloutState, start: StartNode) -> Decision {
    loop {
        let decision = plan(RolloutInput {
            rollout: &state.rollout,
            nodes: &state.nodes,
            promoted: state.promoted,
            now: p.now,
        });
        let Decision::Start(ids) = decision else {
            return decision;
        };
        let r = Resolved::new(&state.rollout, state.nodes.len());
        let first = state.nodes.iter().position(|n| n.node_id == ids[0]);
        if let Some(at) = first {
            let (wave, waves) = r.phase_of(state.rollout.mode, at);
            let names: Vec<&str> = ids.iter().map(NodeId::as_str).collect();
            rollout_event(
                p,
                format!("wave {wave} of {waves}: starting {}", names.join(", ")),
            );
        }
        for id in ids {
            let Some(n) = state.nodes.iter_mut().find(|n| n.node_id == id) else {
                continue;
            };
            n.since = p.now;
            match start(p, &id) {
                Ok(()) => n.progress = NodeProgress::Running,
                Err((progress, message)) => {
                    n.progress = progress;
                    n.message = message;
                }
            }
        }
    }
}

/// Why a node cannot start now: it is away (or gone), or cordoned.
fn cannot_start(p: &Planner, id: &NodeId) -> Option<(NodeProgress, String)> {
    match p.node(id) {
        None => Some((
            NodeProgress::Unreachable,
            format!("unreachable: node {id} is no longer known when its wave started"),
        )),
        Some(n) if n.state.connection == ConnectionStatus::Disconnected => Some((
            NodeProgress::Unreachable,
            format!("unreachable: node {id} was disconnected when its wave started"),
        )),
        Some(n) if n.state.cordoned => Some((
            NodeProgress::Rejected,
            format!("node {id} is cordoned (uncordon it and submit again to reach it)"),
        )),
        Some(_) => None,
    }
}

fn start_ops(p: &mut Planner, id: &NodeId) -> Result<(), (NodeProgress, String)> {
    if let Some((progress, message)) = cannot_start(p, id) {
        if progress == NodeProgress::Unreachable {
            p.place_unreachable(id.clone(), message.clone());
        }
        return Err((progress, message));
    }
    p.place(id.clone(), 0, None);
    Ok(())
}

fn start_daemon(p: &mut Planner, id: &NodeId) -> Result<(), (NodeProgress, String)> {
    if let Some(why) = cannot_start(p, id) {
        return Err(why);
    }
    let version = p.job.version;
    let old: Vec<ExecutionId> = p
        .executions()
        .filter(|e| &e.node_id == id && !e.is_terminal())
        .map(|e| e.id.clone())
        .collect();
    for e in old {
        p.stop(&e, format!("replaced by job version {version} (rollout)"));
    }
    p.place(id.clone(), 0, None);
    Ok(())
}

/// Puts the earlier version back on every node the rollout updated (`OnFailure: revert`).
fn revert(p: &mut Planner, state: &mut RolloutState) {
    let version = p.job.version;
    let Some(previous) = version.checked_sub(1).filter(|v| *v > 0) else {
        state.phase =
            format!("{PHASE_REVERTED}: nothing to revert to (this is the job's first version)");
        return;
    };
    let mut back = Vec::new();
    for n in state.nodes.iter_mut() {
        let updated = matches!(
            n.progress,
            NodeProgress::Running | NodeProgress::Succeeded | NodeProgress::Failed
        );
        if !updated {
            continue;
        }
        let live: Vec<ExecutionId> = p
            .current()
            .filter(|e| e.node_id == n.node_id && !e.is_terminal())
            .map(|e| e.id.clone())
            .collect();
        for e in live {
            p.stop(&e, format!("rollout of version {version} reverted"));
        }
        if n.progress == NodeProgress::Running {
            n.progress = NodeProgress::Failed;
            n.message = "stopped by the revert before it was healthy".into();
            n.since = p.now;
        }
        if p.node(&n.node_id).is_some() {
            p.place_version(n.node_id.clone(), previous);
            back.push(n.node_id.to_string());
        }
    }
    state.phase = format!(
        "{PHASE_REVERTED}: version {previous} back on {} node{}",
        back.len(),
        plural(back.len())
    );
    let text = format!(
        "rollout of version {version} reverted: version {previous} back on {}",
        if back.is_empty() {
            "no node".to_string()
        } else {
            back.join(", ")
        }
    );
    rollout_event(p, text);
}

/// Puts the decision into words in the state (and the history, when it changed); returns the
/// outcome when the rollout is over.
fn explain(p: &mut Planner, state: &mut RolloutState, decision: &Decision) -> Option<String> {
    let summary = summarize(&state.nodes);
    let running = summary.running.len();
    let (phase, outcome) = match decision {
        Decision::Start(_) | Decision::Wait => {
            let r = Resolved::new(&state.rollout, state.nodes.len());
            let at = state
                .nodes
                .iter()
                .position(|n| n.progress == NodeProgress::Running)
                .unwrap_or(0);
            let (wave, waves) = r.phase_of(state.rollout.mode, at);
            (format!("wave {wave} of {waves}: {running} running"), None)
        }
        Decision::Pause { until } => {
            p.retry_at(*until);
            (format!("pausing until {}", rfc3339(*until)), None)
        }
        Decision::AwaitPromotion => {
            let canaries = Resolved::new(&state.rollout, state.nodes.len()).canary;
            let failed = state.nodes[..canaries]
                .iter()
                .filter(|n| n.progress != NodeProgress::Succeeded)
                .count();
            let text = if failed == 0 {
                format!(
                    "{PHASE_AWAITING_PROMOTION}: {canaries} canar{} succeeded; run `shoal job promote {}` to roll out the rest",
                    if canaries == 1 { "y" } else { "ies" },
                    p.job.name
                )
            } else {
                format!(
                    "{PHASE_AWAITING_PROMOTION}: {failed} of {canaries} canaries did not succeed; `shoal job promote {}` goes on anyway, `shoal job stop` ends it",
                    p.job.name
                )
            };
            (text, None)
        }
        Decision::Done => {
            let text = format!("rollout done: {}", summary.message());
            (PHASE_DONE.to_string(), Some(text))
        }
        Decision::Stopped { reason } if running > 0 => (
            format!(
                "stopping ({reason}): waiting for {running} running node{}",
                plural(running)
            ),
            None,
        ),
        Decision::Stopped { reason } => {
            let text = format!("{reason}: {}", summary.message());
            let phase = if state.reverted() {
                state.phase.clone()
            } else {
                "stopped".to_string()
            };
            (phase, Some(text))
        }
    };
    if let Some(text) = &outcome {
        rollout_event_with(
            p,
            text.clone(),
            matches!(decision, Decision::Stopped { .. }),
        );
    } else if phase != state.phase && !phase.starts_with("wave") {
        rollout_event(p, phase.clone());
    }
    state.phase = phase;
    state.outcome = outcome.clone();
    outcome
}

/// For ops rollouts the deadline (`TotalTimeout`, else `ExecutionTimeout`) counts from when
/// each node's turn came, not from submission: a late wave must not start already late.
fn ops_deadlines(p: &mut Planner) {
    if let Some(limit) = crate::ops::time_limit(p) {
        let waited = go_duration(limit);
        crate::ops::settle_late(p, |e| e.create_time.saturating_add(limit), &waited);
    }
}

fn rollout_event(p: &mut Planner, text: String) {
    rollout_event_with(p, text, false);
}

fn rollout_event_with(p: &mut Planner, text: String, error: bool) {
    let mut event = Event::new("Rollout", text, rfc3339(p.now));
    if error {
        event = event.with("IsError", "true");
    }
    p.push_event(event);
}

fn plural(n: usize) -> &'static str {
    if n == 1 { "" } else { "s" }
}
