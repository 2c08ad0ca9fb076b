//! A fleet at the edge, in one process: daemon and service jobs follow nodes that join, change
//! labels, exit, get lost and come back; agent restarts never re-run finished work; ops jobs
//! count offline nodes as unreachable.
//!
//! Long-running work uses [`shoal_testkit::HoldExecutor`] (a `noop` that runs until
//! cancelled); work that must exit uses the real noop engine.

use std::collections::BTreeMap;
use std::time::Duration;

use shoal_testkit::{Cluster, ClusterConfig};
use shoal_types::{
    ComputeStateType, ConnectionStatus, DesiredStateType, Execution, Job, JobStateType,
};

fn job(yaml: &str) -> Job {
    shoal_types::spec::parse_job(yaml).expect("a valid spec")
}

/// A daemon job named `name` on nodes labelled `role=edge`; `extra` is added at the top level.
fn edge_daemon(name: &str, extra: &str) -> Job {
    job(&format!(
        "Name: {name}
Type: daemon
{extra}Constraints:
  - Key: role
    Operator: \"=\"
    Values: [\"edge\"]
Tasks:
  - Name: t
    Engine:
      Type: noop
"
    ))
}

fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// Agent 2 is `role=core`, every other agent (also those that join later) `role=edge`.
fn edge_labels(i: usize) -> BTreeMap<String, String> {
    labels(&[("role", if i == 2 { "core" } else { "edge" })])
}

fn is_running(e: &Execution) -> bool {
    e.compute_state.state_type == ComputeStateType::Running
}

/// Waits until `pred` holds for the job's executions; returns them.
async fn wait_execs(
    cluster: &Cluster,
    job_id: &str,
    what: &str,
    pred: impl Fn(&[Execution]) -> bool,
) -> Vec<Execution> {
    let deadline = tokio::time::Instant::now() + cluster.wait_limit;
    loop {
        let execs = cluster.client().executions(job_id).await.unwrap();
        if pred(&execs) {
            return execs;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}; executions: {:#?}",
            execs
                .iter()
                .map(|e| (
                    e.node_id.as_str(),
                    e.job_version,
                    e.compute_state.state_type,
                    e.desired_state.state_type
                ))
                .collect::<Vec<_>>()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Nodes with a running execution of job version `version`, sorted.
fn running_nodes(execs: &[Execution], version: u64) -> Vec<String> {
    let mut nodes: Vec<String> = execs
        .iter()
        .filter(|e| is_running(e) && e.job_version == version)
        .map(|e| e.node_id.to_string())
        .collect();
    nodes.sort();
    nodes
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_daemon_job_starts_on_a_matching_node_that_joins_later_and_not_on_others() {
    let mut cluster = Cluster::start(ClusterConfig::new(3).held_noop().labels(edge_labels))
        .await
        .unwrap();
    cluster.wait_for_nodes(3).await.unwrap();
    let id = cluster
        .client()
        .submit(&edge_daemon("agentd", ""))
        .await
        .unwrap();
    wait_execs(&cluster, &id, "agents 0 and 1 to run it", |e| {
        running_nodes(e, 1) == [cluster.node_id(0), cluster.node_id(1)]
    })
    .await;

    let late = cluster.join_agent().await.unwrap();
    let execs = wait_execs(&cluster, &id, "the joining node to run it", |e| {
        running_nodes(e, 1).contains(&cluster.node_id(late))
    })
    .await;
    assert_eq!(
        running_nodes(&execs, 1),
        [
            cluster.node_id(0),
            cluster.node_id(1),
            cluster.node_id(late)
        ],
        "exactly one execution per matching node, none on the core node"
    );
    assert_eq!(execs.len(), 3, "no extra execution anywhere: {execs:#?}");
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_daemon_job_follows_a_node_restarted_with_labels_that_now_match() {
    let mut cluster = Cluster::start(ClusterConfig::new(3).held_noop().labels(edge_labels))
        .await
        .unwrap();
    cluster.wait_for_nodes(3).await.unwrap();
    let id = cluster
        .client()
        .submit(&edge_daemon("agentd", ""))
        .await
        .unwrap();
    wait_execs(&cluster, &id, "two edge nodes to run it", |e| {
        running_nodes(e, 1).len() == 2
    })
    .await;

    cluster.stop_agent(2).await.unwrap();
    cluster
        .set_agent_labels(2, labels(&[("role", "edge")]))
        .unwrap();
    cluster.start_agent(2).await.unwrap();
    let execs = wait_execs(&cluster, &id, "the relabelled node to run it", |e| {
        running_nodes(e, 1).len() == 3
    })
    .await;
    assert_eq!(execs.len(), 3, "{execs:#?}");
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_daemon_execution_that_exits_is_restarted_on_its_node() {
    // The real noop engine: every execution exits at once with code 0.
    let cluster = Cluster::start(ClusterConfig::new(2).noop_only().labels(edge_labels))
        .await
        .unwrap();
    cluster.wait_for_nodes(2).await.unwrap();
    let id = cluster
        .client()
        .submit(&edge_daemon("exits", ""))
        .await
        .unwrap();
    let execs = wait_execs(&cluster, &id, "a second run on every node", |e| {
        (0..2).all(|i| {
            e.iter()
                .filter(|x| x.node_id.as_str() == cluster.node_id(i))
                .filter(|x| x.compute_state.state_type == ComputeStateType::Completed)
                .count()
                >= 2
        })
    })
    .await;
    let job = cluster.orchestrator().job(&id).await.unwrap();
    assert_eq!(
        job.state.state_type,
        JobStateType::Running,
        "a daemon never completes"
    );
    for e in &execs {
        let live = execs
            .iter()
            .filter(|x| x.node_id == e.node_id && !x.is_terminal())
            .count();
        assert!(live <= 1, "never two at once on {}", e.node_id);
    }
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stopping_a_daemon_job_stops_it_on_every_node() {
    let cluster = Cluster::start(ClusterConfig::new(3).held_noop().labels(edge_labels))
        .await
        .unwrap();
    cluster.wait_for_nodes(3).await.unwrap();
    let id = cluster
        .client()
        .submit(&edge_daemon("agentd", ""))
        .await
        .unwrap();
    wait_execs(&cluster, &id, "two nodes to run it", |e| {
        running_nodes(e, 1).len() == 2
    })
    .await;
    cluster.client().stop(&id, "maintenance").await.unwrap();
    let execs = wait_execs(&cluster, &id, "every execution to be cancelled", |e| {
        e.iter()
            .all(|x| x.compute_state.state_type == ComputeStateType::Cancelled)
    })
    .await;
    assert_eq!(execs.len(), 2);
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn updating_a_daemon_job_by_name_rolls_every_node_to_the_new_version() {
    let cluster = Cluster::start(ClusterConfig::new(3).held_noop().labels(edge_labels))
        .await
        .unwrap();
    cluster.wait_for_nodes(3).await.unwrap();
    let id = cluster
        .client()
        .submit(&edge_daemon("agentd", "Meta:\n  release: \"1\"\n"))
        .await
        .unwrap();
    let v1 = wait_execs(&cluster, &id, "version 1 on both edge nodes", |e| {
        running_nodes(e, 1).len() == 2
    })
    .await;

    let again = cluster
        .client()
        .submit(&edge_daemon("agentd", "Meta:\n  release: \"2\"\n"))
        .await
        .unwrap();
    assert_eq!(again, id, "same name, same job");
    let execs = wait_execs(&cluster, &id, "version 2 everywhere, version 1 gone", |e| {
        running_nodes(e, 2).len() == 2
            && e.iter()
                .filter(|x| x.job_version == 1)
                .all(|x| x.compute_state.state_type == ComputeStateType::Cancelled)
    })
    .await;
    assert_eq!(running_nodes(&execs, 2), running_nodes(&v1, 1));
    assert_eq!(execs.len(), 4, "one new execution per node: {execs:#?}");
    cluster.shutdown().await;
}

fn service(count: u32) -> Job {
    job(&format!(
        "Name: web
Type: service
Count: {count}
Tasks:
  - Name: t
    Engine:
      Type: noop
"
    ))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn service_replicas_that_exit_are_restarted() {
    let cluster = Cluster::start(ClusterConfig::new(2).noop_only())
        .await
        .unwrap();
    cluster.wait_for_nodes(2).await.unwrap();
    let id = cluster.client().submit(&service(2)).await.unwrap();
    let execs = wait_execs(&cluster, &id, "each replica to run twice", |e| {
        (0..2).all(|p| {
            e.iter()
                .filter(|x| x.partition_index == p && x.is_terminal())
                .count()
                >= 2
        })
    })
    .await;
    assert!(
        execs.iter().all(|e| e.partition_index < 2),
        "replicas stay within the count"
    );
    let job = cluster.orchestrator().job(&id).await.unwrap();
    assert_eq!(job.state.state_type, JobStateType::Running);
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_service_replica_on_a_lost_node_is_placed_on_another_node() {
    let cluster = Cluster::start(
        ClusterConfig::new(3)
            .held_noop()
            .with_link_proxies()
            .node_lost_grace(Duration::from_millis(500)),
    )
    .await
    .unwrap();
    cluster.wait_for_nodes(3).await.unwrap();
    let id = cluster.client().submit(&service(2)).await.unwrap();
    let before = wait_execs(&cluster, &id, "two replicas", |e| {
        e.iter().filter(|x| is_running(x)).count() == 2
    })
    .await;
    let victim = before[0].node_id.to_string();
    let index = cluster
        .node_ids()
        .iter()
        .position(|n| *n == victim)
        .unwrap();

    cluster.proxy(index).unwrap().cut();
    let execs = wait_execs(&cluster, &id, "the replica to move", |e| {
        e.iter()
            .filter(|x| is_running(x) && x.node_id.as_str() != victim)
            .count()
            == 2
    })
    .await;
    let lost = execs.iter().find(|e| e.id == before[0].id).unwrap();
    assert_eq!(lost.compute_state.state_type, ComputeStateType::Failed);
    assert!(lost.compute_state.message.contains("lost"), "{lost:?}");
    let moved = execs
        .iter()
        .find(|e| e.previous_execution == lost.id.as_str())
        .expect("the new replica names the one it replaces");
    assert_eq!(moved.partition_index, lost.partition_index);

    // When the node returns, its old copy is stopped, and the count stays at two.
    cluster.proxy(index).unwrap().restore();
    cluster
        .wait_node_status(&victim, ConnectionStatus::Connected)
        .await
        .unwrap();
    let deadline = tokio::time::Instant::now() + cluster.wait_limit;
    let late = loop {
        let history = cluster.orchestrator().history(&id, 0).await.unwrap();
        if let Some(h) = history
            .into_iter()
            .find(|h| h.event.message.contains("not counted"))
        {
            break h;
        }
        assert!(tokio::time::Instant::now() < deadline, "no late report");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!(late.execution_id, lost.id.as_str());
    assert!(
        late.event.message.starts_with("late cancelled report"),
        "{}",
        late.event.message
    );
    let execs = cluster.client().executions(&id).await.unwrap();
    assert_eq!(execs.iter().filter(|e| !e.is_terminal()).count(), 2);
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_agent_restart_never_runs_a_completed_execution_again() {
    let mut cluster = Cluster::start(ClusterConfig::new(1).noop_only())
        .await
        .unwrap();
    cluster.wait_for_nodes(1).await.unwrap();
    let first = cluster
        .client()
        .submit(&job(
            "Type: batch\nTasks:\n  - Name: t\n    Engine:\n      Type: noop\n",
        ))
        .await
        .unwrap();
    cluster
        .wait_job_state(&first, |j| j.state.state_type == JobStateType::Completed)
        .await
        .unwrap();

    cluster.stop_agent(0).await.unwrap();
    cluster.start_agent(0).await.unwrap();
    cluster.wait_for_nodes(1).await.unwrap();
    // The link delivers in order, so once a job submitted after the restart has completed,
    // everything the restarted agent replayed or re-ran has reached the orchestrator too.
    let barrier = cluster
        .client()
        .submit(&job(
            "Type: batch\nTasks:\n  - Name: t\n    Engine:\n      Type: noop\n",
        ))
        .await
        .unwrap();
    cluster
        .wait_job_state(&barrier, |j| j.state.state_type == JobStateType::Completed)
        .await
        .unwrap();

    let execs = cluster.client().executions(&first).await.unwrap();
    assert_eq!(execs.len(), 1);
    assert_eq!(
        execs[0].compute_state.state_type,
        ComputeStateType::Completed
    );
    assert_eq!(execs[0].desired_state.state_type, DesiredStateType::Stopped);
    let history = cluster.orchestrator().history(&first, 0).await.unwrap();
    let accepted = history
        .iter()
        .filter(|h| h.event.message.starts_with("accepted by node"))
        .count();
    let completed = history
        .iter()
        .filter(|h| h.event.message.contains("execution completed"))
        .count();
    assert_eq!((accepted, completed), (1, 1), "{history:#?}");
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_ops_job_counts_a_node_offline_until_its_deadline_as_unreachable() {
    let cluster = Cluster::start(
        ClusterConfig::new(3)
            .noop_only()
            .with_link_proxies()
            .disconnect_timeout(Duration::from_millis(500)),
    )
    .await
    .unwrap();
    cluster.wait_for_nodes(3).await.unwrap();
    // A silent partition: the orchestrator still counts the node as connected and sends it
    // its share, which never arrives.
    cluster.proxy(2).unwrap().freeze();
    let mut ops = job("Type: ops\nTasks:\n  - Name: t\n    Engine:\n      Type: noop\n");
    ops.tasks[0].timeouts.total_timeout = 3;
    let id = cluster.client().submit(&ops).await.unwrap();
    let done = cluster
        .wait_job_state(&id, |j| j.state.state_type.is_terminal())
        .await
        .unwrap();
    assert_eq!(
        done.state.state_type,
        JobStateType::Failed,
        "{:?}",
        done.state
    );
    assert!(
        done.state
            .message
            .contains("2 succeeded, 0 failed (exit≠0), 0 errored, 1 unreachable"),
        "{}",
        done.state.message
    );
    let execs = cluster.client().executions(&id).await.unwrap();
    let unreachable: Vec<&str> = execs
        .iter()
        .filter(|e| e.compute_state.message.starts_with("unreachable:"))
        .map(|e| e.node_id.as_str())
        .collect();
    assert_eq!(unreachable, [cluster.node_id(2)]);
    cluster.proxy(2).unwrap().restore();
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn control_plane_labels_move_a_daemon_job_and_outlive_a_reconnect() {
    let mut cluster = Cluster::start(ClusterConfig::new(3).held_noop().labels(edge_labels))
        .await
        .unwrap();
    cluster.wait_for_nodes(3).await.unwrap();
    let id = cluster
        .client()
        .submit(&edge_daemon("agentd", ""))
        .await
        .unwrap();
    wait_execs(&cluster, &id, "the two edge nodes to run it", |e| {
        running_nodes(e, 1).len() == 2
    })
    .await;
    let (core, edge) = (cluster.node_id(2), cluster.node_id(0));

    // Through the REST API, as `shoal node label` does.
    cluster
        .client()
        .node_labels(&core, &labels(&[("role", "edge")]), &[])
        .await
        .unwrap();
    wait_execs(&cluster, &id, "the relabelled node to run it", |e| {
        running_nodes(e, 1).contains(&core)
    })
    .await;
    cluster
        .client()
        .node_labels(&edge, &labels(&[("role", "core")]), &[])
        .await
        .unwrap();
    let execs = wait_execs(
        &cluster,
        &id,
        "the node that stopped matching to stop",
        |e| {
            e.iter().any(|x| {
                x.node_id.as_str() == edge
                    && x.compute_state.state_type == ComputeStateType::Cancelled
            })
        },
    )
    .await;
    let stopped = execs.iter().find(|x| x.node_id.as_str() == edge).unwrap();
    let history = cluster.orchestrator().history(&id, 0).await.unwrap();
    assert!(
        history.iter().any(|h| h.execution_id == stopped.id.as_str()
            && h.event.message.contains("no longer matches")),
        "the history says why it was stopped: {history:#?}"
    );

    // The node still presents role=edge itself; the control-plane label wins after a restart.
    cluster.stop_agent(0).await.unwrap();
    cluster.start_agent(0).await.unwrap();
    cluster.wait_for_nodes(3).await.unwrap();
    let node = cluster
        .nodes()
        .await
        .into_iter()
        .find(|n| n.info.node_id == edge)
        .unwrap();
    assert_eq!(
        node.info.labels.get("role").map(String::as_str),
        Some("core")
    );
    let execs = cluster.client().executions(&id).await.unwrap();
    assert_eq!(
        running_nodes(&execs, 1),
        [cluster.node_id(1), core.clone()],
        "{execs:#?}"
    );

    // Removing the control-plane label lets the node's own label count again.
    cluster
        .client()
        .node_labels(&edge, &BTreeMap::new(), &["role".to_string()])
        .await
        .unwrap();
    cluster.stop_agent(0).await.unwrap();
    cluster.start_agent(0).await.unwrap();
    wait_execs(&cluster, &id, "the node to run it again", |e| {
        running_nodes(e, 1).len() == 3
    })
    .await;
    cluster.shutdown().await;
}
