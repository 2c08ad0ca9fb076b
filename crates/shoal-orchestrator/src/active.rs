//! The engine's cache of jobs with work in flight and their executions.

use std::collections::HashMap;

use shoal_store::Tx;
use shoal_types::{Execution, Job};

use crate::error::OrchestratorError;

/// The jobs being evaluated and their executions, kept between evaluations so that a job with
/// 10,000 executions (a fleet-wide query) is not read back and decoded from SQLite after every
/// batch of reports, and a report does not decode its job again. Write-through: every job and
/// execution the engine writes goes through `state::write_job` and `state::write_execution`;
/// the engine clears it when a transaction fails, since what it holds may then be ahead of the
/// store.
#[derive(Debug, Default)]
pub(crate) struct ActiveJobs {
    jobs: HashMap<String, JobExecs>,
    specs: HashMap<String, Job>,
}

#[derive(Debug, Default)]
struct JobExecs {
    list: Vec<Execution>,
    at: HashMap<String, usize>,
}

impl ActiveJobs {
    /// Drops everything (after a failed transaction).
    pub fn clear(&mut self) {
        self.jobs.clear();
        self.specs.clear();
    }

    /// Drops one job and its executions.
    pub fn forget(&mut self, job_id: &str) {
        self.jobs.remove(job_id);
        self.specs.remove(job_id);
    }

    /// A job as stored, read once and then kept until it is forgotten.
    pub fn job(&mut self, tx: &Tx<'_>, job_id: &str) -> Result<Option<&Job>, OrchestratorError> {
        if !self.specs.contains_key(job_id) {
            match tx.read().job(job_id)? {
                Some(job) => self.specs.insert(job_id.to_string(), job),
                None => return Ok(None),
            };
        }
        Ok(self.specs.get(job_id))
    }

    /// Keeps the copy of a job just written.
    pub fn put_job(&mut self, job: &Job) {
        self.specs.insert(job.id.clone(), job.clone());
    }

    /// Reads a job's executions from the store unless they are loaded already.
    pub fn load(&mut self, tx: &Tx<'_>, job_id: &str) -> Result<(), OrchestratorError> {
        if !self.jobs.contains_key(job_id) {
            let list = tx.read().executions(job_id)?;
            let at = list
                .iter()
                .enumerate()
                .map(|(i, e)| (e.id.to_string(), i))
                .collect();
            self.jobs.insert(job_id.to_string(), JobExecs { list, at });
        }
        Ok(())
    }

    /// A job's loaded executions (none if they are not loaded).
    pub fn list(&self, job_id: &str) -> &[Execution] {
        self.jobs.get(job_id).map_or(&[], |j| j.list.as_slice())
    }

    /// One execution, if its job's executions are loaded.
    pub fn execution(&self, job_id: &str, execution_id: &str) -> Option<&Execution> {
        let j = self.jobs.get(job_id)?;
        j.at.get(execution_id).map(|&i| &j.list[i])
    }

    /// Keeps the copy of an execution just written, if its job's executions are loaded.
    pub fn put(&mut self, e: &Execution) {
        let Some(j) = self.jobs.get_mut(e.job_id.as_str()) else {
            return;
        };
        match j.at.get(e.id.as_str()) {
            Some(&i) => j.list[i] = e.clone(),
            None => {
                j.at.insert(e.id.to_string(), j.list.len());
                j.list.push(e.clone());
            }
        }
    }
}
