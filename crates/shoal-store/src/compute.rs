//! A compute node's store: its identity, its executions and its outbox to the orchestrator.

use std::path::Path;

use rusqlite::{Connection, OptionalExtension, params};
use serde::{Deserialize, Serialize};
use shoal_types::Execution;

use crate::db::{self, StoreError, Tx, from_json, to_json};
use crate::outbox;

const MIGRATIONS: &[&str] = &[
    "
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE executions (id TEXT PRIMARY KEY, state TEXT NOT NULL, body TEXT NOT NULL);
CREATE INDEX executions_by_state ON executions (state);
",
    outbox::SCHEMA,
];

const GET_EXECUTION: &str = "SELECT body FROM executions WHERE id = ?1";
const PUT_EXECUTION: &str = "INSERT INTO executions (id, state, body) VALUES (?1, ?2, ?3)
             ON CONFLICT(id) DO UPDATE SET state = excluded.state, body = excluded.body";

/// Where an execution is on this node. The compute agent's `lifecycle` module draws the moves
/// between these states and holds the one function that makes them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum LocalState {
    /// Admitted; inputs being prepared.
    Accepted,
    /// The engine is running it.
    Running,
    /// Ended with an exit code.
    Completed,
    /// Ended without one.
    Failed,
    /// Stopped on request.
    Cancelled,
}

impl LocalState {
    /// Whether the execution has ended.
    pub fn is_terminal(self) -> bool {
        matches!(
            self,
            LocalState::Completed | LocalState::Failed | LocalState::Cancelled
        )
    }

    fn as_str(self) -> &'static str {
        match self {
            LocalState::Accepted => "Accepted",
            LocalState::Running => "Running",
            LocalState::Completed => "Completed",
            LocalState::Failed => "Failed",
            LocalState::Cancelled => "Cancelled",
        }
    }
}

/// An execution as this node keeps it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LocalExecution {
    /// The execution, with its job embedded.
    pub execution: Execution,
    /// Local state.
    pub state: LocalState,
}

/// A compute node's store (`dir/compute/state.db`).
pub struct ComputeStore {
    conn: Connection,
}

/// The peer name used for the orchestrator's link in the outbox tables.
pub const ORCHESTRATOR_PEER: &str = "orchestrator";

impl ComputeStore {
    /// Opens or creates the store.
    pub fn open(dir: &Path) -> Result<Self, StoreError> {
        let path = dir.join("compute").join("state.db");
        ComputeStore {
            conn: db::open(&path, MIGRATIONS)?,
        }
        .warmed()
    }

    /// A store that lives in memory only, for simulated fleets where thousands of agents share
    /// one process (it costs no file descriptors and no disk writes). Nothing survives the
    /// process, so an agent on it forgets its executions when restarted: never use it for a
    /// real node.
    pub fn open_in_memory() -> Result<Self, StoreError> {
        ComputeStore {
            conn: db::open_in_memory(MIGRATIONS)?,
        }
        .warmed()
    }

    /// Prepares the statements that accepting, starting and ending an execution run, so that a
    /// node's first execution does not wait for SQLite to parse and plan them. In a simulated
    /// fleet (thousands of agents in one process) that first parse was a fifth of a daemon
    /// rollout's CPU.
    fn warmed(self) -> Result<Self, StoreError> {
        for sql in [GET_EXECUTION, PUT_EXECUTION].iter().chain(outbox::HOT) {
            self.conn.prepare_cached(sql)?;
        }
        Ok(self)
    }

