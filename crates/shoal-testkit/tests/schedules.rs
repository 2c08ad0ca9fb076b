//! Scheduled jobs in a real in-process fleet: ticks make child jobs that run on the agents,
//! stopping the parent stops the schedule, and a restarted orchestrator (same data dir)
//! carries on without running a tick twice. Real seconds pass, but nothing asserts a timing:
//! the tests wait for outcomes.

use std::collections::BTreeSet;

use shoal_store::JobFilter;
use shoal_testkit::{Cluster, ClusterConfig};
use shoal_types::schedule::PARENT_META;
use shoal_types::{Job, JobStateType};

fn every_second(name: &str, job_type: &str) -> Job {
    shoal_types::spec::parse_job(&format!(
        "Name: {name}\nType: {job_type}\nSchedule: {{Cron: '*/1 * * * * *', Overlap: allow}}\nTasks:\n  - Name: t\n    Engine: {{Type: noop}}\n"
    ))
    .expect("a valid spec")
}

async fn children(cluster: &Cluster, parent: &str) -> Vec<Job> {
    cluster
        .orchestrator()
        .list_jobs(JobFilter {
            parent: Some(parent.to_string()),
            ..JobFilter::default()
        })
        .await
        .unwrap()
}

/// Waits until at least `n` children of `parent` have completed; returns them all.
async fn wait_completed_children(cluster: &Cluster, parent: &str, n: usize) -> Vec<Job> {
    let limit = std::time::Instant::now() + cluster.wait_limit;
    loop {
        let kids = children(cluster, parent).await;
        let done = kids
            .iter()
            .filter(|j| j.state.state_type == JobStateType::Completed)
            .count();
        if done >= n {
            return kids;
        }
        assert!(
            std::time::Instant::now() < limit,
            "only {done} of {n} children of {parent} completed: {:?}",
            kids.iter()
                .map(|j| (&j.name, j.state.state_type))
                .collect::<Vec<_>>()
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_ops_job_every_second_makes_children_that_run_on_every_node() {
    let cluster = Cluster::start(ClusterConfig::new(2).noop_only())
        .await
        .unwrap();
    cluster.wait_for_nodes(2).await.unwrap();
    let id = cluster
        .client()
        .submit(&every_second("probe", "ops"))
        .await
        .unwrap();

    let kids = wait_completed_children(&cluster, &id, 2).await;
    let parent = cluster.orchestrator().job(&id).await.unwrap();
    assert_eq!(parent.state.state_type, JobStateType::Running);
    assert!(
        parent.state.message.starts_with("scheduled: next run "),
        "{}",
        parent.state.message
    );
    assert!(
        cluster.client().executions(&id).await.unwrap().is_empty(),
        "the parent itself never runs anywhere"
    );
    for kid in kids
        .iter()
        .filter(|j| j.state.state_type == JobStateType::Completed)
    {
        assert!(kid.name.starts_with("probe@20"), "{}", kid.name);
        assert!(kid.name.ends_with('Z'), "{}", kid.name);
        assert_eq!(kid.meta.get(PARENT_META), Some(&id));
        assert!(kid.schedule.is_none());
        let execs = cluster.client().executions(&kid.id).await.unwrap();
        assert_eq!(
            execs.len(),
            2,
            "an ops child runs on both nodes: {}",
            kid.name
        );
    }

    cluster.client().stop(&id, "enough").await.unwrap();
    let history = cluster.orchestrator().history(&id, 0).await.unwrap();
    assert!(
        history.iter().any(|h| h
            .event
            .message
            .starts_with("scheduling stopped: no further runs")),
        "{:?}",
        history.iter().map(|h| &h.event.message).collect::<Vec<_>>()
    );
    let details = cluster.orchestrator().job_details(&id).await.unwrap();
    assert_eq!(details.schedule.and_then(|s| s.next_run), None);
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_orchestrator_runs_no_tick_twice_and_carries_on() {
    let dir = tempfile::tempdir().unwrap();
    let config = || ClusterConfig::new(1).noop_only().data_dir(dir.path());
    let cluster = Cluster::start(config()).await.unwrap();
    cluster.wait_for_nodes(1).await.unwrap();
    let id = cluster
        .client()
        .submit(&every_second("tick", "batch"))
        .await
        .unwrap();
    let before = wait_completed_children(&cluster, &id, 2).await;
    cluster.shutdown().await;

    let cluster = Cluster::start(config()).await.unwrap();
    cluster.wait_for_nodes(1).await.unwrap();
    let after = wait_completed_children(&cluster, &id, before.len() + 2).await;
    let names: Vec<&str> = after.iter().map(|j| j.name.as_str()).collect();
    let unique: BTreeSet<&str> = names.iter().copied().collect();
    assert_eq!(unique.len(), names.len(), "a tick ran twice: {names:?}");
    for kid in &before {
        assert!(
            after.iter().any(|j| j.id == kid.id),
            "the run for {} was kept",
            kid.name
        );
    }
    let history = cluster.orchestrator().history(&id, 0).await.unwrap();
    let started: Vec<&str> = history
        .iter()
        .filter_map(|h| h.event.message.strip_prefix("started "))
        .map(|m| m.split(' ').next().unwrap_or(m))
        .collect();
    let distinct: BTreeSet<&str> = started.iter().copied().collect();
    assert_eq!(distinct.len(), started.len(), "{started:?}");
    cluster.shutdown().await;
}
