//! Scheduled jobs on the orchestrator: how far each schedule has got, and which child job ran
//! for which tick.
//!
//! The marks and a tick's child are written in the same transaction as the child job itself,
//! so a restart neither runs a tick twice nor loses one; `(parent_id, tick)` is the primary key
//! of the runs, so a second child for a tick cannot even be stored.

use rusqlite::{OptionalExtension, params};
use shoal_types::schedule::ScheduledRun;

use crate::db::{StoreError, Tx};
use crate::orchestrator::Reader;

pub(crate) const SCHEMA: &str = "
CREATE TABLE schedules (
    job_id TEXT PRIMARY KEY, version INTEGER NOT NULL, handled_through INTEGER NOT NULL,
    next_tick INTEGER, last_tick INTEGER);
CREATE TABLE schedule_runs (
    parent_id TEXT NOT NULL, tick INTEGER NOT NULL, child_id TEXT NOT NULL,
    PRIMARY KEY (parent_id, tick));
CREATE INDEX schedule_runs_by_child ON schedule_runs (child_id);
";

/// How far a scheduled job has got.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ScheduleMarks {
    /// The job version these marks belong to; an update starts the schedule afresh.
    pub version: u64,
    /// Every tick at or before this is handled (run or skipped).
    pub handled_through: i64,
    /// The next tick to handle; `None` when stopped, suspended or never matching again.
    pub next_tick: Option<i64>,
    /// The latest tick handled, if any.
    pub last_tick: Option<i64>,
}

impl Reader<'_> {
    /// A scheduled job's marks, if it has been evaluated as one.
    pub fn schedule_marks(&self, job_id: &str) -> Result<Option<ScheduleMarks>, StoreError> {
        Ok(self
            .0
            .prepare_cached(
                "SELECT version, handled_through, next_tick, last_tick FROM schedules WHERE job_id = ?1",
            )?
            .query_row(params![job_id], |r| {
                Ok(ScheduleMarks {
                    version: r.get(0)?,
                    handled_through: r.get(1)?,
                    next_tick: r.get(2)?,
                    last_tick: r.get(3)?,
                })
            })
            .optional()?)
    }

    /// The latest `limit` children of a scheduled job, newest tick first.
    pub fn schedule_runs(
        &self,
        parent_id: &str,
        limit: usize,
    ) -> Result<Vec<ScheduledRun>, StoreError> {
        let mut stmt = self.0.prepare_cached(
            "SELECT tick, child_id FROM schedule_runs WHERE parent_id = ?1 ORDER BY tick DESC LIMIT ?2",
        )?;
        let rows = stmt.query_map(params![parent_id, limit as i64], |r| {
            Ok(ScheduledRun {
                tick: r.get(0)?,
                job_id: r.get(1)?,
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Whether a child already ran for this tick.
    pub fn schedule_ran(&self, parent_id: &str, tick: i64) -> Result<bool, StoreError> {
        Ok(self
            .0
            .prepare_cached("SELECT 1 FROM schedule_runs WHERE parent_id = ?1 AND tick = ?2")?
            .query_row(params![parent_id, tick], |_| Ok(()))
            .optional()?
            .is_some())
    }

    /// Ids of a scheduled job's children that have not ended, oldest first.
    pub fn running_children(&self, parent_id: &str) -> Result<Vec<String>, StoreError> {
        let mut stmt = self.0.prepare_cached(
            "SELECT r.child_id FROM schedule_runs r JOIN jobs j ON j.id = r.child_id
             WHERE r.parent_id = ?1 AND j.state NOT IN ('Completed', 'Failed', 'Stopped')
             ORDER BY r.tick",
        )?;
        let rows = stmt.query_map(params![parent_id], |r| r.get(0))?;
        Ok(rows.collect::<Result<_, _>>()?)
    }
}

impl Tx<'_> {
    /// Writes a scheduled job's marks.
    pub fn put_schedule_marks(&self, job_id: &str, m: &ScheduleMarks) -> Result<(), StoreError> {
        self.exec(
            "INSERT INTO schedules (job_id, version, handled_through, next_tick, last_tick)
             VALUES (?1, ?2, ?3, ?4, ?5)
             ON CONFLICT(job_id) DO UPDATE SET version = excluded.version,
               handled_through = excluded.handled_through, next_tick = excluded.next_tick,
               last_tick = excluded.last_tick",
            params![
                job_id,
                m.version,
                m.handled_through,
                m.next_tick,
                m.last_tick
            ],
        )?;
        Ok(())
    }

    /// Records the child job made for a tick; fails if the tick already has one.
    pub fn add_schedule_run(
        &self,
        parent_id: &str,
        tick: i64,
        child_id: &str,
    ) -> Result<(), StoreError> {
        self.exec(
            "INSERT INTO schedule_runs (parent_id, tick, child_id) VALUES (?1, ?2, ?3)",
            params![parent_id, tick, child_id],
        )?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::OrchestratorStore;

    #[test]
    fn a_tick_can_have_only_one_child() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = OrchestratorStore::open(dir.path()).unwrap();
        let tx = store.begin().unwrap();
        tx.add_schedule_run("j-p", 10, "j-c1").unwrap();
        assert!(tx.add_schedule_run("j-p", 10, "j-c2").is_err());
        tx.add_schedule_run("j-p", 20, "j-c2").unwrap();
        assert!(tx.read().schedule_ran("j-p", 10).unwrap());
        let runs = tx.read().schedule_runs("j-p", 5).unwrap();
        assert_eq!(runs.iter().map(|r| r.tick).collect::<Vec<_>>(), [20, 10]);
    }

    #[test]
    fn marks_survive_a_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let marks = ScheduleMarks {
            version: 2,
            handled_through: 30,
            next_tick: Some(32),
            last_tick: Some(30),
        };
        {
            let mut store = OrchestratorStore::open(dir.path()).unwrap();
            let tx = store.begin().unwrap();
            tx.put_schedule_marks("j-p", &marks).unwrap();
            tx.commit().unwrap();
        }
        let store = OrchestratorStore::open(dir.path()).unwrap();
        assert_eq!(store.read().schedule_marks("j-p").unwrap(), Some(marks));
    }
}
