//! Running one SQL query over the host tables, read-only and bounded.
//!
//! Queries run on an in-memory connection with the host tables registered. Each thread keeps
//! its connection for the next query (opening one and registering the tables costs more than
//! a small query itself), but every query gets a fresh [`QueryState`]: it reads the host anew
//! and sees no snapshot, warning or timer of an earlier query. The guardrails below leave a
//! query no way to change the connection itself (no tables, no `PRAGMA`, no `ATTACH`).
//! Guardrails:
//!
//! - **read-only**: an authorizer allows only `SELECT`, column reads, recursive CTEs and
//!   SQL functions (never `load_extension`); every write, DDL, `ATTACH`, `DETACH`,
//!   `PRAGMA` and transaction statement is refused with [`QueryError::ReadOnly`]. The
//!   connection is also opened with `SQLITE_OPEN_READ_ONLY`, and a statement SQLite does
//!   not report as read-only is refused before it runs.
//! - **time**: a progress handler interrupts the statement once [`QueryLimits::timeout`]
//!   has passed ([`QueryError::Timeout`]); tables check the same deadline while reading.
//! - **rows**: a query that yields more than [`QueryLimits::max_rows`] rows fails with
//!   [`QueryError::TooManyRows`] rather than returning a silently truncated answer: fleet
//!   counts built on a truncated answer would be wrong without anyone noticing.
//! - **memory**: `SQLITE_LIMIT_LENGTH` caps every string SQLite builds
//!   ([`QueryLimits::max_value_bytes`]), the page cache of sorts and temporary b-trees is
//!   capped (they spill to temporary files past it), and the collected answer is capped at
//!   [`QueryLimits::max_result_bytes`] ([`QueryError::ResultTooLarge`]). SQLite's heap
//!   limit is process-wide, so it is left alone: it would also throttle the agent's store.

use std::cell::RefCell;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rusqlite::hooks::{AuthAction, AuthContext, Authorization};
use rusqlite::limits::Limit;
use rusqlite::{Connection, OpenFlags};

use crate::allowed::AllowedDir;
use crate::tables;
use crate::value::Value;
use crate::vtab::{self, QueryState, StateSlot};

/// Bounds on one query.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueryLimits {
    /// Wall-clock limit for preparing, reading the host and stepping through the rows.
    pub timeout: Duration,
    /// Most rows the answer may have.
    pub max_rows: usize,
    /// Longest string or blob SQLite may build (`SQLITE_LIMIT_LENGTH`), in bytes.
    pub max_value_bytes: usize,
    /// Most bytes the collected answer may take (approximate: text length plus 8 per value).
    pub max_result_bytes: usize,
    /// Directories whose files `file_lines` and `nginx_access` may read (the node's
    /// `--log-allow`); empty, they read nothing.
    pub log_dirs: Vec<AllowedDir>,
}

impl Default for QueryLimits {
    /// 30 s, 100 000 rows, 16 MiB values, 64 MiB answers, no readable log directories.
    fn default() -> Self {
        QueryLimits {
            timeout: Duration::from_secs(30),
            max_rows: 100_000,
            max_value_bytes: 16 << 20,
            max_result_bytes: 64 << 20,
            log_dirs: Vec::new(),
        }
    }
}

/// What a query cost.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct QueryCost {
    /// Wall-clock time from opening the connection to the last row.
    pub wall: Duration,
    /// Rows returned.
    pub rows: usize,
    /// Approximate bytes of the answer (see [`QueryLimits::max_result_bytes`]).
    pub bytes: usize,
}

/// The answer to a query.
#[derive(Debug, Clone, PartialEq)]
pub struct QueryResult {
    /// Column names, as the query named them (`AS` aliases included).
    pub columns: Vec<String>,
    /// Rows, values in column order, typed as SQLite returned them.
    pub rows: Vec<Vec<Value>>,
    /// Things the caller should know although the query succeeded (for example that a
    /// table needing a `WHERE path = ...` got none and returned no rows).
    pub warnings: Vec<String>,
    /// What the query cost.
    pub cost: QueryCost,
}

impl QueryResult {
    /// The rows as `osqueryi --json` prints them: one object per row, keys are column
    /// names, every value a string (`NULL` as `""`).
    pub fn osquery_rows(&self) -> Vec<serde_json::Map<String, serde_json::Value>> {
        self.rows
            .iter()
            .map(|row| {
                self.columns
                    .iter()
                    .zip(row)
                    .map(|(c, v)| (c.clone(), serde_json::Value::String(v.to_osquery_string())))
                    .collect()
            })
            .collect()
    }

