use shoal_scheduler::SchedulerConfig;
use shoal_types::{JobStateType, Membership, Resources};

use crate::harness::*;

fn three_nodes() -> Vec<shoal_scheduler::NodeView> {
    vec![node("n-a"), node("n-b"), node("n-c")]
}

#[test]
fn batch_places_partitions_on_distinct_nodes() {
    let mut c = Cluster::new(batch(3), three_nodes());
    let plan = c.step();
    let mut nodes = placed_on(&plan);
    nodes.sort();
    assert_eq!(nodes, ["n-a", "n-b", "n-c"]);
    let partitions: Vec<u32> = plan
        .new_executions
        .iter()
        .map(|n| n.partition_index)
        .collect();
    assert_eq!(partitions, [0, 1, 2]);
    assert_eq!(c.state(), JobStateType::Running);
    let requested = plan
        .events
        .iter()
        .filter(|e| e.message.starts_with("Requested execution on n-"))
        .count();
    assert_eq!(
        requested, 3,
        "one Scheduling event per new execution: {:#?}",
        plan.events
    );
}

#[test]
fn batch_accounts_for_capacity_taken_in_the_same_plan() {
    // Room for two 1 GiB partitions (the harness reserves nothing else on the node).
    let mut c = Cluster::new(batch(3).memory("1Gi"), vec![node("n-a").memory(2 * GIB)]);
    let plan = c.step();
    assert_eq!(placed_on(&plan), ["n-a", "n-a"]);
    assert_eq!(
        c.state(),
        JobStateType::Running,
        "partitions that wait do not hold back the others"
    );
    assert!(
        plan.retry_at.is_some(),
        "the third partition is looked at again later"
    );
    assert!(
        plan.rejections.is_empty(),
        "a chosen node is not listed as rejected"
    );

    c.complete("e-001", 0);
    let plan = c.step();
    assert_eq!(placed_on(&plan), ["n-a"]);
    assert_eq!(plan.new_executions[0].partition_index, 2);
}

#[test]
fn batch_retries_transient_failure_on_another_node() {
    let mut c = Cluster::new(batch(1), vec![node("n-a"), node("n-b")]);
    assert_eq!(placed_on(&c.step()), ["n-a"]);
    c.fail("e-001", "docker daemon restarted", true);
    let plan = c.step();
    assert_eq!(placed_on(&plan), ["n-b"]);
    assert_eq!(
        plan.new_executions[0]
            .previous_execution
            .as_ref()
            .unwrap()
            .as_str(),
        "e-001"
    );
    assert_eq!(
        reason(&plan, "n-a").reason,
        "partition 0 failed on this node before"
    );
}

#[test]
fn batch_retries_on_the_same_node_when_no_other_can_run_it() {
    let mut c = Cluster::new(batch(1), vec![node("n-a")]);
    c.step();
    c.fail("e-001", "docker daemon restarted", true);
    assert_eq!(placed_on(&c.step()), ["n-a"]);
}

#[test]
fn batch_never_retries_user_error() {
    let mut c = Cluster::new(batch(1), vec![node("n-a"), node("n-b")]);
    c.step();
    c.fail("e-001", "image not found: ubuntu:nope", false);
    let plan = c.step();
    assert!(plan.new_executions.is_empty());
    assert_eq!(c.state(), JobStateType::Failed);
    assert_eq!(
        c.message(),
        "execution e-001 on n-a failed: image not found: ubuntu:nope"
    );
}

#[test]
fn batch_fails_after_max_attempts() {
    let mut c = Cluster::new(batch(1), vec![node("n-a"), node("n-b")]);
    c.config = SchedulerConfig {
        max_attempts: 2,
        ..Default::default()
    };
    c.step();
    c.fail("e-001", "out of disk", true);
    c.step();
    c.fail("e-002", "out of disk again", true);
    let plan = c.step();
    assert!(plan.new_executions.is_empty());
    assert_eq!(c.state(), JobStateType::Failed);
    assert_eq!(
        c.message(),
        "partition 0 failed 2 times; last error: out of disk again"
    );
}

