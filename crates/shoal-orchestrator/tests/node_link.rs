//! Nodes as the orchestrator sees them, driven through the real link task (`serve_link`) over
//! in-memory links (`shoal_transport::pair`) standing in for the WebSocket: who may connect (join tokens traded for
//! node keys, revocation), a node that reports on another node's execution, cordons, and the
//! host samples that heartbeats carry (fleet metrics).

use std::time::Duration;

use futures::{SinkExt, StreamExt};
use shoal_orchestrator::{Orchestrator, OrchestratorConfig, serve_link};
use shoal_transport::{ExecutionReport, Frame, MemoryLink, Message};
use shoal_types::enrolment::JoinTokenRequest;
use shoal_types::fleet::FleetReport;
use shoal_types::{
    ComputeNodeInfo, ComputeStateType, HostSample, Job, NodeInfo, NodeType, Resources, spec,
};

/// A node's end of a link: what it sends and what the orchestrator answers.
struct Link(MemoryLink);

impl Link {
    async fn next(&mut self) -> Option<Frame> {
        let text = tokio::time::timeout(Duration::from_secs(10), self.0.next())
            .await
            .expect("the orchestrator answers within 10 s")?;
        Some(Frame::decode(&text.expect("an in-memory link does not fail")).expect("a frame"))
    }

    async fn send(&mut self, frame: Frame) {
        self.0.send(frame.encode()).await.expect("link open");
    }

    /// Waits for the orchestrator to close the link, skipping what it still sends.
    async fn closed(&mut self) {
        while self.next().await.is_some() {}
    }
}

fn node_info(id: &str, role: &str) -> NodeInfo {
    let capacity = Resources {
        cpu: 4.0,
        memory: 8 << 30,
        disk: 100 << 30,
        gpu: 0,
    };
    NodeInfo {
        node_id: id.into(),
        node_type: NodeType::Compute,
        labels: [("role".to_string(), role.to_string())].into(),
        compute_node_info: ComputeNodeInfo {
            execution_engines: vec!["noop".into()],
            max_capacity: capacity,
            available_capacity: capacity,
            max_job_requirements: capacity,
            ..Default::default()
        },
        ..Default::default()
    }
}

/// Dials as `id` with `token` and `key`; returns the link and the first answer.
async fn dial(orch: &Orchestrator, id: &str, token: Option<&str>, key: &str) -> (Link, Frame) {
    dial_as(orch, node_info(id, id), token, key).await
}

/// [`dial`] as the node `info`.
async fn dial_as(
    orch: &Orchestrator,
    info: NodeInfo,
    token: Option<&str>,
    key: &str,
) -> (Link, Frame) {
    let (node_end, orchestrator_end) = shoal_transport::pair();
    tokio::spawn(serve_link(orch.clone(), orchestrator_end));
    let mut link = Link(node_end);
    link.send(Frame::Hello {
        node: Box::new(info),
        applied_seq: 0,
        token: token.map(str::to_string),
        node_key: Some(key.to_string()),
    })
    .await;
    let first = link.next().await.expect("an answer to Hello");
    (link, first)
}

fn refusal(frame: &Frame) -> &str {
    match frame {
        Frame::Refused { reason } => reason,
        other => panic!("expected a refusal, got {other:?}"),
    }
}

fn welcomed(frame: &Frame) -> bool {
    matches!(frame, Frame::Welcome { .. })
}

fn enrolling(dir: &std::path::Path) -> Orchestrator {
    let mut cfg = OrchestratorConfig::new(dir);
    cfg.require_join_token = true;
    Orchestrator::start(cfg).expect("orchestrator")
}

