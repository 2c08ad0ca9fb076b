//! Jobs with a `Rollout`, carried out by the scheduler against a simulated cluster (RO1–RO6 of
//! wave2.md §3; RO7, the planner alone, is `rollout_props.rs`).

use shoal_types::rollout::{Amount, Health, NodeProgress, OnFailure, Rollout, UnreachablePolicy};
use shoal_types::time::GoDuration;
use shoal_types::{ComputeStateType, Execution, Job, JobStateType};

use crate::harness::*;

fn nodes(n: usize) -> Vec<shoal_scheduler::NodeView> {
    (0..n).map(|i| node(&format!("n-{i:02}"))).collect()
}

fn with_rollout(mut job: Job, rollout: Rollout) -> Job {
    job.rollout = Some(rollout);
    job
}

fn live(c: &Cluster) -> Vec<&Execution> {
    c.executions.iter().filter(|e| !e.is_terminal()).collect()
}

/// Completes every live execution of the current version, with exit code 1 on the nodes in
/// `failing` and 0 elsewhere.
fn finish_running(c: &mut Cluster, failing: &[&str]) {
    let running: Vec<(String, String)> = live(c)
        .iter()
        .map(|e| (e.id.to_string(), e.node_id.to_string()))
        .collect();
    for (id, node) in running {
        let code = if failing.contains(&node.as_str()) {
            1
        } else {
            0
        };
        c.complete(&id, code);
    }
}

fn count(c: &Cluster, progress: NodeProgress) -> usize {
    c.rollout.as_ref().map_or(0, |r| r.count(progress))
}

#[test]
fn ro1_an_ops_rollout_runs_in_waves_and_never_more_than_the_batch_at_once() {
    let rollout = Rollout {
        batch: Amount::Percent(25),
        ..Rollout::default()
    };
    let mut c = Cluster::new(with_rollout(ops(), rollout), nodes(20));
    let mut waves = Vec::new();
    for _ in 0..10 {
        let plan = c.step();
        let started = placed_on(&plan);
        assert!(live(&c).len() <= 5, "at most 5 running at once");
        if !started.is_empty() {
            waves.push(started);
        }
        c.advance(1);
        finish_running(&mut c, &[]);
        if c.state().is_terminal() {
            break;
        }
    }
    assert_eq!(waves.len(), 4, "{waves:?}");
    assert!(waves.iter().all(|w| w.len() == 5));
    assert_eq!(waves[0][0], "n-00", "nodes in id order");
    assert_eq!(waves[3][4], "n-19");
    assert_eq!(c.state(), JobStateType::Completed);
    assert_eq!(c.message(), "rollout done: 20 succeeded");
}

#[test]
fn ro2_failures_count_over_the_whole_rollout_and_stop_it() {
    let rollout = Rollout {
        batch: Amount::Count(4),
        max_failures: Amount::Count(2),
        ..Rollout::default()
    };
    // One failure in each of waves 1, 2 and 3: no single wave exceeds the limit.
    let failing = ["n-01", "n-06", "n-09"];
    let mut c = Cluster::new(with_rollout(ops(), rollout), nodes(20));
    for _ in 0..10 {
        c.step();
        c.advance(1);
        finish_running(&mut c, &failing);
    }
    assert_eq!(c.state(), JobStateType::Failed);
    assert_eq!(
        c.message(),
        "rollout stopped: 3 failures > 2: 9 succeeded, 3 failed (n-01, n-06, n-09), 8 not-started"
    );
    let started: Vec<&str> = c.executions.iter().map(|e| e.node_id.as_str()).collect();
    assert_eq!(
        started.len(),
        12,
        "waves 4 and 5 never started: {started:?}"
    );
    assert_eq!(count(&c, NodeProgress::NotStarted), 8);
}

