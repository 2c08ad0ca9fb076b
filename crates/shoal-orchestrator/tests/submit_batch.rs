//! Submissions that arrive together are committed together (group commit), yet each is
//! answered on its own merits and each acknowledged job is durable.

use shoal_orchestrator::{Orchestrator, OrchestratorConfig, OrchestratorError};
use shoal_types::Job;
use shoal_types::spec;

/// A batch job that waits in the queue (no node is connected), so its state is stable.
fn queued_job(name: &str) -> Job {
    let yaml = format!(
        r#"
Name: {name}
Type: batch
Tasks:
  - Name: main
    Engine: {{ Type: noop }}
    Timeouts: {{ QueueTimeout: 600 }}
"#
    );
    let mut job = spec::parse_job(&yaml).expect("test job parses");
    spec::apply_defaults(&mut job);
    job
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_refused_submission_in_a_burst_fails_alone_and_every_acknowledged_job_survives_a_restart()
{
    let dir = tempfile::tempdir().expect("temp dir");
    let orch = Orchestrator::start(OrchestratorConfig::new(dir.path())).expect("orchestrator");
    orch.submit(queued_job("taken"))
        .await
        .expect("first submit");

    // 200 submissions sent at once: most are new jobs, every tenth repeats the taken name with
    // an unchanged spec, which is refused without touching its neighbours.
    let mut burst = tokio::task::JoinSet::new();
    for i in 0..200 {
        let orch = orch.clone();
        let name = if i % 10 == 0 {
            "taken".to_string()
        } else {
            format!("job-{i}")
        };
        burst.spawn(async move { (name.clone(), orch.submit(queued_job(&name)).await) });
    }
    let mut accepted = Vec::new();
    while let Some(done) = burst.join_next().await {
        let (name, outcome) = done.expect("submit task");
        match (name.as_str(), outcome) {
            ("taken", Err(OrchestratorError::Conflict(msg))) => {
                assert!(msg.to_string().contains("already has this spec"), "{msg}");
            }
            ("taken", other) => panic!("an unchanged resubmission must be refused: {other:?}"),
            (_, Ok(o)) => accepted.push((name, o.job_id)),
            (_, Err(e)) => panic!("{name} was refused: {e}"),
        }
    }
    assert_eq!(accepted.len(), 180);
    drop(orch);

    // Every acknowledged job is there after a restart on the same store.
    let orch = Orchestrator::start(OrchestratorConfig::new(dir.path())).expect("restart");
    for (name, id) in &accepted {
        let job = orch.job(id).await.expect("acknowledged job survives");
        assert_eq!(&job.name, name);
    }
}

#[tokio::test]
async fn a_rollout_it_cannot_carry_out_is_refused_rather_than_started_everywhere_at_once() {
    let dir = tempfile::tempdir().expect("temp dir");
    let orch = Orchestrator::start(OrchestratorConfig::new(dir.path())).expect("orchestrator");
    let mut job = spec::parse_job(
        "Name: waves\nType: service\nCount: 2\nRollout: { Batch: \"25%\" }\nTasks:\n  - Name: main\n    Engine: { Type: noop }\n",
    )
    .expect("job parses");
    spec::apply_defaults(&mut job);
    let e = orch.submit(job).await.unwrap_err();
    assert!(matches!(e, OrchestratorError::BadRequest(_)), "{e}");
    let text = e.to_string();
    assert!(
        text.contains("does not carry out rollouts of service jobs")
            && text.contains("change the Rollout block or remove it"),
        "{text}"
    );
    assert!(orch.job("waves").await.is_err(), "nothing was stored");
}