#[test]
fn batch_nonzero_exit_completes_job() {
    let mut c = Cluster::new(batch(3), three_nodes());
    c.step();
    c.complete("e-001", 0);
    c.complete("e-002", 1);
    assert!(
        c.step().job_state.is_none(),
        "one partition is still running"
    );
    c.complete("e-003", 0);
    let plan = c.step();
    assert!(
        plan.new_executions.is_empty(),
        "a non-zero exit is a result, not a failure to retry"
    );
    assert_eq!(c.state(), JobStateType::Completed);
    assert_eq!(c.message(), "completed; 1 of 3 partitions exited non-zero");
}

#[test]
fn batch_completes_when_every_partition_completed() {
    let mut c = Cluster::new(batch(2), three_nodes());
    c.step();
    c.complete("e-001", 0);
    c.complete("e-002", 0);
    c.step();
    assert_eq!(c.state(), JobStateType::Completed);
    assert_eq!(c.message(), "job completed");
}

#[test]
fn batch_with_zero_partitions_completes_at_once() {
    let mut c = Cluster::new(batch(0), three_nodes());
    let plan = c.step();
    assert!(plan.new_executions.is_empty());
    assert_eq!(c.state(), JobStateType::Completed);
}

#[test]
fn batch_fails_at_submit_when_no_node_supports_engine() {
    let mut c = Cluster::new(
        batch(1).engine("flibble"),
        vec![node("n-a"), node("n-b").engines(&["wasm"])],
    );
    let plan = c.step();
    assert!(plan.new_executions.is_empty());
    assert_eq!(c.state(), JobStateType::Failed);
    assert_eq!(
        c.message(),
        "not enough nodes to run job. requested: 1, available: 2, suitable: 0.\n\
         • node n-a: does not support flibble, only docker, wasm\n\
         • node n-b: does not support flibble, only wasm"
    );
    assert!(
        plan.rejections
            .iter()
            .all(|r| !r.transient && r.reason.contains("does not support flibble"))
    );
    assert!(
        plan.events
            .iter()
            .any(|e| e.is_error() && e.message.contains("not enough nodes to run job"))
    );
}

#[test]
fn batch_queues_when_nodes_busy_and_fails_after_queue_timeout() {
    let job = batch(1).memory("2Gi").queue_timeout(60);
    let mut c = Cluster::new(
        job,
        vec![node("n-a").memory(4 * GIB), node("n-b").memory(4 * GIB)],
    );
    c.use_elsewhere(
        "n-a",
        Resources {
            memory: 3 * GIB,
            ..Default::default()
        },
    );
    c.use_elsewhere(
        "n-b",
        Resources {
            memory: 3 * GIB,
            ..Default::default()
        },
    );
    let plan = c.step();
    assert!(plan.new_executions.is_empty());
    assert_eq!(c.state(), JobStateType::Queued);
    assert_eq!(
        c.message(),
        "waiting for capacity: 2 nodes busy (job needs 2 GiB memory, 1 GiB free)"
    );
    assert_eq!(plan.retry_at, Some(c.now + c.config.queue_backoff));
    assert!(reason(&plan, "n-a").transient);

    c.advance(30);
    let plan = c.step();
    assert!(
        plan.job_state.is_none(),
        "still queued, and a plan only carries changes"
    );

    c.advance(31);
    let plan = c.step();
    assert!(plan.new_executions.is_empty());
    assert_eq!(c.state(), JobStateType::Failed);
    assert!(
        c.message()
            .contains("not enough nodes to run job. requested: 1, available: 2, suitable: 0."),
        "{}",
        c.message()
    );
    assert!(
        c.message()
            .contains("• node n-a: job needs 2 GiB memory, 1 GiB free"),
        "{}",
        c.message()
    );
}

#[test]
fn batch_without_queue_timeout_waits_for_busy_nodes_then_runs() {
    let mut c = Cluster::new(batch(1).memory("2Gi"), vec![node("n-a").memory(4 * GIB)]);
    c.use_elsewhere(
        "n-a",
        Resources {
            memory: 3 * GIB,
            ..Default::default()
        },
    );
    c.step();
    assert_eq!(
        c.state(),
        JobStateType::Queued,
        "busy is transient: wait rather than fail"
    );
    c.use_elsewhere("n-a", Resources::default());
    c.advance(1);
    assert_eq!(placed_on(&c.step()), ["n-a"]);
    assert_eq!(c.state(), JobStateType::Running);
}

