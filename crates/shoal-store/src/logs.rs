//! Execution logs kept by the orchestrator, so `job logs` works after the node that ran the
//! execution is gone or away.
//!
//! Nodes ship their log files in compressed pieces, keyed by where each starts in the node's
//! file: a piece sent twice (a replay after a reconnect) is stored once. Each job keeps at most
//! [`JOB_LOG_CAP`] compressed bytes; a piece past it is not stored and the execution's logs are
//! marked truncated instead, so a chatty job cannot fill the orchestrator's disk.

use rusqlite::params;

use crate::db::{StoreError, Tx};
use crate::orchestrator::Reader;

pub(crate) const SCHEMA: &str = "
CREATE TABLE execution_logs (
    execution_id TEXT NOT NULL, job_id TEXT NOT NULL, start INTEGER NOT NULL,
    data BLOB NOT NULL, truncated INTEGER NOT NULL,
    PRIMARY KEY (execution_id, start));
CREATE INDEX execution_logs_by_job ON execution_logs (job_id);
";

/// Compressed log bytes kept per job, over all its executions.
pub const JOB_LOG_CAP: usize = 64 << 20;

/// One stored piece of an execution's log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogPiece {
    /// Where it starts in the node's log file.
    pub start: u64,
    /// The piece, gzip-compressed, as the node sent it; empty for the marker of a log of
    /// which nothing was kept.
    pub data: Vec<u8>,
    /// More of the log exists than is kept here.
    pub truncated: bool,
}

impl Reader<'_> {
    /// An execution's stored log pieces, in file order.
    pub fn log_pieces(&self, execution_id: &str) -> Result<Vec<LogPiece>, StoreError> {
        let mut stmt = self.0.prepare_cached(
            "SELECT start, data, truncated FROM execution_logs WHERE execution_id = ?1 ORDER BY start",
        )?;
        let rows = stmt.query_map(params![execution_id], |r| {
            Ok(LogPiece {
                start: r.get(0)?,
                data: r.get(1)?,
                truncated: r.get(2)?,
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }
}

impl Tx<'_> {
    /// Keeps a piece of an execution's log, unless the job already holds [`JOB_LOG_CAP`]
    /// bytes: then the execution's stored pieces are marked truncated. Returns whether the
    /// piece was kept (a piece already stored counts as kept).
    pub fn put_log_piece(
        &self,
        job_id: &str,
        execution_id: &str,
        piece: &LogPiece,
    ) -> Result<bool, StoreError> {
        let held: i64 = self.query_one(
            "SELECT COALESCE(SUM(length(data)), 0) FROM execution_logs WHERE job_id = ?1",
            params![job_id],
            |r| r.get(0),
        )?;
        if held as usize + piece.data.len() > JOB_LOG_CAP {
            let marked = self.exec(
                "UPDATE execution_logs SET truncated = 1 WHERE execution_id = ?1
                 AND start = (SELECT MAX(start) FROM execution_logs WHERE execution_id = ?1)",
                params![execution_id],
            )?;
            if marked == 0 {
                // Nothing kept of this execution: an empty piece says the log was cut.
                self.exec(
                    "INSERT INTO execution_logs (execution_id, job_id, start, data, truncated)
                     VALUES (?1, ?2, ?3, x'', 1) ON CONFLICT DO NOTHING",
                    params![execution_id, job_id, piece.start],
                )?;
            }
            return Ok(false);
        }
        self.exec(
            "INSERT INTO execution_logs (execution_id, job_id, start, data, truncated)
             VALUES (?1, ?2, ?3, ?4, ?5) ON CONFLICT DO NOTHING",
            params![
                execution_id,
                job_id,
                piece.start,
                piece.data,
                piece.truncated
            ],
        )?;
        Ok(true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::OrchestratorStore;

    fn piece(start: u64, len: usize) -> LogPiece {
        LogPiece {
            start,
            data: vec![7; len],
            truncated: false,
        }
    }

    #[test]
    fn pieces_come_back_in_order_once_each() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = OrchestratorStore::open(dir.path()).unwrap();
        let tx = store.begin().unwrap();
        assert!(tx.put_log_piece("j-1", "e-1", &piece(100, 3)).unwrap());
        assert!(tx.put_log_piece("j-1", "e-1", &piece(0, 2)).unwrap());
        // A replay of the first piece.
        assert!(tx.put_log_piece("j-1", "e-1", &piece(100, 3)).unwrap());
        tx.commit().unwrap();
        let pieces = store.read().log_pieces("e-1").unwrap();
        assert_eq!(pieces, vec![piece(0, 2), piece(100, 3)]);
        assert!(store.read().log_pieces("e-2").unwrap().is_empty());
    }

    #[test]
    fn a_job_past_its_cap_keeps_what_it_had_and_says_it_is_truncated() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = OrchestratorStore::open(dir.path()).unwrap();
        let tx = store.begin().unwrap();
        assert!(
            tx.put_log_piece("j-1", "e-1", &piece(0, JOB_LOG_CAP - 10))
                .unwrap()
        );
        assert!(!tx.put_log_piece("j-1", "e-2", &piece(0, 20)).unwrap());
        assert!(!tx.put_log_piece("j-1", "e-1", &piece(5, 20)).unwrap());
        // Another job has its own cap.
        assert!(tx.put_log_piece("j-2", "e-3", &piece(0, 20)).unwrap());
        tx.commit().unwrap();
        let kept = store.read().log_pieces("e-1").unwrap();
        assert_eq!(kept.len(), 1);
        assert!(kept[0].truncated);
        let cut = store.read().log_pieces("e-2").unwrap();
        assert_eq!(
            cut,
            vec![LogPiece {
                start: 0,
                data: vec![],
                truncated: true
            }]
        );
    }
}
