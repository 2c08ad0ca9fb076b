//! The orchestrator's store: jobs, executions, history, nodes and the link outboxes.

use std::path::Path;
use std::sync::Mutex;

use rusqlite::{Connection, OptionalExtension, params};
use shoal_types::{Execution, Job, JobHistory, NodeState};

use crate::db::{self, StoreError, Tx, from_json, to_json};
use crate::outbox;

const MIGRATIONS: &[&str] = &[
    "
CREATE TABLE jobs (
    id TEXT PRIMARY KEY, name TEXT NOT NULL, namespace TEXT NOT NULL, state TEXT NOT NULL,
    create_time INTEGER NOT NULL, body TEXT NOT NULL, placement TEXT NOT NULL DEFAULT '[]');
CREATE INDEX jobs_by_name ON jobs (namespace, name);
CREATE INDEX jobs_by_state ON jobs (state);
CREATE INDEX jobs_by_time ON jobs (create_time);
CREATE TABLE executions (
    id TEXT PRIMARY KEY, job_id TEXT NOT NULL, node_id TEXT NOT NULL, create_time INTEGER NOT NULL,
    body TEXT NOT NULL);
CREATE INDEX executions_by_job ON executions (job_id);
CREATE TABLE history (job_id TEXT NOT NULL, seq INTEGER NOT NULL, body TEXT NOT NULL, PRIMARY KEY (job_id, seq));
CREATE TABLE nodes (id TEXT PRIMARY KEY, body TEXT NOT NULL);
",
    outbox::SCHEMA,
    crate::enrolment::SCHEMA,
    crate::rollouts::SCHEMA,
    crate::schedules::SCHEMA,
    crate::logs::SCHEMA,
];

/// The orchestrator's writable store. One owner (the orchestrator's engine) writes; API reads go
/// through [`OrchestratorStore::reader`].
pub struct OrchestratorStore {
    conn: Connection,
    path: std::path::PathBuf,
}

/// Which jobs to list.
#[derive(Debug, Clone, Default)]
pub struct JobFilter {
    /// Only this namespace (`None` or `*` = all).
    pub namespace: Option<String>,
    /// Page size.
    pub limit: usize,
    /// Rows to skip.
    pub offset: usize,
    /// Newest first.
    pub reverse: bool,
    /// Only jobs with a `Schedule` (parents).
    pub scheduled: bool,
    /// Only the children of this scheduled job.
    pub parent: Option<String>,
}

impl OrchestratorStore {
    /// Opens or creates `dir/orchestrator/state.db`.
    pub fn open(dir: &Path) -> Result<Self, StoreError> {
        let path = dir.join("orchestrator").join("state.db");
        Ok(OrchestratorStore {
            conn: db::open(&path, MIGRATIONS)?,
            path,
        })
    }

    /// Starts a write transaction.
    pub fn begin(&mut self) -> Result<Tx<'_>, StoreError> {
        Ok(Tx {
            tx: self.conn.transaction()?,
        })
    }

    /// Reads through the writer's own connection.
    pub fn read(&self) -> Reader<'_> {
        Reader(&self.conn)
    }

    /// A separate connection for concurrent readers.
    pub fn reader(&self) -> Result<SharedReader, StoreError> {
        Ok(SharedReader(Mutex::new(db::open_reader(&self.path)?)))
    }
}

/// A read-only connection that can be shared between threads.
pub struct SharedReader(Mutex<Connection>);

impl SharedReader {
    /// Runs `f` with a reader.
    pub fn with<T>(&self, f: impl FnOnce(Reader<'_>) -> T) -> T {
        let conn = self.0.lock().unwrap_or_else(|p| p.into_inner());
        f(Reader(&conn))
    }
}

/// Read queries, on any connection.
#[derive(Clone, Copy)]
pub struct Reader<'a>(pub(crate) &'a Connection);