    /// The rows as JSON objects with typed values (numbers stay numbers, `NULL` is `null`).
    pub fn typed_rows(&self) -> Vec<serde_json::Map<String, serde_json::Value>> {
        self.rows
            .iter()
            .map(|row| {
                self.columns
                    .iter()
                    .zip(row)
                    .map(|(c, v)| (c.clone(), v.to_json()))
                    .collect()
            })
            .collect()
    }
}

/// Why a query gave no answer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum QueryError {
    /// SQLite rejected or failed the query (syntax errors, unknown columns, type errors);
    /// the message is SQLite's.
    #[error("{message}")]
    Sql {
        /// SQLite's message.
        message: String,
    },
    /// The query names a table this node does not have.
    #[error("no such table: {table} (known tables: {})", known.join(", "))]
    NoSuchTable {
        /// The table the query named.
        table: String,
        /// Every table this node offers, sorted.
        known: Vec<String>,
    },
    /// The query tried to change something; host queries are read-only.
    #[error("query refused: {action} is not allowed, host queries are read-only (use SELECT)")]
    ReadOnly {
        /// What was attempted (`INSERT into users`, `ATTACH`, `PRAGMA writable_schema`).
        action: String,
    },
    /// The text holds no statement.
    #[error("query is empty: send one SELECT statement")]
    Empty,
    /// The text holds more than one statement.
    #[error("query has more than one statement: send one SELECT statement at a time")]
    MultipleStatements,
    /// The query ran past its time limit and was interrupted.
    #[error(
        "query ran past its time limit of {limit:?} and was stopped; narrow it or raise the limit"
    )]
    Timeout {
        /// The limit.
        limit: Duration,
    },
    /// The answer has more rows than allowed.
    #[error(
        "query returned more than {limit} rows; add a LIMIT or a WHERE, or raise the row limit"
    )]
    TooManyRows {
        /// The limit.
        limit: usize,
    },
    /// The answer is larger than allowed.
    #[error("query answer exceeds {limit} bytes; select fewer columns or rows, or raise the limit")]
    ResultTooLarge {
        /// The limit.
        limit: usize,
    },
}

/// Runs one read-only SQL statement (SQLite dialect) over the host tables.
///
/// Errors are [`QueryError`]s whose messages can be shown to users as they are.
pub fn run_query(sql: &str, limits: &QueryLimits) -> Result<QueryResult, QueryError> {
    let start = Instant::now();
    let deadline = start.checked_add(limits.timeout);
    let state = Arc::new(QueryState::new(deadline, limits.log_dirs.clone()));
    let denied: Arc<Mutex<Option<String>>> = Arc::default();
    let fail = |e| sql_error(e, &state, &denied, limits);
    let mut host = match HOST_CONNECTION.with(|c| c.borrow_mut().take()) {
        Some(host) => host,
        None => HostConnection::open().map_err(fail)?,
    };
    host.slot.set(state.clone());
    let result = guard(&mut host.conn, limits, &state, &denied)
        .map_err(fail)
        .and_then(|()| collect(&mut host.conn, sql, limits, start, &state, &denied));
    // Every way out of `collect` has finalized the statement; the handlers hold only this
    // query's state and are replaced by the next query's.
    host.slot.set(Arc::default());
    HOST_CONNECTION.with(|c| *c.borrow_mut() = Some(host));
    result
}

/// A connection with the host tables registered, and the slot its tables read the running
/// query's state from.
struct HostConnection {
    conn: Connection,
    slot: Arc<StateSlot>,
}

thread_local! {
    /// The connection this thread's last host query ran on, kept for its next one.
    static HOST_CONNECTION: RefCell<Option<HostConnection>> = const { RefCell::new(None) };
}

impl HostConnection {
    fn open() -> rusqlite::Result<Self> {
        let flags = OpenFlags::SQLITE_OPEN_READ_ONLY
            | OpenFlags::SQLITE_OPEN_NO_MUTEX
            | OpenFlags::SQLITE_OPEN_URI;
        let conn = Connection::open_with_flags("file:shoal-hostquery?mode=memory", flags)?;
        // Before any authorizer, which refuses every PRAGMA.
        conn.pragma_update(None, "cache_size", -16384)?; // KiB: sorts spill to temp files past it
        let slot = Arc::<StateSlot>::default();
        for table in tables::ALL {
            vtab::register(&conn, *table, &slot)?;
        }
        Ok(HostConnection { conn, slot })
    }
}

