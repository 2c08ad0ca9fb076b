//! Rollout state and earlier job versions on the orchestrator.
//!
//! A job with a `Rollout` keeps the state of its current rollout (`RolloutState`: the targeted
//! nodes in order, each node's progress, promotion) so a restarted orchestrator continues the
//! current wave. Every daemon job version's spec is kept as submitted, so a rollout can put the
//! previous version back on the nodes it updated (`OnFailure: revert`).

use rusqlite::{OptionalExtension, params};
use shoal_types::Job;
use shoal_types::rollout::RolloutState;

use crate::db::{StoreError, Tx, from_json, to_json};
use crate::orchestrator::Reader;

pub(crate) const SCHEMA: &str = "
CREATE TABLE rollouts (job_id TEXT PRIMARY KEY, body TEXT NOT NULL);
CREATE TABLE job_versions (
    job_id TEXT NOT NULL, version INTEGER NOT NULL, body TEXT NOT NULL,
    PRIMARY KEY (job_id, version));
";

impl Reader<'_> {
    /// The state of a job's current rollout, if it has one.
    pub fn rollout(&self, job_id: &str) -> Result<Option<RolloutState>, StoreError> {
        let body: Option<String> = self
            .0
            .prepare_cached("SELECT body FROM rollouts WHERE job_id = ?1")?
            .query_row(params![job_id], |r| r.get(0))
            .optional()?;
        body.map(|b| from_json("rollout", &b)).transpose()
    }

    /// One version of a job, as it was submitted.
    pub fn job_version(&self, job_id: &str, version: u64) -> Result<Option<Job>, StoreError> {
        let body: Option<String> = self
            .0
            .prepare_cached("SELECT body FROM job_versions WHERE job_id = ?1 AND version = ?2")?
            .query_row(params![job_id, version as i64], |r| r.get(0))
            .optional()?;
        body.map(|b| from_json("job version", &b)).transpose()
    }
}

impl Tx<'_> {
    /// Stores the state of a job's current rollout (replacing an earlier version's).
    pub fn put_rollout(&self, job_id: &str, state: &RolloutState) -> Result<(), StoreError> {
        self.exec(
            "INSERT INTO rollouts (job_id, body) VALUES (?1, ?2)
             ON CONFLICT(job_id) DO UPDATE SET body = excluded.body",
            params![job_id, to_json(state)],
        )?;
        Ok(())
    }

    /// Keeps a job version's spec as submitted; a version already kept stays as it was.
    pub fn keep_job_version(&self, job: &Job) -> Result<(), StoreError> {
        self.exec(
            "INSERT OR IGNORE INTO job_versions (job_id, version, body) VALUES (?1, ?2, ?3)",
            params![job.id, job.version as i64, to_json(job)],
        )?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use shoal_types::NodeId;
    use shoal_types::rollout::{NodeProgress, Rollout, RolloutNode};

    use crate::OrchestratorStore;

    use super::*;

    #[test]
    fn a_rollout_and_the_versions_survive_a_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let state = RolloutState {
            job_version: 2,
            rollout: Rollout::default(),
            nodes: vec![RolloutNode {
                node_id: NodeId::new("n-1"),
                progress: NodeProgress::Succeeded,
                since: 7,
                message: "exit code 0".into(),
            }],
            promoted: true,
            phase: "done".into(),
            outcome: Some("rollout done: 1 succeeded".into()),
        };
        let mut v1 = shoal_types::spec::parse_job(
            "Type: ops\nTasks:\n  - Name: main\n    Engine: {Type: docker, Params: {Image: busybox}}\n",
        )
        .unwrap();
        v1.id = "j-1".into();
        v1.version = 1;
        {
            let mut store = OrchestratorStore::open(dir.path()).unwrap();
            let tx = store.begin().unwrap();
            tx.put_rollout("j-1", &state).unwrap();
            tx.keep_job_version(&v1).unwrap();
            v1.name = "changed later".into();
            tx.keep_job_version(&v1).unwrap();
            tx.commit().unwrap();
        }
        let store = OrchestratorStore::open(dir.path()).unwrap();
        assert_eq!(store.read().rollout("j-1").unwrap(), Some(state));
        let kept = store.read().job_version("j-1", 1).unwrap().unwrap();
        assert_ne!(
            kept.name, "changed later",
            "the first write of a version is the one kept"
        );
        assert!(store.read().job_version("j-1", 2).unwrap().is_none());
        assert!(store.read().rollout("j-2").unwrap().is_none());
    }
}
