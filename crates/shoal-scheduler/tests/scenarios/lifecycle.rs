//! Behaviour shared by every job type: stops, lost nodes, versions, idempotence.

use shoal_scheduler::Plan;
use shoal_types::{ComputeStateType, DesiredStateType, JobState, JobStateType};

use crate::harness::*;

#[test]
fn stopped_job_stops_all_executions() {
    let mut c = Cluster::new(batch(3), vec![node("n-a"), node("n-b"), node("n-c")]);
    c.step();
    c.complete("e-001", 0);
    c.job.state = JobState::new(JobStateType::Stopped, "stopped by user");
    let plan = c.step();
    let mut stopped: Vec<&str> = plan
        .updates
        .iter()
        .map(|u| u.execution_id.as_str())
        .collect();
    stopped.sort();
    assert_eq!(
        stopped,
        ["e-002", "e-003"],
        "the completed execution is left alone"
    );
    assert!(
        plan.updates
            .iter()
            .all(|u| u.desired == DesiredStateType::Stopped
                && u.compute.is_none()
                && u.message == "job stopped")
    );
    assert!(plan.new_executions.is_empty());
    assert!(plan.job_state.is_none(), "the job is already stopped");
    assert_eq!(c.step(), Plan::default(), "a stop is asked for once");
}

#[test]
fn disconnected_node_keeps_work_until_grace_passes() {
    let mut c = Cluster::new(batch(1), vec![node("n-a"), node("n-b")]);
    assert_eq!(placed_on(&c.step()), ["n-a"]);
    c.disconnect("n-a");
    c.advance(4 * 60);
    let plan = c.step();
    assert!(
        plan.updates.is_empty() && plan.new_executions.is_empty(),
        "{plan:#?}"
    );

    c.advance(2 * 60);
    let plan = c.step();
    assert_eq!(plan.updates.len(), 1);
    let lost = &plan.updates[0];
    assert_eq!(lost.execution_id.as_str(), "e-001");
    assert_eq!(lost.compute, Some(ComputeStateType::Failed));
    assert!(lost.retryable);
    assert_eq!(
        lost.message,
        "node n-a lost: disconnected for 6m0s (grace 5m0s)"
    );
    assert_eq!(
        placed_on(&plan),
        ["n-b"],
        "the partition moves to a node that is here"
    );
}

#[test]
fn a_job_can_set_its_own_node_lost_grace() {
    let mut job = batch(1);
    job.meta
        .insert("shoal.io/node-lost-grace".into(), "30s".into());
    let mut c = Cluster::new(job, vec![node("n-a"), node("n-b")]);
    c.step();
    c.disconnect("n-a");
    let plan = c.step();
    assert!(plan.updates.is_empty(), "within the job's grace: {plan:#?}");
    assert_eq!(
        plan.retry_at,
        Some(c.now + 30 * SEC + 1),
        "the orchestrator is asked to look again when the grace ends"
    );
    c.advance(31);
    let plan = c.step();
    assert_eq!(
        plan.updates[0].message,
        "node n-a lost: disconnected for 31s (grace 30s)"
    );
    assert_eq!(placed_on(&plan), ["n-b"]);
}

#[test]
fn a_job_with_grace_never_waits_for_its_node() {
    let mut job = batch(1);
    job.meta
        .insert("shoal.io/node-lost-grace".into(), "never".into());
    let mut c = Cluster::new(job, vec![node("n-a"), node("n-b")]);
    c.step();
    c.disconnect("n-a");
    c.advance(48 * 3600);
    let plan = c.step();
    assert!(
        plan.updates.is_empty() && plan.new_executions.is_empty(),
        "the work stays with its node: {plan:#?}"
    );
}

#[test]
fn work_on_a_node_that_left_the_cluster_is_settled_at_once() {
    let mut c = Cluster::new(batch(1), vec![node("n-a"), node("n-b")]);
    c.step();
    c.remove_node("n-a");
    let plan = c.step();
    assert_eq!(
        plan.updates[0].message,
        "node n-a lost: no longer registered with the orchestrator"
    );
    assert_eq!(placed_on(&plan), ["n-b"]);
}

#[test]
fn executions_of_an_older_version_are_replaced() {
    let mut c = Cluster::new(batch(1), vec![node("n-a"), node("n-b")]);
    c.step();
    c.job.version = 2;
    let plan = c.step();
    assert_eq!(plan.updates.len(), 1);
    assert_eq!(plan.updates[0].message, "replaced by job version 2");
    assert_eq!(
        placed_on(&plan),
        ["n-b"],
        "the old execution still holds n-a"
    );
}

#[test]
fn a_plan_that_changes_nothing_is_empty() {
    let mut c = Cluster::new(batch(2), vec![node("n-a"), node("n-b")]);
    c.step();
    assert_eq!(c.step(), Plan::default());
}

#[test]
fn unreadable_resources_fail_the_job_with_the_fix() {
    let mut c = Cluster::new(batch(1).memory("lots"), vec![node("n-a")]);
    c.step();
    assert_eq!(c.state(), JobStateType::Failed);
    assert!(
        c.message().contains("cannot read \"lots\""),
        "{}",
        c.message()
    );
}

#[test]
fn a_job_no_node_can_run_fails_even_on_an_empty_cluster() {
    let mut c = Cluster::new(batch(2), vec![]);
    c.step();
    assert_eq!(c.state(), JobStateType::Failed);
    assert_eq!(
        c.message(),
        "not enough nodes to run job. requested: 2, available: 0, suitable: 0."
    );
}

/// The orchestrator does not evaluate a job after a report that leaves its execution live
/// (accepted, preparing, running): that is only right while no plan depends on which live
/// state an execution is in. Every job type, with some executions placed and others not.
#[test]
fn no_plan_depends_on_which_live_state_an_execution_is_in() {
    for job in [batch(3), service(2), ops(), daemon()] {
        let kind = job.job_type;
        let nodes = vec![node("n-a"), node("n-b"), node("n-c")];
        let mut c = Cluster::new(job, nodes);
        c.step();
        assert!(!c.executions.is_empty(), "{kind:?}: nothing placed");
        c.advance(30);
        let mut plans = Vec::new();
        for state in [
            ComputeStateType::New,
            ComputeStateType::BidAccepted,
            ComputeStateType::Running,
        ] {
            for e in &mut c.executions {
                e.compute_state.state_type = state;
                e.compute_state.message = format!("{state:?}");
                e.modify_time = c.now;
            }
            plans.push(c.plan());
        }
        assert_eq!(plans[0], plans[1], "{kind:?}: New vs BidAccepted");
        assert_eq!(plans[1], plans[2], "{kind:?}: BidAccepted vs Running");
    }
}