/// Runs one read-only SQL statement over rows held in memory, presented as the table
/// `table` with the given columns (values keep their types; SQLite's dialect and the same
/// guardrails as [`run_query`]). Fleet SQL's merge stage runs here over the union of every
/// node's answer.
pub fn run_over_rows(
    sql: &str,
    table: &str,
    columns: &[String],
    rows: &[Vec<Value>],
    limits: &QueryLimits,
) -> Result<QueryResult, QueryError> {
    let start = Instant::now();
    let deadline = start.checked_add(limits.timeout);
    let state = Arc::new(QueryState::new(deadline, limits.log_dirs.clone()));
    let denied: Arc<Mutex<Option<String>>> = Arc::default();
    let fail = |e| sql_error(e, &state, &denied, limits);
    let mut conn = Connection::open_in_memory().map_err(fail)?;
    conn.pragma_update(None, "cache_size", -16384)
        .map_err(fail)?;
    let quoted: Vec<String> = columns
        .iter()
        .map(|c| format!("\"{}\"", c.replace('"', "\"\"")))
        .collect();
    let load = conn.transaction().map_err(fail)?;
    load.execute_batch(&format!(
        "CREATE TABLE \"{}\" ({})",
        table.replace('"', "\"\""),
        quoted.join(", ")
    ))
    .map_err(fail)?;
    {
        let marks = vec!["?"; columns.len()].join(", ");
        let mut insert = load
            .prepare(&format!("INSERT INTO \"{table}\" VALUES ({marks})"))
            .map_err(fail)?;
        for row in rows {
            if deadline.is_some_and(|d| Instant::now() >= d) {
                return Err(QueryError::Timeout {
                    limit: limits.timeout,
                });
            }
            insert
                .execute(rusqlite::params_from_iter(row.iter()))
                .map_err(fail)?;
        }
    }
    load.commit().map_err(fail)?;
    guard(&mut conn, limits, &state, &denied).map_err(fail)?;
    collect(&mut conn, sql, limits, start, &state, &denied)
}

/// Prepares `sql` on a guarded connection and collects its rows within the limits.
fn collect(
    conn: &mut Connection,
    sql: &str,
    limits: &QueryLimits,
    start: Instant,
    state: &Arc<QueryState>,
    denied: &Arc<Mutex<Option<String>>>,
) -> Result<QueryResult, QueryError> {
    let fail = |e: rusqlite::Error| sql_error(e, state, denied, limits);
    if sql.trim().trim_matches(';').trim().is_empty() {
        return Err(QueryError::Empty);
    }
    let mut stmt = conn.prepare(sql).map_err(fail)?;
    if !stmt.readonly() {
        return Err(QueryError::ReadOnly {
            action: "a statement that writes".into(),
        });
    }
    let columns: Vec<String> = stmt.column_names().map(str::to_string).collect();
    let width = columns.len();
    let mut rows = Vec::new();
    let mut bytes = 0usize;
    let mut cursor = stmt.query([]).map_err(fail)?;
    while let Some(row) = cursor.next().map_err(fail)? {
        if rows.len() >= limits.max_rows {
            return Err(QueryError::TooManyRows {
                limit: limits.max_rows,
            });
        }
        let mut values = Vec::with_capacity(width);
        for i in 0..width {
            let v = Value::from_sql(row.get_ref(i).map_err(fail)?);
            bytes += v.weight();
            values.push(v);
        }
        if bytes > limits.max_result_bytes {
            return Err(QueryError::ResultTooLarge {
                limit: limits.max_result_bytes,
            });
        }
        rows.push(values);
    }
    drop(cursor);
    drop(stmt);
    // Drop the handlers' closures before reading the shared state they hold.
    let _ = conn.progress_handler(0, None::<fn() -> bool>);
    let _ = conn.authorizer(None::<fn(AuthContext<'_>) -> Authorization>);
    let warnings = state
        .warnings
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .clone();
    let cost = QueryCost {
        wall: start.elapsed(),
        rows: rows.len(),
        bytes,
    };
    tracing::debug!(
        rows = cost.rows,
        wall_ms = cost.wall.as_millis() as u64,
        "host query done"
    );
    Ok(QueryResult {
        columns,
        rows,
        warnings,
        cost,
    })
}

/// Names of the tables every query can use, sorted.
pub fn table_names() -> Vec<&'static str> {
    let mut names: Vec<&'static str> = tables::ALL.iter().map(|t| t.name()).collect();
    names.sort_unstable();
    names
}

/// Installs the guardrails: value and statement size limits, no `ATTACH`, the time limit's
/// progress handler and the read-only authorizer.
fn guard(
    conn: &mut Connection,
    limits: &QueryLimits,
    state: &Arc<QueryState>,
    denied: &Arc<Mutex<Option<String>>>,
) -> rusqlite::Result<()> {
    let value_bytes = i32::try_from(limits.max_value_bytes)
        .unwrap_or(i32::MAX)
        .max(1);
    conn.set_limit(Limit::SQLITE_LIMIT_LENGTH, value_bytes)?;
    conn.set_limit(Limit::SQLITE_LIMIT_SQL_LENGTH, 1 << 20)?;
    conn.set_limit(Limit::SQLITE_LIMIT_ATTACHED, 0)?;

    let deadline = state.deadline;
    let timer = state.clone();
    conn.progress_handler(
        1000,
        Some(move || {
            let late = deadline.is_some_and(|d| Instant::now() >= d);
            if late {
                timer.timed_out.store(true, Ordering::SeqCst);
            }
            late
        }),
    )?;
    let denied = denied.clone();
    conn.authorizer(Some(move |cx: AuthContext<'_>| match refusal(&cx.action) {
        None => Authorization::Allow,
        Some(action) => {
            denied
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .get_or_insert(action);
            Authorization::Deny
        }
    }))?;
    Ok(())
}