impl Reader<'_> {
    /// A job by exact id.
    pub fn job(&self, id: &str) -> Result<Option<Job>, StoreError> {
        let body: Option<String> = self
            .0
            .prepare_cached("SELECT body FROM jobs WHERE id = ?1")?
            .query_row(params![id], |r| r.get(0))
            .optional()?;
        body.map(|b| from_json("job", &b)).transpose()
    }

    /// The newest job with this name in this namespace: names are unique per namespace, and a
    /// job submitted under an existing name updates that job.
    pub fn job_by_name(&self, namespace: &str, name: &str) -> Result<Option<Job>, StoreError> {
        let body: Option<String> = self
            .0
            .prepare_cached(
                "SELECT body FROM jobs WHERE namespace = ?1 AND name = ?2 ORDER BY create_time DESC LIMIT 1",
            )?
            .query_row(params![namespace, name], |r| r.get(0))
            .optional()?;
        body.map(|b| from_json("job", &b)).transpose()
    }

    /// Jobs whose id starts with `prefix` or whose name equals it (at most `limit`).
    pub fn jobs_matching(&self, key: &str, limit: usize) -> Result<Vec<Job>, StoreError> {
        let mut stmt = self.0.prepare_cached(
            "SELECT body FROM jobs WHERE name = ?1 UNION SELECT body FROM jobs WHERE id >= ?1 AND id < ?1 || x'ff' LIMIT ?2",
        )?;
        let rows = stmt.query_map(params![key, limit as i64], |r| r.get::<_, String>(0))?;
        rows.map(|b| from_json("job", &b?)).collect()
    }

    /// A page of jobs, oldest first unless `reverse`.
    pub fn jobs(&self, filter: &JobFilter) -> Result<Vec<Job>, StoreError> {
        let order = if filter.reverse { "DESC" } else { "ASC" };
        let ns = filter
            .namespace
            .clone()
            .filter(|n| n != "*" && !n.is_empty());
        let scheduled = if filter.scheduled {
            " AND id IN (SELECT job_id FROM schedules)"
        } else {
            ""
        };
        let sql = format!(
            "SELECT body FROM jobs WHERE (?1 IS NULL OR namespace = ?1){scheduled}
             AND (?4 IS NULL OR id IN (SELECT child_id FROM schedule_runs WHERE parent_id = ?4))
             ORDER BY create_time {order}, id {order} LIMIT ?2 OFFSET ?3"
        );
        let mut stmt = self.0.prepare_cached(&sql)?;
        let limit = if filter.limit == 0 {
            -1
        } else {
            filter.limit as i64
        };
        let rows = stmt.query_map(
            params![ns, limit, filter.offset as i64, filter.parent],
            |r| r.get::<_, String>(0),
        )?;
        rows.map(|b| from_json("job", &b?)).collect()
    }

    /// Ids of jobs that are not terminal.
    pub fn active_job_ids(&self) -> Result<Vec<String>, StoreError> {
        let mut stmt = self.0.prepare_cached(
            "SELECT id FROM jobs WHERE state NOT IN ('Completed', 'Failed', 'Stopped')",
        )?;
        let rows = stmt.query_map([], |r| r.get(0))?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// The placement explanation recorded for a job (JSON list).
    pub fn placement(&self, job_id: &str) -> Result<String, StoreError> {
        Ok(self
            .0
            .prepare_cached("SELECT placement FROM jobs WHERE id = ?1")?
            .query_row(params![job_id], |r| r.get(0))
            .optional()?
            .unwrap_or_else(|| "[]".into()))
    }

    /// An execution by exact id.
    pub fn execution(&self, id: &str) -> Result<Option<Execution>, StoreError> {
        let body: Option<String> = self
            .0
            .prepare_cached("SELECT body FROM executions WHERE id = ?1")?
            .query_row(params![id], |r| r.get(0))
            .optional()?;
        body.map(|b| from_json("execution", &b)).transpose()
    }

    /// Every execution of a job, oldest first.
    pub fn executions(&self, job_id: &str) -> Result<Vec<Execution>, StoreError> {
        let mut stmt = self.0.prepare_cached(
            "SELECT body FROM executions WHERE job_id = ?1 ORDER BY create_time, id",
        )?;
        let rows = stmt.query_map(params![job_id], |r| r.get::<_, String>(0))?;
        rows.map(|b| from_json("execution", &b?)).collect()
    }

    /// History entries of a job with `SeqNum > after`, in order.
    pub fn history(&self, job_id: &str, after: u64) -> Result<Vec<JobHistory>, StoreError> {
        let mut stmt = self.0.prepare_cached(
            "SELECT body FROM history WHERE job_id = ?1 AND seq > ?2 ORDER BY seq",
        )?;
        let rows = stmt.query_map(params![job_id, after], |r| r.get::<_, String>(0))?;
        rows.map(|b| from_json("history", &b?)).collect()
    }

    /// How many jobs are in each state.
    pub fn job_counts(&self) -> Result<Vec<(String, u64)>, StoreError> {
        let mut stmt = self
            .0
            .prepare_cached("SELECT state, COUNT(*) FROM jobs GROUP BY state ORDER BY state")?;
        let rows = stmt.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, u64>(1)?)))?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Every known node.
    pub fn nodes(&self) -> Result<Vec<NodeState>, StoreError> {
        let mut stmt = self
            .0
            .prepare_cached("SELECT body FROM nodes ORDER BY id")?;
        let rows = stmt.query_map([], |r| r.get::<_, String>(0))?;
        rows.map(|b| from_json("node", &b?)).collect()
    }

    /// The highest sequence applied from `peer`.
    pub fn link_applied(&self, peer: &str) -> Result<u64, StoreError> {
        outbox::link_applied(self.0, peer)
    }
}

