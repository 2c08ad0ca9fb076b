//! A job submitted under a name that is already taken updates that job (Bacalhau v1.8).

use shoal_orchestrator::{Orchestrator, OrchestratorConfig, OrchestratorError, SubmitOptions};
use shoal_types::Job;
use shoal_types::spec;

/// A batch job that waits in the queue (no node is connected), so its state is stable.
fn queued_job(name: &str, message: &str) -> Job {
    let yaml = format!(
        r#"
Name: {name}
Type: batch
Count: 1
Tasks:
  - Name: main
    Engine:
      Type: noop
      Params: {{ Message: "{message}" }}
    Timeouts:
      QueueTimeout: 600
"#
    );
    let mut job = spec::parse_job(&yaml).expect("test job parses");
    spec::apply_defaults(&mut job);
    job
}

fn start() -> (tempfile::TempDir, Orchestrator) {
    let dir = tempfile::tempdir().expect("temp dir");
    let orch = Orchestrator::start(OrchestratorConfig::new(dir.path())).expect("orchestrator");
    (dir, orch)
}

#[tokio::test]
async fn a_changed_spec_under_the_same_name_is_a_new_version_of_the_same_job() {
    let (_dir, orch) = start();
    let first = orch.submit(queued_job("nightly", "v1")).await.unwrap();
    assert_eq!(first.version, 1);

    let second = orch.submit(queued_job("nightly", "v2")).await.unwrap();
    assert_eq!(second.job_id, first.job_id, "an update keeps the job's id");
    assert_eq!(second.version, 2);

    let job = orch.job(&first.job_id).await.unwrap();
    assert_eq!(job.version, 2);
    assert_eq!(
        job.task()
            .engine
            .params
            .get("Message")
            .and_then(|v| v.as_str()),
        Some("v2"),
        "the stored spec is the new one"
    );
    let history = orch.history(&first.job_id, 0).await.unwrap();
    assert!(
        history.iter().any(|h| h.event.message == "Job updated"
            && h.event.details.get("Version").map(String::as_str) == Some("2")),
        "history records the update: {history:?}"
    );
    let listed = orch.list_jobs(Default::default()).await.unwrap();
    assert_eq!(listed.len(), 1, "the update did not create a second job");
}

#[tokio::test]
async fn an_unchanged_spec_is_refused_unless_forced() {
    let (_dir, orch) = start();
    let first = orch.submit(queued_job("report", "same")).await.unwrap();

    let err = orch
        .submit(queued_job("report", "same"))
        .await
        .expect_err("an identical resubmission is not an update");
    assert!(matches!(err, OrchestratorError::Conflict(_)), "{err:?}");
    let msg = err.to_string();
    assert!(msg.contains("report") && msg.contains("--force"), "{msg}");

    let forced = orch
        .submit_with(queued_job("report", "same"), SubmitOptions { force: true })
        .await
        .unwrap();
    assert_eq!(forced.job_id, first.job_id);
    assert_eq!(forced.version, 2);
}

#[tokio::test]
async fn names_are_per_namespace() {
    let (_dir, orch) = start();
    let a = orch.submit(queued_job("etl", "x")).await.unwrap();
    let mut other = queued_job("etl", "x");
    other.namespace = "team-b".into();
    let b = orch.submit(other).await.unwrap();
    assert_ne!(a.job_id, b.job_id);
    assert_eq!(b.version, 1);
}