/// What is refused, named for the error message; `None` allows the action.
fn refusal(action: &AuthAction<'_>) -> Option<String> {
    match action {
        AuthAction::Select | AuthAction::Read { .. } | AuthAction::Recursive => None,
        AuthAction::Function { function_name } => {
            if function_name.eq_ignore_ascii_case("load_extension") {
                Some("load_extension()".into())
            } else {
                None
            }
        }
        AuthAction::Insert { table_name } => Some(format!("INSERT into {table_name}")),
        AuthAction::Update { table_name, .. } => Some(format!("UPDATE of {table_name}")),
        AuthAction::Delete { table_name } => Some(format!("DELETE from {table_name}")),
        AuthAction::CreateTable { table_name } | AuthAction::CreateTempTable { table_name } => {
            Some(format!("CREATE TABLE {table_name}"))
        }
        AuthAction::Attach { .. } => Some("ATTACH".into()),
        AuthAction::Detach { .. } => Some("DETACH".into()),
        AuthAction::Pragma { pragma_name, .. } => Some(format!("PRAGMA {pragma_name}")),
        AuthAction::Transaction { .. } | AuthAction::Savepoint { .. } => {
            Some("a transaction statement".into())
        }
        other => Some(
            format!("{other:?}")
                .split([' ', '{'])
                .next()
                .unwrap_or("this statement")
                .to_string(),
        ),
    }
}

fn sql_error(
    e: rusqlite::Error,
    state: &QueryState,
    denied: &Mutex<Option<String>>,
    limits: &QueryLimits,
) -> QueryError {
    if state.timed_out.load(Ordering::SeqCst) {
        return QueryError::Timeout {
            limit: limits.timeout,
        };
    }
    if let Some(action) = denied.lock().unwrap_or_else(|e| e.into_inner()).take() {
        return QueryError::ReadOnly { action };
    }
    let message = match &e {
        rusqlite::Error::SqliteFailure(_, Some(m)) => m.clone(),
        rusqlite::Error::SqlInputError { msg, .. } => msg.clone(),
        rusqlite::Error::MultipleStatement => return QueryError::MultipleStatements,
        other => other.to_string(),
    };
    if let Some(table) = message
        .strip_prefix("table ")
        .and_then(|m| m.strip_suffix(" may not be modified"))
    {
        return QueryError::ReadOnly {
            action: format!("changing table {table}"),
        };
    }
    if let Some(table) = message.strip_prefix("no such table: ") {
        return QueryError::NoSuchTable {
            table: table.trim().to_string(),
            known: table_names().into_iter().map(str::to_string).collect(),
        };
    }
    QueryError::Sql { message }
}