    /// Starts a write transaction.
    pub fn begin(&mut self) -> Result<Tx<'_>, StoreError> {
        Ok(Tx {
            tx: self.conn.transaction()?,
        })
    }

    /// A value from the metadata table (e.g. the node id).
    pub fn meta(&self, key: &str) -> Result<Option<String>, StoreError> {
        Ok(self
            .conn
            .query_row("SELECT value FROM meta WHERE key = ?1", params![key], |r| {
                r.get(0)
            })
            .optional()?)
    }

    /// Sets a metadata value.
    pub fn set_meta(&self, key: &str, value: &str) -> Result<(), StoreError> {
        self.conn.execute(
            "INSERT INTO meta (key, value) VALUES (?1, ?2) ON CONFLICT(key) DO UPDATE SET value = excluded.value",
            params![key, value],
        )?;
        Ok(())
    }

    /// One execution.
    pub fn execution(&self, id: &str) -> Result<Option<LocalExecution>, StoreError> {
        let body: Option<String> = self
            .conn
            .prepare_cached(GET_EXECUTION)?
            .query_row(params![id], |r| r.get(0))
            .optional()?;
        body.map(|b| from_json("execution", &b)).transpose()
    }

    /// Executions that have not ended.
    pub fn live_executions(&self) -> Result<Vec<LocalExecution>, StoreError> {
        let mut stmt = self
            .conn
            .prepare("SELECT body FROM executions WHERE state IN ('Accepted', 'Running')")?;
        let rows = stmt.query_map([], |r| r.get::<_, String>(0))?;
        rows.map(|b| from_json("execution", &b?)).collect()
    }

    /// The highest orchestrator sequence applied here.
    pub fn applied_seq(&self) -> Result<u64, StoreError> {
        outbox::link_applied(&self.conn, ORCHESTRATOR_PEER)
    }
}

impl Tx<'_> {
    /// Inserts or replaces a local execution.
    pub fn put_local_execution(&self, e: &LocalExecution) -> Result<(), StoreError> {
        self.exec(
            PUT_EXECUTION,
            params![e.execution.id.as_str(), e.state.as_str(), to_json(e)],
        )?;
        Ok(())
    }

    /// A local execution, read inside the transaction.
    pub fn local_execution(&self, id: &str) -> Result<Option<LocalExecution>, StoreError> {
        let body: Option<String> = self
            .query_one(GET_EXECUTION, params![id], |r| r.get(0))
            .optional()?;
        body.map(|b| from_json("execution", &b)).transpose()
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use rusqlite::trace::{TraceEvent, TraceEventCodes};
    use shoal_transport::LedgerStore;

    use super::*;

    #[test]
    fn an_execution_runs_only_statements_prepared_when_the_store_opens() {
        let mut store = ComputeStore::open_in_memory().unwrap();
        let ran = Arc::new(Mutex::new(Vec::<String>::new()));
        let seen = ran.clone();
        store
            .conn
            .trace_v2(
                TraceEventCodes::SQLITE_TRACE_STMT,
                Some(move |e: TraceEvent<'_>| {
                    if let TraceEvent::Stmt(_, sql) = e {
                        seen.lock().unwrap().push(sql.to_string());
                    }
                }),
            )
            .unwrap();
        let execution: Execution = serde_json::from_value(serde_json::json!({
            "ID": "e-1", "NodeID": "n-1", "JobID": "j-1",
            "DesiredState": {"StateType": 1}, "ComputeState": {"StateType": 1},
        }))
        .unwrap();
        let mut local = LocalExecution {
            execution,
            state: LocalState::Accepted,
        };
        // A run arrives and is accepted, starts, ends; the orchestrator acknowledges.
        let tx = store.begin().unwrap();
        assert!(tx.mark_applied(ORCHESTRATOR_PEER, 1).unwrap());
        assert!(tx.local_execution("e-1").unwrap().is_none());
        tx.put_local_execution(&local).unwrap();
        tx.outbox_push(ORCHESTRATOR_PEER, "accepted").unwrap();
        tx.commit().unwrap();
        for state in [LocalState::Running, LocalState::Completed] {
            local.state = state;
            let tx = store.begin().unwrap();
            tx.put_local_execution(&local).unwrap();
            tx.outbox_push(ORCHESTRATOR_PEER, "report").unwrap();
            tx.commit().unwrap();
        }
        let tx = store.begin().unwrap();
        tx.outbox_ack(ORCHESTRATOR_PEER, 3).unwrap();
        tx.commit().unwrap();

        let warm: Vec<&str> = [GET_EXECUTION, PUT_EXECUTION]
            .into_iter()
            .chain(outbox::HOT.iter().copied())
            .collect();
        let ran = ran.lock().unwrap();
        assert!(ran.len() > 10, "the trace saw the statements: {ran:?}");
        for sql in ran.iter() {
            let control = matches!(sql.as_str(), "BEGIN DEFERRED" | "COMMIT");
            assert!(
                control || warm.contains(&sql.as_str()),
                "{sql:?} is parsed at a node's first execution; add it to the statements the store prepares when it opens"
            );
        }
    }
}
