use shoal_types::{DesiredStateType, JobStateType};

use crate::harness::*;

#[test]
fn daemon_starts_on_node_that_joins_later() {
    let mut c = Cluster::new(daemon(), vec![node("n-a")]);
    assert_eq!(placed_on(&c.step()), ["n-a"]);
    assert_eq!(c.state(), JobStateType::Running);
    c.add_node(node("n-b"));
    let plan = c.step();
    assert_eq!(
        placed_on(&plan),
        ["n-b"],
        "one execution per node, and only where there is none"
    );
}

#[test]
fn daemon_stops_where_node_no_longer_matches() {
    let nodes = vec![
        node("n-a").label("tier", "edge"),
        node("n-b").label("tier", "edge"),
    ];
    let mut c = Cluster::new(daemon().constraint("tier", "=", &["edge"]), nodes);
    c.step();
    c.node_mut("n-b")
        .state
        .info
        .labels
        .insert("tier".into(), "core".into());
    let plan = c.step();
    assert_eq!(plan.updates.len(), 1);
    assert_eq!(plan.updates[0].execution_id.as_str(), "e-002");
    assert_eq!(plan.updates[0].desired, DesiredStateType::Stopped);
    assert!(
        plan.updates[0]
            .message
            .starts_with("node no longer matches the job's constraints"),
        "{}",
        plan.updates[0].message
    );
    c.confirm_stops();
    assert!(
        c.step().new_executions.is_empty(),
        "nothing is restarted on a node that does not match"
    );
}

#[test]
fn daemon_restarts_an_ended_execution_after_the_backoff() {
    let mut c = Cluster::new(daemon(), vec![node("n-a")]);
    c.config.queue_backoff = 10 * SEC;
    c.step();
    c.advance(5);
    c.fail("e-001", "segfault", false);
    let plan = c.step();
    assert!(
        plan.new_executions.is_empty(),
        "a crashing daemon does not spin"
    );
    assert_eq!(plan.retry_at, Some(c.now + 10 * SEC));
    c.advance(10);
    let plan = c.step();
    assert_eq!(placed_on(&plan), ["n-a"]);
    assert_eq!(
        plan.new_executions[0]
            .previous_execution
            .as_ref()
            .unwrap()
            .as_str(),
        "e-001"
    );
}

#[test]
fn daemon_without_matching_nodes_runs_and_waits() {
    let mut c = Cluster::new(
        daemon().engine("wasm"),
        vec![node("n-a").engines(&["docker"])],
    );
    let plan = c.step();
    assert!(plan.new_executions.is_empty());
    assert_eq!(c.state(), JobStateType::Running);
    assert_eq!(c.message(), "waiting for matching nodes");
    assert_eq!(
        reason(&plan, "n-a").reason,
        "does not support wasm, only docker"
    );
}
