use shoal_scheduler::ops_buckets;
use shoal_types::{ComputeStateType, DesiredStateType, JobStateType, NodeId};

use crate::harness::*;

fn ids(nodes: &[NodeId]) -> Vec<&str> {
    nodes.iter().map(NodeId::as_str).collect()
}

#[test]
fn ops_runs_once_on_every_matching_node() {
    let nodes = vec![
        node("n-a").label("role", "web"),
        node("n-b").label("role", "web"),
        node("n-c").label("role", "db"),
    ];
    let mut c = Cluster::new(ops().constraint("role", "=", &["web"]), nodes);
    let plan = c.step();
    assert_eq!(placed_on(&plan), ["n-a", "n-b"]);
    assert_eq!(
        reason(&plan, "n-c").reason,
        "constraint role=web not met: node has role=db"
    );
    assert_eq!(c.state(), JobStateType::Running);

    c.add_node(node("n-d").label("role", "web"));
    c.complete("e-001", 0);
    let plan = c.step();
    assert!(
        plan.new_executions.is_empty(),
        "ops targets the nodes that matched at submission"
    );

    c.fail("e-002", "network unreachable", true);
    let plan = c.step();
    assert!(plan.new_executions.is_empty(), "ops never retries");
    assert_eq!(c.state(), JobStateType::Failed);
    assert_eq!(
        c.message(),
        "ops job finished: 1 succeeded, 0 failed (exit≠0), 1 errored, 0 unreachable"
    );
}

#[test]
fn ops_completes_when_every_node_succeeded() {
    let mut c = Cluster::new(ops(), vec![node("n-a"), node("n-b")]);
    c.step();
    c.complete("e-001", 0);
    c.complete("e-002", 0);
    c.step();
    assert_eq!(c.state(), JobStateType::Completed);
}

#[test]
fn ops_counts_unreachable_nodes() {
    let nodes = vec![node("n-a"), node("n-b"), node("n-c"), node("n-d")];
    let mut c = Cluster::new(ops().total_timeout(60), nodes);
    let plan = c.step();
    assert_eq!(plan.retry_at, Some(T0 + 60 * SEC));
    c.complete("e-001", 0);
    c.complete("e-002", 3);
    c.disconnect("n-c");
    c.advance(61);
    let plan = c.step();

    let unreachable = plan
        .updates
        .iter()
        .find(|u| u.execution_id.as_str() == "e-003")
        .unwrap();
    assert_eq!(unreachable.compute, Some(ComputeStateType::Failed));
    assert!(
        unreachable.message.starts_with("unreachable:"),
        "{}",
        unreachable.message
    );
    let cancelled = plan
        .updates
        .iter()
        .find(|u| u.execution_id.as_str() == "e-004")
        .unwrap();
    assert_eq!(cancelled.desired, DesiredStateType::Stopped);
    assert_eq!(
        cancelled.compute, None,
        "a connected node cancels its own work"
    );
    assert_eq!(
        c.state(),
        JobStateType::Running,
        "n-d has not confirmed the cancel yet"
    );

    c.confirm_stops();
    c.step();
    assert_eq!(c.state(), JobStateType::Failed);
    assert_eq!(
        c.message(),
        "ops job finished: 1 succeeded, 1 failed (exit≠0), 1 errored, 1 unreachable"
    );
    let summary = ops_buckets(&c.executions);
    assert_eq!(ids(&summary.succeeded), ["n-a"]);
    assert_eq!(ids(&summary.failed), ["n-b"]);
    assert_eq!(ids(&summary.unreachable), ["n-c"]);
    assert_eq!(ids(&summary.errored), ["n-d"]);
    assert!(!summary.all_succeeded());
}

#[test]
fn ops_counts_a_lost_node_as_unreachable_before_the_deadline() {
    let mut c = Cluster::new(ops(), vec![node("n-a"), node("n-b")]);
    c.step();
    c.complete("e-001", 0);
    c.disconnect("n-b");
    c.advance(10 * 60);
    let plan = c.step();
    assert!(
        plan.updates[0]
            .message
            .starts_with("unreachable: node n-b lost"),
        "{:?}",
        plan.updates
    );
    assert!(!plan.updates[0].retryable);
    assert_eq!(ids(&ops_buckets(&c.executions).unreachable), ["n-b"]);
    assert_eq!(c.state(), JobStateType::Failed);
}

#[test]
fn ops_fails_at_submit_when_no_node_matches() {
    let mut c = Cluster::new(ops().constraint("role", "=", &["web"]), vec![node("n-a")]);
    c.step();
    assert_eq!(c.state(), JobStateType::Failed);
    assert!(
        c.message().starts_with("not enough nodes to run job."),
        "{}",
        c.message()
    );
    assert!(
        c.message()
            .contains("• node n-a: constraint role=web not met: node has no label role")
    );
}

/// EX1: a node that knows the engine but has it switched off gives its own reason, which says
/// what to change on the node, and a job no node can run fails at submission listing each.
#[test]
fn ops_fails_at_submission_with_each_nodes_reason_for_an_engine_it_switched_off() {
    let off = |id: &str| {
        let mut n = node(id);
        n.state.info.compute_node_info.unavailable_engines.insert(
            "exec".into(),
            "exec disabled (start the agent with --enable-exec)".into(),
        );
        n
    };
    let mut c = Cluster::new(ops().engine("exec"), vec![off("n-1"), off("n-2")]);
    let plan = c.step();
    assert!(plan.new_executions.is_empty());
    assert_eq!(c.state(), JobStateType::Failed);
    assert_eq!(
        c.message(),
        "not enough nodes to run job. requested: 1, available: 2, suitable: 0.\n\
         • node n-1: exec disabled (start the agent with --enable-exec)\n\
         • node n-2: exec disabled (start the agent with --enable-exec)"
    );
}
