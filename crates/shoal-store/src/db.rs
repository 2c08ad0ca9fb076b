//! Opening databases, migrations and the transaction wrapper.

use std::path::Path;

use rusqlite::config::DbConfig;
use rusqlite::{Connection, OpenFlags};

/// Why the store failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// SQLite reported an error.
    #[error("database error: {0}")]
    Sqlite(#[from] rusqlite::Error),
    /// A stored row could not be decoded (a bug, or a file written by a newer Shoal).
    #[error("stored {what} is unreadable: {source}; was this data dir written by a newer shoal?")]
    Corrupt {
        /// What kind of object.
        what: &'static str,
        /// The decode error.
        source: serde_json::Error,
    },
    /// The data dir could not be prepared.
    #[error("cannot open state database {path}: {message}")]
    Open {
        /// The file.
        path: String,
        /// Why.
        message: String,
    },
}

/// Opens (creating if needed) a database file and brings its schema to the latest version.
pub(crate) fn open(path: &Path, migrations: &[&str]) -> Result<Connection, StoreError> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(|e| StoreError::Open {
            path: path.display().to_string(),
            message: e.to_string(),
        })?;
    }
    let conn = Connection::open(path).map_err(|e| StoreError::Open {
        path: path.display().to_string(),
        message: e.to_string(),
    })?;
    configure(&conn)?;
    migrate(&conn, migrations)?;
    Ok(conn)
}

/// Opens a private in-memory database with the latest schema: no file, nothing survives the
/// process.
pub(crate) fn open_in_memory(migrations: &[&str]) -> Result<Connection, StoreError> {
    let conn = Connection::open_in_memory()?;
    stable_plans(&conn)?;
    conn.pragma_update(None, "foreign_keys", "ON")?;
    migrate(&conn, migrations)?;
    Ok(conn)
}

/// A second, read-only connection to the same file, for API reads beside the writer.
pub(crate) fn open_reader(path: &Path) -> Result<Connection, StoreError> {
    let conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )?;
    stable_plans(&conn)?;
    conn.busy_timeout(std::time::Duration::from_secs(5))?;
    Ok(conn)
}

/// Plans a statement once, when it is prepared. Without this, SQLite (3.54) marks statements
/// such as `SELECT MAX(seq) FROM history WHERE job_id = ?1` to be planned again each time a
/// new value is bound, which made every cached statement of that kind cost a full parse:
/// 6.7 µs instead of 2 µs for the history append that every placement makes. Shoal keeps no
/// planner statistics (no `ANALYZE`), so a bound value could not improve a plan anyway.
fn stable_plans(conn: &Connection) -> Result<(), StoreError> {
    conn.set_db_config(DbConfig::SQLITE_DBCONFIG_ENABLE_QPSG, true)?;
    Ok(())
}

fn configure(conn: &Connection) -> Result<(), StoreError> {
    stable_plans(conn)?;
    // WAL lets API reads proceed beside the single writer. synchronous=NORMAL in WAL mode
    // keeps every committed transaction across a process crash (kill -9); only an OS crash or
    // power loss can drop the last commits, which the agent link's replay then re-sends.
    conn.pragma_update(None, "journal_mode", "WAL")?;
    conn.pragma_update(None, "synchronous", "NORMAL")?;
    conn.pragma_update(None, "foreign_keys", "ON")?;
    conn.busy_timeout(std::time::Duration::from_secs(5))?;
    conn.set_prepared_statement_cache_capacity(64);
    Ok(())
}

fn migrate(conn: &Connection, migrations: &[&str]) -> Result<(), StoreError> {
    let current: i64 = conn.pragma_query_value(None, "user_version", |r| r.get(0))?;
    for (i, sql) in migrations.iter().enumerate().skip(current as usize) {
        let tx = conn.unchecked_transaction()?;
        tx.execute_batch(sql)?;
        tx.pragma_update(None, "user_version", (i + 1) as i64)?;
        tx.commit()?;
    }
    Ok(())
}

/// An open write transaction; dropped without [`Tx::commit`] it rolls back.
pub struct Tx<'a> {
    pub(crate) tx: rusqlite::Transaction<'a>,
}

impl Tx<'_> {
    /// Runs one statement, prepared once per connection and cached: parsing the SQL anew on
    /// every write was a visible share of the engine's time.
    pub(crate) fn exec(&self, sql: &str, params: impl rusqlite::Params) -> rusqlite::Result<usize> {
        self.tx.prepare_cached(sql)?.execute(params)
    }

    /// Reads one row with a cached statement.
    pub(crate) fn query_one<T>(
        &self,
        sql: &str,
        params: impl rusqlite::Params,
        f: impl FnOnce(&rusqlite::Row<'_>) -> rusqlite::Result<T>,
    ) -> rusqlite::Result<T> {
        self.tx.prepare_cached(sql)?.query_row(params, f)
    }

    /// Makes every change in the transaction durable.
    pub fn commit(self) -> Result<(), StoreError> {
        self.tx.commit()?;
        Ok(())
    }
}

pub(crate) fn to_json<T: serde::Serialize>(v: &T) -> String {
    serde_json::to_string(v).expect("model types always serialise")
}

pub(crate) fn from_json<T: serde::de::DeserializeOwned>(
    what: &'static str,
    s: &str,
) -> Result<T, StoreError> {
    serde_json::from_str(s).map_err(|source| StoreError::Corrupt { what, source })
}

#[cfg(test)]
mod tests {
    use rusqlite::{StatementStatus, params};

    use super::*;

    /// Binds new values to one cached statement and counts how often SQLite planned it again.
    fn replans(conn: &Connection) -> i32 {
        conn.execute_batch(
            "CREATE TABLE t (k TEXT NOT NULL, seq INTEGER NOT NULL, PRIMARY KEY (k, seq));",
        )
        .unwrap();
        let sql = "SELECT COALESCE(MAX(seq), 0) + 1 FROM t WHERE k = ?1";
        for (i, k) in ["a", "b", "a", "c"].into_iter().enumerate() {
            let next: i64 = conn
                .prepare_cached(sql)
                .unwrap()
                .query_row(params![k], |r| r.get(0))
                .unwrap();
            conn.execute("INSERT INTO t (k, seq) VALUES (?1, ?2)", params![k, next])
                .unwrap();
            assert!(next >= 1, "step {i}");
        }
        conn.prepare_cached(sql)
            .unwrap()
            .get_status(StatementStatus::RePrepare)
    }

    #[test]
    fn cached_statements_are_not_planned_again_for_each_bound_value() {
        let dir = tempfile::tempdir().unwrap();
        let on_disk = open(&dir.path().join("state.db"), &[]).unwrap();
        assert_eq!(replans(&on_disk), 0);
        let in_memory = open_in_memory(&[]).unwrap();
        assert_eq!(replans(&in_memory), 0);
        // What the setting prevents: the same statement on a plain connection.
        assert!(replans(&Connection::open_in_memory().unwrap()) > 0);
    }
}