async fn token(orch: &Orchestrator, ttl: &str, uses: Option<u32>) -> String {
    orch.create_join_token(JoinTokenRequest {
        ttl: ttl.into(),
        uses,
        description: String::new(),
    })
    .await
    .expect("join token")
    .secret
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_enrols_with_a_join_token_and_its_key_alone_lets_it_back_after_the_token_is_gone_and_a_restart()
 {
    let dir = tempfile::tempdir().unwrap();
    let orch = enrolling(dir.path());
    let t = token(&orch, "1h", None).await;
    let (link, first) = dial(&orch, "n-1", Some(&t), "key-1").await;
    assert!(welcomed(&first), "{first:?}");
    let id = t.split('.').next().unwrap();
    let enrolment = orch.node_enrolment("n-1").await.unwrap().expect("enrolled");
    assert_eq!(enrolment.token_id, id);
    drop(link);

    orch.delete_join_token(id).await.unwrap();
    drop(orch);
    let orch = enrolling(dir.path());
    let (_link, first) = dial(&orch, "n-1", None, "key-1").await;
    assert!(
        welcomed(&first),
        "the node key alone lets an enrolled node in: {first:?}"
    );

    // Another machine claiming the enrolled node's id, even with a valid token, is not it.
    let t2 = token(&orch, "1h", None).await;
    let (_l, first) = dial(&orch, "n-1", Some(&t2), "other-key").await;
    assert!(
        refusal(&first).contains("enrolled with another node key"),
        "{first:?}"
    );
    // The deleted token lets no new node in.
    let (_l, first) = dial(&orch, "n-2", Some(&t), "key-2").await;
    assert!(
        refusal(&first).contains(&format!("join token {id} unknown or expired")),
        "{first:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_expired_and_used_up_join_tokens_are_refused_and_leave_no_trace() {
    let dir = tempfile::tempdir().unwrap();
    let orch = enrolling(dir.path());

    let (_l, first) = dial(&orch, "n-1", None, "k").await;
    assert!(
        refusal(&first).contains("no join token was given"),
        "{first:?}"
    );

    let good = token(&orch, "1h", None).await;
    let (id, _) = good.split_once('.').unwrap();
    let (_l, first) = dial(&orch, "n-1", Some(&format!("{id}.wrong-secret")), "k").await;
    assert!(refusal(&first).contains("unknown or expired"), "{first:?}");

    // A token that expires a nanosecond after it is made has expired by the time it is used.
    let expired = token(&orch, "1ns", None).await;
    let (_l, first) = dial(&orch, "n-1", Some(&expired), "k").await;
    assert!(refusal(&first).contains("unknown or expired"), "{first:?}");

    let once = token(&orch, "1h", Some(1)).await;
    let (_a, first) = dial(&orch, "n-a", Some(&once), "ka").await;
    assert!(welcomed(&first), "{first:?}");
    let (_b, first) = dial(&orch, "n-b", Some(&once), "kb").await;
    assert!(
        refusal(&first).contains("unknown or expired"),
        "a one-use token enrols one node: {first:?}"
    );

    // Refused nodes were not recorded.
    let ids: Vec<String> = orch
        .nodes()
        .await
        .unwrap()
        .into_iter()
        .map(|n| n.info.node_id)
        .collect();
    assert_eq!(ids, vec!["n-a".to_string()]);
    assert!(orch.node_enrolment("n-1").await.unwrap().is_none());

    for (ttl, uses, needle) in [
        ("soon", None, "is not valid"),
        ("-5m", None, "is not valid"),
        ("1h", Some(0), "0 uses"),
    ] {
        let e = orch
            .create_join_token(JoinTokenRequest {
                ttl: ttl.into(),
                uses,
                description: String::new(),
            })
            .await
            .unwrap_err();
        assert!(e.to_string().contains(needle), "{ttl}: {e}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revoked_node_is_dropped_and_kept_out_until_deleted_while_other_nodes_stay() {
    let dir = tempfile::tempdir().unwrap();
    let orch = enrolling(dir.path());
    let t = token(&orch, "1h", None).await;
    let (mut a, first) = dial(&orch, "n-a", Some(&t), "ka").await;
    assert!(welcomed(&first));
    let (mut b, first) = dial(&orch, "n-b", Some(&t), "kb").await;
    assert!(welcomed(&first));

    orch.node_action("n-a", "revoke").await.unwrap();
    a.closed().await;
    let (_a, first) = dial(&orch, "n-a", Some(&t), "ka").await;
    assert!(refusal(&first).contains("revoked"), "{first:?}");

    // n-b's link is still served: a heartbeat keeps it, and it is listed connected.
    b.send(Frame::Heartbeat {
        available: Resources::default(),
        running: 0,
        sample: None,
    })
    .await;
    let nodes = orch.nodes().await.unwrap();
    let nb = nodes.iter().find(|n| n.info.node_id == "n-b").unwrap();
    assert_eq!(nb.connection, shoal_types::ConnectionStatus::Connected);

    orch.node_action("n-a", "delete").await.unwrap();
    let (_a, first) = dial(&orch, "n-a", Some(&t), "new-key").await;
    assert!(
        welcomed(&first),
        "a deleted node enrols again with a join token: {first:?}"
    );
}

fn job_for(role: &str) -> Job {
    let yaml = format!(
        r#"
Name: on-{role}
Type: batch
Constraints:
  - {{ Key: role, Operator: "=", Values: [{role}] }}
Tasks:
  - Name: main
    Engine: {{ Type: noop }}
"#
    );
    let mut job = spec::parse_job(&yaml).expect("test job parses");
    spec::apply_defaults(&mut job);
    job
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_reporting_on_another_nodes_execution_is_cut_off_and_the_report_ignored() {
    let dir = tempfile::tempdir().unwrap();
    let orch = Orchestrator::start(OrchestratorConfig::new(dir.path())).expect("orchestrator");
    let (mut a, first) = dial(&orch, "n-a", None, "ka").await;
    assert!(welcomed(&first));
    let (mut b, first) = dial(&orch, "n-b", None, "kb").await;
    assert!(welcomed(&first));

    let job_id = orch.submit(job_for("n-b")).await.unwrap().job_id;
    let execution = next_run(&mut b).await;

    a.send(Frame::Msg {
        seq: 1,
        msg: Message::Update(ExecutionReport {
            execution_id: execution.id.to_string(),
            job_id: job_id.clone(),
            state: ComputeStateType::Failed,
            message: "spoofed".into(),
            retryable: false,
            run_output: None,
            published: None,
        }),
    })
    .await;
    a.closed().await;
    let executions = orch.executions(&job_id).await.unwrap();
    assert_eq!(executions.len(), 1);
    assert_ne!(
        executions[0].compute_state.state_type,
        ComputeStateType::Failed,
        "the spoofed report changed nothing"
    );
}

/// The next `Run` on a link.
async fn next_run(link: &mut Link) -> Box<shoal_types::Execution> {
    loop {
        match link.next().await.expect("link open") {
            Frame::Msg {
                msg: Message::Run { execution },
                ..
            } => return execution,
            _ => continue,
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cordoned_node_gets_no_new_work_until_uncordoned_and_the_job_waits_saying_why() {
    let dir = tempfile::tempdir().unwrap();
    let orch = Orchestrator::start(OrchestratorConfig::new(dir.path())).expect("orchestrator");
    let (mut a, first) = dial(&orch, "n-a", None, "ka").await;
    assert!(welcomed(&first));

    orch.node_action("n-a", "cordon").await.unwrap();
    let again = orch.node_action("n-a", "cordon").await.unwrap_err();
    assert!(again.to_string().contains("already cordoned"), "{again}");
    let job_id = orch.submit(job_for("n-a")).await.unwrap().job_id;
    let details = orch.job_details(&job_id).await.unwrap();
    assert!(
        details.executions.is_empty(),
        "nothing placed on a cordoned node"
    );
    assert!(
        details
            .placement
            .iter()
            .any(|p| p.node_id == "n-a" && p.reason.contains("cordoned") && p.transient),
        "{:?}",
        details.placement
    );
    assert_ne!(
        details.job.state.state_type,
        shoal_types::JobStateType::Failed,
        "the job waits for the node instead of failing"
    );

    orch.node_action("n-a", "uncordon").await.unwrap();
    let run = next_run(&mut a).await;
    assert_eq!(run.job_id.as_str(), job_id);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn draining_a_node_moves_its_batch_work_to_another_node() {
    let dir = tempfile::tempdir().unwrap();
    let orch = Orchestrator::start(OrchestratorConfig::new(dir.path())).expect("orchestrator");
    let (mut a, first) = dial(&orch, "n-a", None, "ka").await;
    assert!(welcomed(&first));
    // Only n-a exists when the job is placed, so the work starts there.
    let mut job = spec::parse_job(
        "Name: long\nType: batch\nTasks:\n  - Name: main\n    Engine: { Type: noop }\n",
    )
    .unwrap();
    spec::apply_defaults(&mut job);
    let job_id = orch.submit(job).await.unwrap().job_id;
    let on_a = next_run(&mut a).await;
    let (mut b, first) = dial(&orch, "n-b", None, "kb").await;
    assert!(welcomed(&first));

    orch.node_action("n-a", "drain").await.unwrap();
    let on_b = next_run(&mut b).await;
    assert_eq!(on_b.job_id.as_str(), job_id);
    let executions = orch.executions(&job_id).await.unwrap();
    let moved = executions.iter().find(|e| e.id == on_a.id).unwrap();
    assert_eq!(moved.compute_state.state_type, ComputeStateType::Failed);
    assert!(
        moved.compute_state.message.contains("drained"),
        "{}",
        moved.compute_state.message
    );
    // n-a is told to stop the work it had.
    loop {
        match a.next().await.expect("a's link open") {
            Frame::Msg {
                msg: Message::Cancel { execution_id, .. },
                ..
            } if execution_id == on_a.id.as_str() => break,
            _ => continue,
        }
    }
    let nodes = orch.nodes().await.unwrap();
    let na = nodes.iter().find(|n| n.info.node_id == "n-a").unwrap();
    assert!(na.cordoned && na.drained);
    orch.node_action("n-a", "uncordon").await.unwrap();
    let nodes = orch.nodes().await.unwrap();
    let na = nodes.iter().find(|n| n.info.node_id == "n-a").unwrap();
    assert!(!na.cordoned && !na.drained);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_approval_required_a_new_node_waits_pending_and_runs_the_next_job_once_approved() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = OrchestratorConfig::new(dir.path());
    cfg.require_approval = true;
    let orch = Orchestrator::start(cfg).expect("orchestrator");
    let (mut a, first) = dial(&orch, "n-a", None, "ka").await;
    assert!(
        welcomed(&first),
        "a pending node is connected, just given no work"
    );
    let node = orch.node("n-a").await.unwrap();
    assert_eq!(node.membership, shoal_types::Membership::Pending);

    let refused = orch.submit(job_for("n-a")).await.unwrap();
    let details = orch.job_details(&refused.job_id).await.unwrap();
    assert!(details.executions.is_empty());
    assert!(
        details
            .placement
            .iter()
            .any(|p| p.node_id == "n-a" && p.reason.contains("not approved")),
        "{:?}",
        details.placement
    );

    orch.node_action("n-a", "approve").await.unwrap();
    let mut next = job_for("n-a");
    next.name = "after-approval".into();
    let job_id = orch.submit(next).await.unwrap().job_id;
    let run = next_run(&mut a).await;
    assert_eq!(run.job_id.as_str(), job_id);
}

/// A node in `region` that has dialled in and sent one heartbeat with a sample of `cpu` percent
/// and `memory_used` bytes.
async fn reporting_node(
    orch: &Orchestrator,
    id: &str,
    region: &str,
    cpu: f64,
    memory_used: u64,
) -> Link {
    let mut info = node_info(id, id);
    info.labels.insert("region".into(), region.into());
    let (mut link, first) = dial_as(orch, info, None, id).await;
    assert!(welcomed(&first), "{first:?}");
    link.send(Frame::Heartbeat {
        available: Resources::default(),
        running: 1,
        sample: Some(Box::new(HostSample {
            cpu_percent: cpu,
            memory_used,
            memory_total: 8 << 30,
            temperature_c: (region == "us").then_some(61.5),
            ..Default::default()
        })),
    })
    .await;
    link
}

/// Waits (bounded) until the fleet report by region satisfies `cond`; heartbeats are applied
/// by the link task with no answer to wait on.
async fn fleet_until(
    orch: &Orchestrator,
    what: &str,
    cond: impl Fn(&FleetReport) -> bool,
) -> FleetReport {
    for _ in 0..1000 {
        let r = orch.fleet_metrics("region", true).await.unwrap();
        if cond(&r) {
            return r;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("fleet metrics never showed {what}")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn heartbeat_samples_are_served_grouped_by_region_and_vanish_with_their_node() {
    let dir = tempfile::tempdir().unwrap();
    let orch = Orchestrator::start(OrchestratorConfig::new(dir.path())).expect("orchestrator");
    let a = reporting_node(&orch, "n-a", "eu", 10.0, 1 << 30).await;
    let _b = reporting_node(&orch, "n-b", "eu", 30.0, 3 << 30).await;
    let _c = reporting_node(&orch, "n-c", "us", 50.0, 2 << 30).await;
    // An agent older than fleet metrics heartbeats without a sample: connected, not reporting.
    let (mut old, first) = dial(&orch, "n-old", None, "k-old").await;
    assert!(welcomed(&first));
    old.send(Frame::Heartbeat {
        available: Resources::default(),
        running: 0,
        sample: None,
    })
    .await;

    let r = fleet_until(&orch, "three nodes", |r| r.reporting == 3).await;
    let [eu, us] = &r.groups[..] else {
        panic!("two regions: {r:?}")
    };
    assert_eq!((eu.value.as_str(), eu.nodes, us.nodes), ("eu", 2, 1));
    assert_eq!(eu.cpu_percent_avg, 20.0);
    assert_eq!(eu.cpu_percent_max, 30.0);
    assert_eq!(eu.memory_used, 4 << 30, "summed");
    assert_eq!(eu.running_executions, 2);
    assert_eq!(
        (eu.temperature_c_max, us.temperature_c_max),
        (None, Some(61.5))
    );
    let busiest: Vec<&str> = r.nodes.iter().map(|n| n.node_id.as_str()).collect();
    assert_eq!(busiest, ["n-c", "n-b", "n-a"]);
    assert!(r.notes.is_empty(), "{:?}", r.notes);

    let mut text = shoal_orchestrator::metrics::Exposition::default();
    orch.render_fleet_metrics("region", true, &mut text)
        .await
        .unwrap();
    let text = text.finish();
    assert!(
        text.contains("shoal_node_memory_used_bytes{node_id=\"n-a\",region=\"eu\"} 1073741824\n"),
        "{text}"
    );
    assert!(
        text.contains("shoal_fleet_nodes{region=\"eu\"} 2\n"),
        "{text}"
    );

    // The link closes: its node's sample goes with it.
    drop(a);
    let r = fleet_until(&orch, "n-a gone", |r| r.reporting == 2).await;
    assert!(r.nodes.iter().all(|n| n.node_id != "n-a"));
    assert_eq!(r.groups[0].nodes, 1, "eu has n-b left");

    // Deleted: gone too. Relabelled: its sample moves to the new group at once.
    orch.node_action("n-b", "delete").await.unwrap();
    orch.node_labels(
        "n-c",
        [("region".to_string(), "ap".to_string())].into(),
        vec![],
    )
    .await
    .unwrap();
    let r = fleet_until(&orch, "n-b gone and n-c in ap", |r| {
        r.reporting == 1 && r.groups.len() == 1 && r.groups[0].value == "ap"
    })
    .await;
    assert_eq!(r.nodes[0].node_id, "n-c");

    // A label no node has: no groups, and a note that says which labels there are.
    let r = orch.fleet_metrics("regoin", false).await.unwrap();
    assert!(r.groups.is_empty());
    assert!(
        r.notes[0].contains("\"regoin\"") && r.notes[0].contains("region"),
        "{:?}",
        r.notes
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_that_falls_silent_drops_out_of_fleet_metrics_and_its_link_is_closed() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = OrchestratorConfig::new(dir.path());
    cfg.disconnect_timeout = Duration::from_millis(300);
    let orch = Orchestrator::start(cfg).expect("orchestrator");
    let mut quiet = reporting_node(&orch, "n-quiet", "eu", 10.0, 1 << 30).await;
    fleet_until(&orch, "the sample", |r| r.reporting == 1).await;
    // No further heartbeat: once the disconnect timeout passes the sample is not served,
    // and the orchestrator closes the link.
    fleet_until(&orch, "the silent node gone", |r| {
        r.reporting == 0 && r.groups.is_empty()
    })
    .await;
    quiet.closed().await;
    let node = orch.node("n-quiet").await.unwrap();
    assert_eq!(node.connection, shoal_types::ConnectionStatus::Disconnected);
    let r = orch.fleet_metrics("region", true).await.unwrap();
    assert!(r.nodes.is_empty(), "{r:?}");
}