#[test]
fn ro3_unreachable_nodes_are_skipped_without_waiting() {
    let rollout = Rollout {
        batch: Amount::Count(5),
        ..Rollout::default()
    };
    let mut cluster_nodes = nodes(10);
    cluster_nodes[3] = node("n-03").disconnected();
    cluster_nodes[7] = node("n-07").disconnected();
    let mut c = Cluster::new(with_rollout(ops(), rollout.clone()), cluster_nodes.clone());
    for _ in 0..4 {
        c.step();
        finish_running(&mut c, &[]);
    }
    assert_eq!(c.state(), JobStateType::Completed);
    assert_eq!(
        c.message(),
        "rollout done: 8 succeeded, 2 unreachable (n-03, n-07)"
    );
    let away = c.executions.iter().find(|e| e.node_id.as_str() == "n-03");
    let away = away.expect("the away node has an execution to account for it");
    assert_eq!(away.compute_state.state_type, ComputeStateType::Failed);
    assert!(shoal_scheduler::is_unreachable(away));

    let counted = Rollout {
        unreachable: UnreachablePolicy::CountAsFailure,
        max_failures: Amount::Count(1),
        ..rollout
    };
    let mut c = Cluster::new(with_rollout(ops(), counted), cluster_nodes);
    for _ in 0..4 {
        c.step();
        finish_running(&mut c, &[]);
    }
    assert_eq!(c.state(), JobStateType::Failed);
    assert!(
        c.message()
            .starts_with("rollout stopped: 2 failures > 1: 8 succeeded, 2 unreachable"),
        "{}",
        c.message()
    );
}

#[test]
fn ro6_a_stopped_rollout_starts_nothing_more_and_counts_the_rest_not_started() {
    let rollout = Rollout {
        batch: Amount::Count(2),
        ..Rollout::default()
    };
    let mut c = Cluster::new(with_rollout(ops(), rollout), nodes(10));
    c.step();
    finish_running(&mut c, &[]);
    c.step();
    assert_eq!(live(&c).len(), 2, "wave 2 of 5 running");
    c.job.state = shoal_types::JobState::new(JobStateType::Stopped, "stopped by the operator");
    let plan = c.step();
    assert!(plan.new_executions.is_empty());
    assert_eq!(plan.updates.len(), 2, "wave 2 is asked to stop");
    c.confirm_stops();
    for _ in 0..3 {
        assert!(
            c.step().new_executions.is_empty(),
            "no node starts after the stop"
        );
    }
    let state = c.rollout.as_ref().unwrap();
    assert_eq!(state.count(NodeProgress::NotStarted), 6, "waves 3–5");
    assert_eq!(state.count(NodeProgress::Succeeded), 2);
    assert!(
        state
            .outcome
            .as_deref()
            .unwrap()
            .starts_with("rollout ended with the job (stopped by the operator)"),
        "{:?}",
        state.outcome
    );
}

#[test]
fn a_canary_waits_for_promotion_then_the_rest_follows_in_waves() {
    let rollout = Rollout {
        batch: Amount::Count(3),
        canary: Amount::Count(1),
        ..Rollout::default()
    };
    let mut c = Cluster::new(with_rollout(ops(), rollout), nodes(7));
    assert_eq!(placed_on(&c.step()), ["n-00"]);
    finish_running(&mut c, &[]);
    assert!(c.step().new_executions.is_empty());
    let phase = &c.rollout.as_ref().unwrap().phase;
    assert!(
        phase.starts_with("awaiting promotion: 1 canary succeeded; run `shoal job promote test`"),
        "{phase}"
    );
    assert_eq!(c.state(), JobStateType::Running);
    c.rollout.as_mut().unwrap().promoted = true;
    assert_eq!(placed_on(&c.step()), ["n-01", "n-02", "n-03"]);
}

#[test]
fn a_pause_holds_the_next_wave_and_asks_to_be_woken() {
    let rollout = Rollout {
        batch: Amount::Count(2),
        pause: GoDuration::from_secs(30),
        ..Rollout::default()
    };
    let mut c = Cluster::new(with_rollout(ops(), rollout), nodes(4));
    c.step();
    finish_running(&mut c, &[]);
    let plan = c.step();
    assert!(plan.new_executions.is_empty());
    assert_eq!(plan.retry_at, Some(c.now + 30 * SEC));
    c.advance(30);
    assert_eq!(placed_on(&c.step()), ["n-02", "n-03"]);
}

fn daemon_v1_on(n: usize) -> Cluster {
    let mut c = Cluster::new(daemon(), nodes(n));
    c.step();
    for e in c.executions.iter_mut() {
        e.compute_state.state_type = ComputeStateType::Running;
    }
    c
}

