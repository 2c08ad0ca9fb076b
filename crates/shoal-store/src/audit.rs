//! The audit log: who did what to which object, and whether it was allowed.
//!
//! It lives in its own file (`audit.db` beside `state.db`) so that appending to it never takes
//! the job store's write lock: the engine's group commit and the API's audit writer do not wait
//! for each other. Entries are only ever appended; nothing in Shoal updates or deletes them.

use std::path::Path;
use std::sync::Mutex;

use rusqlite::{Connection, params};
use serde::{Deserialize, Serialize};

use crate::db::{self, StoreError};

const MIGRATIONS: &[&str] = &["CREATE TABLE audit (
        seq INTEGER PRIMARY KEY AUTOINCREMENT,
        time INTEGER NOT NULL,
        principal TEXT NOT NULL,
        action TEXT NOT NULL,
        target TEXT NOT NULL,
        outcome TEXT NOT NULL
    );
    CREATE INDEX audit_time ON audit (time);"];

/// One audited event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct AuditEntry {
    /// Position in the log (assigned on append; 0 before).
    #[serde(default)]
    pub seq: i64,
    /// Unix time in nanoseconds.
    pub time: i64,
    /// Who: a user's alias or name, `API key ending in ...XXXXX`, `anonymous`, or `node n-...`.
    pub principal: String,
    /// What was asked, e.g. `PUT /api/v1/orchestrator/jobs (write:job)`.
    pub action: String,
    /// The object it was about (a job or node id), or the collection when there is none yet.
    pub target: String,
    /// `allowed 200`, `denied 403: ...`, `unauthenticated 401: ...`, ...
    pub outcome: String,
}

/// Which entries to read.
#[derive(Debug, Clone, Default)]
pub struct AuditFilter {
    /// Only entries of this principal.
    pub principal: Option<String>,
    /// Only entries at or after this time (unix nanoseconds).
    pub since: Option<i64>,
    /// At most this many (newest first); 0 = no limit.
    pub limit: usize,
}

/// The append-only audit table.
pub struct AuditLog {
    conn: Mutex<Connection>,
}

impl AuditLog {
    /// Opens (creating if needed) `dir/audit.db`.
    pub fn open(dir: &Path) -> Result<Self, StoreError> {
        Ok(AuditLog {
            conn: Mutex::new(db::open(&dir.join("audit.db"), MIGRATIONS)?),
        })
    }

    /// A log that lives in memory only (tests, devstack without a data dir).
    pub fn open_in_memory() -> Result<Self, StoreError> {
        Ok(AuditLog {
            conn: Mutex::new(db::open_in_memory(MIGRATIONS)?),
        })
    }

    fn conn(&self) -> std::sync::MutexGuard<'_, Connection> {
        self.conn.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Appends `entries` in one transaction: all of them are kept, or none and an error.
    pub fn append(&self, entries: &[AuditEntry]) -> Result<(), StoreError> {
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        {
            let mut insert = tx.prepare_cached(
                "INSERT INTO audit (time, principal, action, target, outcome) VALUES (?1, ?2, ?3, ?4, ?5)",
            )?;
            for e in entries {
                insert.execute(params![e.time, e.principal, e.action, e.target, e.outcome])?;
            }
        }
        tx.commit()?;
        Ok(())
    }

    /// Entries matching `filter`, newest first.
    pub fn list(&self, filter: &AuditFilter) -> Result<Vec<AuditEntry>, StoreError> {
        let conn = self.conn();
        let limit = if filter.limit == 0 {
            -1
        } else {
            filter.limit as i64
        };
        let mut stmt = conn.prepare_cached(
            "SELECT seq, time, principal, action, target, outcome FROM audit
             WHERE (?1 IS NULL OR principal = ?1) AND (?2 IS NULL OR time >= ?2)
             ORDER BY seq DESC LIMIT ?3",
        )?;
        let rows = stmt.query_map(params![filter.principal, filter.since, limit], |r| {
            Ok(AuditEntry {
                seq: r.get(0)?,
                time: r.get(1)?,
                principal: r.get(2)?,
                action: r.get(3)?,
                target: r.get(4)?,
                outcome: r.get(5)?,
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(time: i64, principal: &str) -> AuditEntry {
        AuditEntry {
            seq: 0,
            time,
            principal: principal.into(),
            action: "PUT /api/v1/orchestrator/jobs (write:job)".into(),
            target: "jobs".into(),
            outcome: "allowed 200".into(),
        }
    }

    #[test]
    fn entries_survive_a_reopen_and_come_back_newest_first() {
        let dir = tempfile::tempdir().unwrap();
        {
            let log = AuditLog::open(dir.path()).unwrap();
            log.append(&[entry(1, "alice"), entry(2, "bob")]).unwrap();
            log.append(&[entry(3, "alice")]).unwrap();
        }
        let log = AuditLog::open(dir.path()).unwrap();
        let all = log.list(&AuditFilter::default()).unwrap();
        let times: Vec<i64> = all.iter().map(|e| e.time).collect();
        assert_eq!(times, vec![3, 2, 1]);
        assert!(all[0].seq > all[1].seq);
    }

    #[test]
    fn the_filter_selects_by_principal_time_and_count() {
        let log = AuditLog::open_in_memory().unwrap();
        log.append(&[entry(1, "alice"), entry(2, "bob"), entry(3, "alice")])
            .unwrap();
        let alice = log
            .list(&AuditFilter {
                principal: Some("alice".into()),
                ..Default::default()
            })
            .unwrap();
        assert_eq!(alice.len(), 2);
        let recent = log
            .list(&AuditFilter {
                since: Some(2),
                ..Default::default()
            })
            .unwrap();
        assert_eq!(recent.len(), 2);
        let one = log
            .list(&AuditFilter {
                limit: 1,
                ..Default::default()
            })
            .unwrap();
        assert_eq!(one[0].time, 3);
    }
}
