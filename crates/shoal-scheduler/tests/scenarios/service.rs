use shoal_types::JobStateType;

use crate::harness::*;

#[test]
fn service_replaces_execution_on_lost_node() {
    let mut c = Cluster::new(service(2), vec![node("n-a"), node("n-b"), node("n-c")]);
    assert_eq!(placed_on(&c.step()), ["n-a", "n-b"]);
    c.disconnect("n-b");
    c.advance(6 * 60);
    let plan = c.step();
    assert_eq!(
        plan.updates[0].message,
        "node n-b lost: disconnected for 6m0s (grace 5m0s)"
    );
    assert_eq!(placed_on(&plan), ["n-c"]);
    assert_eq!(plan.new_executions[0].partition_index, 1);
}

#[test]
fn service_restarts_a_replica_that_exited_after_the_backoff() {
    let mut c = Cluster::new(service(1), vec![node("n-a")]);
    c.config.queue_backoff = 10 * SEC;
    c.step();
    c.complete("e-001", 0);
    let plan = c.step();
    assert!(plan.new_executions.is_empty());
    assert_eq!(
        c.state(),
        JobStateType::Running,
        "a service never completes"
    );
    assert_eq!(plan.retry_at, Some(c.now + 10 * SEC));
    c.advance(10);
    assert_eq!(placed_on(&c.step()), ["n-a"]);
}

#[test]
fn running_service_waits_for_a_node_instead_of_failing() {
    let mut c = Cluster::new(service(2).memory("6Gi"), vec![node("n-a"), node("n-b")]);
    c.step();
    c.remove_node("n-b");
    let plan = c.step();
    assert!(plan.new_executions.is_empty());
    assert_eq!(c.state(), JobStateType::Running);
    assert!(plan.retry_at.is_some());
}