fn update_to_v2(c: &mut Cluster, rollout: Rollout) {
    c.job.version = 2;
    c.job.rollout = Some(rollout);
}

fn running_version(c: &Cluster, node: &str) -> Vec<u64> {
    c.executions
        .iter()
        .filter(|e| e.node_id.as_str() == node && !e.is_terminal())
        .map(|e| e.job_version)
        .collect()
}

fn report_running(c: &mut Cluster) {
    let now = c.now;
    for e in c.executions.iter_mut() {
        if e.compute_state.state_type == ComputeStateType::New {
            e.compute_state.state_type = ComputeStateType::Running;
            e.modify_time = now;
        }
    }
}

#[test]
fn ro4_a_daemon_update_with_a_canary_leaves_the_rest_on_the_old_version() {
    let mut c = daemon_v1_on(10);
    let rollout = Rollout {
        batch: Amount::Count(3),
        canary: Amount::Count(1),
        health: Health {
            min_healthy: GoDuration::from_secs(10),
            ..Health::default()
        },
        ..Rollout::default()
    };
    update_to_v2(&mut c, rollout);
    let plan = c.step();
    assert_eq!(placed_on(&plan), ["n-00"], "only the canary gets v2");
    assert_eq!(plan.updates.len(), 1, "only the canary's v1 is stopped");
    c.confirm_stops();
    report_running(&mut c);
    c.step();
    assert_eq!(running_version(&c, "n-00"), [2]);
    for i in 1..10 {
        assert_eq!(running_version(&c, &format!("n-{i:02}")), [1]);
    }
    c.advance(10);
    let plan = c.step();
    assert!(
        plan.new_executions.is_empty(),
        "the canary waits for promotion"
    );
    assert!(
        c.rollout
            .as_ref()
            .unwrap()
            .phase
            .starts_with("awaiting promotion"),
        "{}",
        c.rollout.as_ref().unwrap().phase
    );
    c.rollout.as_mut().unwrap().promoted = true;
    assert_eq!(placed_on(&c.step()), ["n-01", "n-02", "n-03"]);
    c.confirm_stops();
    for _ in 0..8 {
        report_running(&mut c);
        c.advance(10);
        c.step();
        c.confirm_stops();
    }
    for i in 0..10 {
        assert_eq!(running_version(&c, &format!("n-{i:02}")), [2], "n-{i:02}");
    }
    let state = c.rollout.as_ref().unwrap();
    assert_eq!(state.outcome.as_deref(), Some("rollout done: 10 succeeded"));
    assert_eq!(c.state(), JobStateType::Running);
}

#[test]
fn ro5_a_failing_canary_is_reverted_and_no_other_node_gets_the_new_version() {
    let mut c = daemon_v1_on(10);
    let rollout = Rollout {
        canary: Amount::Count(1),
        on_failure: OnFailure::Revert,
        ..Rollout::default()
    };
    update_to_v2(&mut c, rollout);
    c.step();
    c.confirm_stops();
    let canary = c
        .executions
        .iter()
        .find(|e| e.job_version == 2)
        .unwrap()
        .id
        .to_string();
    c.fail(&canary, "exit code 1", false);
    let plan = c.step();
    assert_eq!(placed_on(&plan), ["n-00"], "v1 goes back on the canary");
    assert_eq!(plan.new_executions[0].job_version, Some(1));
    for _ in 0..3 {
        report_running(&mut c);
        c.advance(60);
        c.step();
    }
    assert_eq!(running_version(&c, "n-00"), [1]);
    let v2_nodes: Vec<&str> = c
        .executions
        .iter()
        .filter(|e| e.job_version == 2)
        .map(|e| e.node_id.as_str())
        .collect();
    assert_eq!(v2_nodes, ["n-00"], "no other node ever ran v2");
    let state = c.rollout.as_ref().unwrap();
    assert!(
        state
            .phase
            .starts_with("reverted: version 1 back on 1 node")
    );
    assert!(
        c.plans
            .iter()
            .flat_map(|p| &p.events)
            .any(|e| e.message.contains("rollout of version 2 reverted")),
        "the history marks v2 reverted"
    );
    c.add_node(node("n-99"));
    assert!(
        c.step().new_executions.is_empty(),
        "a node that joins after a failed rollout does not get the failed version"
    );
}