#[test]
fn placement_reasons_name_requested_and_free_memory() {
    let nodes = vec![
        node("n-a").memory(GIB),
        node("n-b").memory(4 * GIB),
        node("n-c"),
    ];
    let mut c = Cluster::new(batch(1).memory("2Gi"), nodes);
    c.use_elsewhere(
        "n-b",
        Resources {
            memory: 4 * GIB - (GIB + GIB / 10),
            ..Default::default()
        },
    );
    let plan = c.step();
    assert_eq!(placed_on(&plan), ["n-c"]);
    let small = reason(&plan, "n-a");
    assert_eq!(
        small.reason,
        "job needs 2 GiB memory, node has 1 GiB in total"
    );
    assert!(!small.transient);
    let busy = reason(&plan, "n-b");
    assert_eq!(busy.reason, "job needs 2 GiB memory, 1.1 GiB free");
    assert!(busy.transient);
}

#[test]
fn every_rejected_node_says_why() {
    let job = batch(1)
        .constraint("region", "=", &["eu"])
        .publisher("s3")
        .input("s3");
    let with_s3 = |mut n: shoal_scheduler::NodeView, publisher: bool, input: bool| {
        let info = &mut n.state.info.compute_node_info;
        if publisher {
            info.publishers.push("s3".into());
        }
        if input {
            info.storage_sources.push("s3".into());
        }
        n
    };
    let eu = |id: &str| with_s3(node(id).label("region", "eu"), true, true);
    let nodes = vec![
        eu("n-ok"),
        eu("n-pending").membership(Membership::Pending),
        eu("n-away").disconnected(),
        with_s3(node("n-us").label("region", "us"), true, true),
        with_s3(node("n-publisher").label("region", "eu"), false, true),
        with_s3(node("n-input").label("region", "eu"), true, false),
    ];
    let plan = Cluster::new(job, nodes).step();
    assert_eq!(placed_on(&plan), ["n-ok"]);
    assert_eq!(
        reason(&plan, "n-pending").reason,
        "node not approved (membership PENDING)"
    );
    assert!(
        reason(&plan, "n-away")
            .reason
            .starts_with("node disconnected since ")
    );
    assert!(reason(&plan, "n-away").transient);
    assert_eq!(
        reason(&plan, "n-us").reason,
        "constraint region=eu not met: node has region=us"
    );
    assert_eq!(
        reason(&plan, "n-publisher").reason,
        "does not support publisher s3, only local, noop"
    );
    assert_eq!(
        reason(&plan, "n-input").reason,
        "does not support input s3, only urlDownload, inline"
    );
    assert_eq!(plan.rejections.len(), 5);
}

#[test]
fn batch_never_places_again_on_a_node_that_refused_the_partition() {
    let mut c = Cluster::new(batch(1), vec![node("n-a"), node("n-b")]);
    c.step();
    c.refuse("e-001", "image not in allow-list");
    assert_eq!(placed_on(&c.step()), ["n-b"]);
    c.refuse("e-002", "image not in allow-list");
    let plan = c.step();
    assert!(plan.new_executions.is_empty());
    assert_eq!(c.state(), JobStateType::Failed);
    assert!(
        c.message()
            .contains("• node n-a: node refused partition 0 at admission: image not in allow-list"),
        "{}",
        c.message()
    );
}

#[test]
fn batch_times_out_after_total_timeout() {
    let mut c = Cluster::new(batch(1).total_timeout(30), vec![node("n-a")]);
    let plan = c.step();
    assert_eq!(
        plan.retry_at,
        Some(T0 + 30 * SEC),
        "looked at again at the deadline"
    );
    c.advance(31);
    let plan = c.step();
    assert_eq!(c.state(), JobStateType::Failed);
    assert_eq!(c.message(), "job timed out after 30s");
    assert_eq!(plan.updates.len(), 1);
    assert_eq!(
        plan.updates[0].desired,
        shoal_types::DesiredStateType::Stopped
    );
    assert_eq!(plan.updates[0].compute, None, "the node cancels it");
}