impl Tx<'_> {
    /// Reads inside the transaction.
    pub fn read(&self) -> Reader<'_> {
        Reader(&self.tx)
    }

    /// Inserts or replaces a job.
    pub fn put_job(&self, job: &Job) -> Result<(), StoreError> {
        self.exec(
            "INSERT INTO jobs (id, name, namespace, state, create_time, body) VALUES (?1, ?2, ?3, ?4, ?5, ?6)
             ON CONFLICT(id) DO UPDATE SET name = excluded.name, namespace = excluded.namespace,
               state = excluded.state, body = excluded.body",
            params![
                job.id,
                job.name,
                job.namespace,
                job.state.state_type.as_str(),
                job.create_time,
                to_json(job)
            ],
        )?;
        Ok(())
    }

    /// Records why nodes were not chosen for a job (JSON list).
    pub fn set_placement(&self, job_id: &str, placement_json: &str) -> Result<(), StoreError> {
        self.exec(
            "UPDATE jobs SET placement = ?2 WHERE id = ?1",
            params![job_id, placement_json],
        )?;
        Ok(())
    }

    /// Inserts or replaces an execution (stored without its embedded job).
    pub fn put_execution(&self, execution: &Execution) -> Result<(), StoreError> {
        let mut stored = execution.clone();
        stored.job = None;
        self.exec(
            "INSERT INTO executions (id, job_id, node_id, create_time, body) VALUES (?1, ?2, ?3, ?4, ?5)
             ON CONFLICT(id) DO UPDATE SET body = excluded.body",
            params![
                stored.id.as_str(),
                stored.job_id.as_str(),
                stored.node_id.as_str(),
                stored.create_time,
                to_json(&stored)
            ],
        )?;
        Ok(())
    }

    /// Appends a history entry, assigning its `SeqNum`; returns it.
    pub fn append_history(&self, mut entry: JobHistory) -> Result<JobHistory, StoreError> {
        let next: u64 = self.query_one(
            "SELECT COALESCE(MAX(seq), 0) + 1 FROM history WHERE job_id = ?1",
            params![entry.job_id],
            |r| r.get(0),
        )?;
        entry.seq_num = next;
        self.exec(
            "INSERT INTO history (job_id, seq, body) VALUES (?1, ?2, ?3)",
            params![entry.job_id, next, to_json(&entry)],
        )?;
        Ok(entry)
    }

    /// Inserts or replaces a node.
    pub fn put_node(&self, node: &NodeState) -> Result<(), StoreError> {
        self.exec(
            "INSERT INTO nodes (id, body) VALUES (?1, ?2) ON CONFLICT(id) DO UPDATE SET body = excluded.body",
            params![node.info.node_id, to_json(node)],
        )?;
        Ok(())
    }

    /// Removes a node and its link state.
    pub fn delete_node(&self, id: &str) -> Result<(), StoreError> {
        self.exec("DELETE FROM nodes WHERE id = ?1", params![id])?;
        self.forget_node_key(id)?;
        self.link_forget(id)
    }
}
