//! The harness against itself: jobs run across its agents, and its link proxies partition them.

use std::time::Duration;

use shoal_testkit::{Cluster, ClusterConfig, ProxyMode};
use shoal_types::{ComputeStateType, ConnectionStatus, Job, JobStateType};

/// Waits until the orchestrator has recorded why `node` was lost, and returns that reason.
async fn lost_reason(cluster: &Cluster, node: &str) -> String {
    let nodes = cluster
        .wait_nodes(&format!("node {node} to be recorded as lost"), |nodes| {
            nodes.iter().any(|n| {
                n.info.node_id == node
                    && n.connection == ConnectionStatus::Disconnected
                    && !n.connection_state.last_error.is_empty()
            })
        })
        .await
        .unwrap();
    let n = nodes.iter().find(|n| n.info.node_id == node).unwrap();
    n.connection_state.last_error.clone()
}

fn noop_batch(count: u32) -> Job {
    shoal_types::spec::parse_job(&format!(
        "Type: batch\nCount: {count}\nTasks:\n  - Name: t\n    Engine:\n      Type: noop\n"
    ))
    .expect("a valid spec")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batch_job_with_count_three_completes_on_three_agents() {
    let cluster = Cluster::start(ClusterConfig::new(3).noop_only())
        .await
        .unwrap();
    cluster.wait_for_nodes(3).await.unwrap();

    let id = cluster.client().submit(&noop_batch(3)).await.unwrap();
    let job = cluster
        .wait_job_state(&id, |j| j.state.state_type.is_terminal())
        .await
        .unwrap();
    assert_eq!(job.state.state_type, JobStateType::Completed, "{job:?}");

    let execs = cluster.client().executions(&id).await.unwrap();
    assert_eq!(execs.len(), 3, "one execution per partition");
    assert!(
        execs
            .iter()
            .all(|e| e.compute_state.state_type == ComputeStateType::Completed)
    );
    let mut nodes: Vec<_> = execs.iter().map(|e| e.node_id.to_string()).collect();
    nodes.sort();
    nodes.dedup();
    assert_eq!(
        nodes,
        cluster.node_ids(),
        "partitions spread over the agents"
    );
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cutting_an_agents_link_disconnects_it_and_restoring_reconnects_it() {
    let cluster = Cluster::start(ClusterConfig::new(2).noop_only().with_link_proxies())
        .await
        .unwrap();
    cluster.wait_for_nodes(2).await.unwrap();
    let victim = cluster.node_id(1);

    cluster.proxy(1).unwrap().cut();
    let why = lost_reason(&cluster, &victim).await;
    assert!(why.contains("link closed"), "{why}");
    assert_eq!(
        cluster
            .wait_node_status(&cluster.node_id(0), ConnectionStatus::Connected)
            .await
            .unwrap()
            .connection,
        ConnectionStatus::Connected,
        "the other agent is untouched"
    );

    cluster.proxy(1).unwrap().restore();
    cluster
        .wait_node_status(&victim, ConnectionStatus::Connected)
        .await
        .unwrap();
    assert!(
        cluster.proxy(1).unwrap().accepted() >= 2,
        "the agent redialled through the proxy"
    );
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_partition_is_detected_by_the_disconnect_timeout() {
    let cluster = Cluster::start(
        ClusterConfig::new(1)
            .noop_only()
            .with_link_proxies()
            .disconnect_timeout(Duration::from_millis(600)),
    )
    .await
    .unwrap();
    cluster.wait_for_nodes(1).await.unwrap();
    let id = cluster.node_id(0);

    // Frozen: the sockets stay open, so only missing heartbeats can tell.
    cluster.proxy(0).unwrap().freeze();
    assert_eq!(cluster.proxy(0).unwrap().mode(), ProxyMode::Frozen);
    let why = lost_reason(&cluster, &id).await;
    assert!(why.contains("no heartbeat"), "{why}");

    cluster.proxy(0).unwrap().restore();
    cluster
        .wait_node_status(&id, ConnectionStatus::Connected)
        .await
        .unwrap();
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_submitted_during_a_cut_reaches_the_agent_after_restore() {
    let cluster = Cluster::start(
        ClusterConfig::new(1)
            .noop_only()
            .with_link_proxies()
            .node_lost_grace(Duration::from_secs(600)),
    )
    .await
    .unwrap();
    cluster.wait_for_nodes(1).await.unwrap();
    let id = cluster.client().submit(&noop_batch(1)).await.unwrap();
    cluster
        .wait_job_state(&id, |j| j.state.state_type == JobStateType::Completed)
        .await
        .unwrap();

    cluster.proxy(0).unwrap().cut();
    cluster
        .wait_node_status(&cluster.node_id(0), ConnectionStatus::Disconnected)
        .await
        .unwrap();
    // With no connected node the job waits in the queue instead of failing.
    let mut queued = noop_batch(1);
    queued.tasks[0].timeouts.queue_timeout = 600;
    let id = cluster.client().submit(&queued).await.unwrap();
    let waiting = cluster.orchestrator().job(&id).await.unwrap();
    assert!(
        !waiting.state.state_type.is_terminal(),
        "{:?}",
        waiting.state
    );

    cluster.proxy(0).unwrap().restore();
    cluster
        .wait_job_state(&id, |j| j.state.state_type == JobStateType::Completed)
        .await
        .unwrap();
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stopped_agent_restarts_with_its_id_and_takes_work_again() {
    let mut cluster = Cluster::start(ClusterConfig::new(2).noop_only())
        .await
        .unwrap();
    cluster.wait_for_nodes(2).await.unwrap();
    cluster.stop_agent(0).await.unwrap();
    cluster
        .wait_node_status(&cluster.node_id(0), ConnectionStatus::Disconnected)
        .await
        .unwrap();
    assert!(
        cluster.stop_agent(0).await.is_err(),
        "stopping twice is an error"
    );

    cluster.start_agent(0).await.unwrap();
    cluster.wait_for_nodes(2).await.unwrap();
    assert_eq!(cluster.nodes().await.len(), 2, "same id, no new node");

    let id = cluster.client().submit(&noop_batch(2)).await.unwrap();
    let job = cluster
        .wait_job_state(&id, |j| j.state.state_type.is_terminal())
        .await
        .unwrap();
    assert_eq!(job.state.state_type, JobStateType::Completed);
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn agents_with_in_memory_stores_run_jobs_without_ledger_files() {
    let cluster = Cluster::start(ClusterConfig::new(2).noop_only().in_memory_stores())
        .await
        .unwrap();
    cluster.wait_for_nodes(2).await.unwrap();
    let id = cluster.client().submit(&noop_batch(2)).await.unwrap();
    let job = cluster
        .wait_job_state(&id, |j| j.state.state_type.is_terminal())
        .await
        .unwrap();
    assert_eq!(job.state.state_type, JobStateType::Completed);
    for i in 0..2 {
        let ledger = cluster
            .data_dir()
            .join(format!("agent-{i}/compute/state.db"));
        assert!(!ledger.exists(), "{} was written", ledger.display());
    }
    cluster.shutdown().await;
}

/// A batch job running a WASI module that sleeps `ms` milliseconds, reserving 1 CPU and 1 GiB.
#[cfg(feature = "wasm")]
fn sleeping_wasm_job(ms: u64) -> Job {
    let wat = format!(
        r#"(module
  (import "wasi_snapshot_preview1" "poll_oneoff" (func $poll (param i32 i32 i32 i32) (result i32)))
  (memory (export "memory") 1)
  (func (export "_start")
    (i32.store8 (i32.const 8) (i32.const 0))
    (i32.store (i32.const 16) (i32.const 1))
    (i64.store (i32.const 24) (i64.const {}))
    (drop (call $poll (i32.const 0) (i32.const 64) (i32.const 1) (i32.const 128)))))"#,
        ms * 1_000_000
    );
    shoal_types::spec::parse_job_value(serde_json::json!({
        "Type": "batch",
        "Count": 1,
        "Tasks": [{
            "Name": "main",
            "Engine": { "Type": "wasm", "Params": { "EntryModule": "/app/sleep.wat" } },
            "InputSources": [{ "Target": "/app/sleep.wat",
                "Source": { "Type": "inline", "Params": { "URL": wat } } }],
            "Resources": { "CPU": "1", "Memory": "1Gi" },
        }],
    }))
    .expect("a valid spec")
}

#[cfg(feature = "wasm")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn node_capacity_shows_what_running_executions_reserve() {
    let cluster = Cluster::start(ClusterConfig::new(1)).await.unwrap();
    cluster.wait_for_nodes(1).await.unwrap();
    let id = cluster
        .client()
        .submit(&sleeping_wasm_job(1500))
        .await
        .unwrap();
    let nodes = cluster
        .wait_nodes("the execution to hold resources", |nodes| {
            nodes[0].info.compute_node_info.running_executions == 1
        })
        .await
        .unwrap();
    let info = &nodes[0].info.compute_node_info;
    assert_eq!(info.available_capacity.cpu, info.max_capacity.cpu - 1.0);
    assert_eq!(
        info.available_capacity.memory,
        info.max_capacity.memory - (1 << 30)
    );

    cluster
        .wait_job_state(&id, |j| j.state.state_type == JobStateType::Completed)
        .await
        .unwrap();
    let info = cluster.nodes().await[0].info.compute_node_info.clone();
    assert_eq!(info.available_capacity, info.max_capacity, "released");
    assert_eq!(info.running_executions, 0);
    cluster.shutdown().await;
}

#[cfg(feature = "wasm")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_survives_an_agent_stopped_and_started_while_it_runs() {
    let mut cluster = Cluster::start(ClusterConfig::new(1)).await.unwrap();
    cluster.wait_for_nodes(1).await.unwrap();
    let id = cluster
        .client()
        .submit(&sleeping_wasm_job(1000))
        .await
        .unwrap();
    cluster
        .wait_nodes("the execution to run", |nodes| {
            nodes[0].info.compute_node_info.running_executions == 1
        })
        .await
        .unwrap();
    cluster.stop_agent(0).await.unwrap();
    cluster.start_agent(0).await.unwrap();
    let job = cluster
        .wait_job_state(&id, |j| j.state.state_type.is_terminal())
        .await
        .unwrap();
    let execs = cluster.client().executions(&id).await.unwrap();
    assert_eq!(job.state.state_type, JobStateType::Completed, "{execs:#?}");
    cluster.shutdown().await;
}

/// The link protocol is written against the `Link` seam, not the WebSocket: the same jobs run,
/// and an agent that restarts replays its reports, over another carrier (in-memory pairs).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_fleet_works_the_same_over_another_carrier() {
    let mut cluster = Cluster::start(ClusterConfig::new(2).noop_only().in_memory_links())
        .await
        .unwrap();
    cluster.wait_for_nodes(2).await.unwrap();

    let id = cluster.client().submit(&noop_batch(2)).await.unwrap();
    let job = cluster
        .wait_job_state(&id, |j| j.state.state_type.is_terminal())
        .await
        .unwrap();
    assert_eq!(job.state.state_type, JobStateType::Completed, "{job:?}");

    // The agent's link goes with it, and its redial comes back as the same node.
    let node = cluster.node_id(1);
    cluster.stop_agent(1).await.unwrap();
    cluster
        .wait_node_status(&node, ConnectionStatus::Disconnected)
        .await
        .unwrap();
    cluster.start_agent(1).await.unwrap();
    cluster
        .wait_node_status(&node, ConnectionStatus::Connected)
        .await
        .unwrap();
    let again = cluster.client().submit(&noop_batch(2)).await.unwrap();
    let job = cluster
        .wait_job_state(&again, |j| j.state.state_type.is_terminal())
        .await
        .unwrap();
    assert_eq!(job.state.state_type, JobStateType::Completed, "{job:?}");
    cluster.shutdown().await;
}
