//! SQL over the data files on one node: Parquet, CSV and newline-delimited JSON, read with
//! DataFusion under the node's [`DataPolicy`]. The core of the `analytics` engine.
//!
//! ```text
//! SELECT region, sum(amount) AS total, count(*) AS n
//! FROM read_parquet('/data/sales/*.parquet') GROUP BY region
//! ```
//!
//! - **Table functions** `read_parquet`, `read_csv` (header row; `.tsv` files are
//!   tab-separated) and `read_json` (one object per line) take one or more absolute paths
//!   or globs, each under a directory the node allows (`--data-allow`); a file reached through
//!   a symlink counts where it really is. Files whose columns differ are read by column name
//!   (DuckDB's `union_by_name`): a column a file lacks is `NULL` there (see [`tables`]).
//! - **Read-only**: one query statement; DDL, DML (`COPY`, `INSERT`) and `SET` are refused,
//!   and no table exists but what the table functions read.
//! - **Bounded**: a memory limit for the operators that hold data (hash aggregates, sorts,
//!   joins; no spilling to disk), a time limit, a row limit and an answer size limit, each a
//!   clear error, never a truncated answer ([`DataError`]).
//! - **Big results as files**: [`run_sql_to_parquet`] writes every row to one Parquet file
//!   (bounded by its size, not by the answer's limits) for a publisher to take off the node.
//! - **Off the caller's runtime**: queries run on one process-wide runtime of their own, at
//!   most [`MAX_CONCURRENT`] at once, so a heavy scan never starves the agent's link.

use std::path::Path;
use std::sync::{Arc, LazyLock};
use std::time::{Duration, Instant};

use datafusion::error::DataFusionError;
use datafusion::execution::SendableRecordBatchStream;
use datafusion::execution::disk_manager::{DiskManagerBuilder, DiskManagerMode};
use datafusion::execution::runtime_env::RuntimeEnvBuilder;
use datafusion::prelude::{SessionConfig, SessionContext};
use futures::StreamExt;
use serde_json::Value as Json;
use tokio::sync::Semaphore;

mod answer;
mod functions;
pub mod sample;
pub mod tables;

pub use answer::Rows;
/// A directory analytics queries may read (`--data-allow`), shared with the host tables.
pub use shoal_hostquery::allowed::AllowedDir as DataDir;

/// Queries running at once in this process; more wait for a slot.
pub const MAX_CONCURRENT: usize = 2;

/// What a node lets data queries do.
#[derive(Debug, Clone, PartialEq)]
pub struct DataPolicy {
    /// Directories whose files (at any depth) queries may read. Empty: nothing is readable.
    pub allow: Vec<DataDir>,
    /// Bytes the query's operators may hold at once.
    pub memory_limit: usize,
    /// Wall-clock limit per query.
    pub timeout: Duration,
    /// Most rows in an answer.
    pub max_rows: usize,
    /// Largest answer, in approximate bytes of its JSON.
    pub max_answer_bytes: usize,
    /// Largest Parquet file a query may write ([`run_sql_to_parquet`]); the row and answer
    /// limits do not apply to files.
    pub max_file_bytes: u64,
}

impl Default for DataPolicy {
    /// Nothing readable, 256 MiB, 60 s, 100,000 rows, 8 MiB answers, 1 GiB files.
    fn default() -> Self {
        DataPolicy {
            allow: vec![],
            memory_limit: 256 << 20,
            timeout: Duration::from_secs(60),
            max_rows: 100_000,
            max_answer_bytes: 8 << 20,
            max_file_bytes: 1 << 30,
        }
    }
}

/// A query's answer: named columns, typed JSON values (numbers stay numbers, `NULL` is
/// `null`, dates and times are ISO 8601 text).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct DataAnswer {
    /// Column names, in order.
    pub columns: Vec<String>,
    /// Rows, values in column order.
    pub rows: Vec<Vec<Json>>,
    /// Files read.
    pub files: usize,
    /// Time from start to the last row.
    pub wall: Duration,
}

/// What a query left in a Parquet file ([`run_sql_to_parquet`]).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct FileAnswer {
    /// Column names, in order.
    pub columns: Vec<String>,
    /// Rows written.
    pub rows: u64,
    /// Bytes of the file.
    pub bytes: u64,
    /// Data files read.
    pub files: usize,
    /// Time from start to the file's close.
    pub wall: Duration,
}

/// Why a query gave no answer. Every message names the limit or the input and what to do.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum DataError {
    /// The SQL does not parse or plan, or a table function's arguments are wrong.
    #[error("{0}")]
    Sql(String),
    /// A statement other than a query.
    #[error(
        "data queries are read-only: only one SELECT (or WITH ... SELECT) statement runs; {0} is refused"
    )]
    ReadOnly(String),
    /// A path outside the node's allowed directories, or a file that cannot be read.
    #[error("{0}")]
    Files(String),
    /// The operators needed more memory than the node allows.
    #[error(
        "query memory limit {} exceeded: aggregate more on the node, filter with WHERE, or raise the node's --data-memory-limit",
        mib(*limit)
    )]
    MemoryLimit {
        /// The limit, in bytes.
        limit: usize,
    },
    /// The query ran past its time limit.
    #[error("query time limit {}s exceeded; filter with WHERE or raise TimeoutMs (the node's --data-timeout caps it)", .0.as_secs_f64())]
    Timeout(Duration),
    /// More rows than allowed.
    #[error(
        "the answer has more than {0} rows: aggregate on the node (GROUP BY) or add LIMIT; the node's --data-max-rows caps it"
    )]
    TooManyRows(usize),
    /// An answer larger than allowed.
    #[error(
        "the answer is over {} (the node's answer size limit): select fewer columns, aggregate on the node or add LIMIT",
        mib(*.0)
    )]
    TooLarge(usize),
    /// A Parquet output larger than allowed; the partial file is removed.
    #[error(
        "the Parquet output is over {} (the node's output file limit, its agent's --data-max-file): aggregate on the node, filter with WHERE or select fewer columns",
        mib(usize::try_from(*.0).unwrap_or(usize::MAX))
    )]
    FileTooLarge(u64),
    /// The output file could not be written.
    #[error("could not write the query's output {0}")]
    Output(String),
}

fn mib(bytes: usize) -> String {
    if bytes >= 1 << 20 && bytes.is_multiple_of(1 << 20) {
        format!("{} MiB", bytes >> 20)
    } else {
        format!("{bytes} bytes")
    }
}

/// The runtime data queries run on, with one worker per CPU.
static RUNTIME: LazyLock<tokio::runtime::Runtime> = LazyLock::new(|| {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(std::thread::available_parallelism().map_or(2, usize::from))
        .thread_name("shoal-analytics")
        .enable_all()
        .build()
        .expect("the analytics runtime starts")
});

static SLOTS: LazyLock<Arc<Semaphore>> = LazyLock::new(|| Arc::new(Semaphore::new(MAX_CONCURRENT)));

/// Runs one read-only query under `policy`. Waits for a slot first; the time limit starts
/// when the query does.
pub async fn run_sql(sql: &str, policy: &DataPolicy) -> Result<DataAnswer, DataError> {
    let (sql, owned) = (sql.to_string(), policy.clone());
    on_runtime(policy, async move { run_here(&sql, &owned).await }).await
}

/// Runs one read-only query under `policy` and writes every row to a Parquet file at
/// `path` instead of answering them: for results too big for an answer, which a publisher
/// then takes off the node. The file is bounded by [`DataPolicy::max_file_bytes`], not by
/// the row and answer limits; a query that fails leaves no file behind.
pub async fn run_sql_to_parquet(
    sql: &str,
    policy: &DataPolicy,
    path: &Path,
) -> Result<FileAnswer, DataError> {
    let (sql, owned, path) = (sql.to_string(), policy.clone(), path.to_path_buf());
    on_runtime(policy, async move {
        let written = write_here(&sql, &owned, &path).await;
        if written.is_err() {
            let _ = std::fs::remove_file(&path);
        }
        written
    })
    .await
}

/// Runs `work` on the analytics runtime once a slot is free, within the policy's time limit.
async fn on_runtime<T, F>(policy: &DataPolicy, work: F) -> Result<T, DataError>
where
    T: Send + 'static,
    F: Future<Output = Result<T, DataError>> + Send + 'static,
{
    let slot = SLOTS
        .clone()
        .acquire_owned()
        .await
        .expect("the query slots stay open");
    let timeout = policy.timeout;
    let task = RUNTIME.spawn(async move {
        let _slot = slot;
        tokio::time::timeout(timeout, work)
            .await
            .unwrap_or(Err(DataError::Timeout(timeout)))
    });
    // Dropping the caller's future (a cancelled execution) stops the query too.
    let abort = task.abort_handle();
    let _stop = Abort(abort);
    match task.await {
        Ok(answer) => answer,
        Err(e) => Err(DataError::Sql(format!("the query stopped: {e}"))),
    }
}

/// Aborts a spawned query when the caller stops waiting for it.
struct Abort(tokio::task::AbortHandle);

impl Drop for Abort {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// A session that reads only through the table functions, within `policy`.
pub fn session(policy: &DataPolicy) -> Result<(SessionContext, tables::Reads), DataError> {
    let runtime = RuntimeEnvBuilder::new()
        .with_memory_limit(policy.memory_limit, 1.0)
        .with_disk_manager_builder(
            DiskManagerBuilder::default().with_mode(DiskManagerMode::Disabled),
        )
        .build_arc()
        .map_err(|e| DataError::Sql(format!("could not start the query engine: {e}")))?;
    let partitions = std::thread::available_parallelism().map_or(2, usize::from);
    let config = SessionConfig::new()
        .with_target_partitions(partitions)
        .with_information_schema(false);
    let ctx = SessionContext::new_with_config_rt(config, runtime);
    let reads = tables::register(&ctx, &policy.allow);
    functions::register(&ctx);
    Ok((ctx, reads))
}

/// A planned query: its columns and the stream of its batches.
struct Planned {
    /// Keeps the session alive while the stream runs.
    _ctx: SessionContext,
    reads: tables::Reads,
    columns: Vec<String>,
    stream: SendableRecordBatchStream,
}

async fn plan(sql: &str, policy: &DataPolicy) -> Result<Planned, DataError> {
    let (ctx, reads) = session(policy)?;
    read_only(&ctx, sql)?;
    let options = datafusion::execution::context::SQLOptions::new()
        .with_allow_ddl(false)
        .with_allow_dml(false)
        .with_allow_statements(false);
    let frame = ctx
        .sql_with_options(sql, options)
        .await
        .map_err(|e| classify(e, policy, &reads))?;
    let columns: Vec<String> = frame
        .schema()
        .fields()
        .iter()
        .map(|f| f.name().clone())
        .collect();
    let stream = frame
        .execute_stream()
        .await
        .map_err(|e| classify(e, policy, &reads))?;
    Ok(Planned {
        _ctx: ctx,
        reads,
        columns,
        stream,
    })
}

async fn run_here(sql: &str, policy: &DataPolicy) -> Result<DataAnswer, DataError> {
    let started = Instant::now();
    let mut planned = plan(sql, policy).await?;
    let mut rows = Rows::new(policy.max_rows, policy.max_answer_bytes);
    while let Some(batch) = planned.stream.next().await {
        let batch = batch.map_err(|e| classify(e, policy, &planned.reads))?;
        rows.push(&batch)?;
    }
    Ok(DataAnswer {
        columns: planned.columns,
        rows: rows.into_rows(),
        files: planned.reads.files(),
        wall: started.elapsed(),
    })
}

async fn write_here(sql: &str, policy: &DataPolicy, path: &Path) -> Result<FileAnswer, DataError> {
    use datafusion::parquet::arrow::ArrowWriter;
    let started = Instant::now();
    let mut planned = plan(sql, policy).await?;
    let failed = |e: &dyn std::fmt::Display| DataError::Output(format!("{}: {e}", path.display()));
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).map_err(|e| failed(&e))?;
    }
    let file = std::fs::File::create(path).map_err(|e| failed(&e))?;
    let mut writer =
        ArrowWriter::try_new(file, planned.stream.schema(), None).map_err(|e| failed(&e))?;
    let mut rows = 0u64;
    while let Some(batch) = planned.stream.next().await {
        let batch = batch.map_err(|e| classify(e, policy, &planned.reads))?;
        rows += batch.num_rows() as u64;
        writer.write(&batch).map_err(|e| failed(&e))?;
        let size = (writer.bytes_written() + writer.in_progress_size()) as u64;
        if size > policy.max_file_bytes {
            return Err(DataError::FileTooLarge(policy.max_file_bytes));
        }
    }
    writer.close().map_err(|e| failed(&e))?;
    let bytes = std::fs::metadata(path).map_err(|e| failed(&e))?.len();
    if bytes > policy.max_file_bytes {
        return Err(DataError::FileTooLarge(policy.max_file_bytes));
    }
    Ok(FileAnswer {
        columns: planned.columns,
        rows,
        bytes,
        files: planned.reads.files(),
        wall: started.elapsed(),
    })
}

/// Refuses anything but one query statement, naming what was given.
fn read_only(ctx: &SessionContext, sql: &str) -> Result<(), DataError> {
    use datafusion::sql::parser::{DFParser, Statement};
    use datafusion::sql::sqlparser::ast::Statement as Sql;
    let dialect = datafusion::sql::sqlparser::dialect::GenericDialect {};
    let _ = ctx;
    let statements = DFParser::parse_sql_with_dialect(sql, &dialect).map_err(|e| {
        let message = clean(&e.to_string());
        let message = message
            .strip_prefix("sql parser error: ")
            .unwrap_or(&message)
            .to_string();
        DataError::Sql(format!("SQL syntax error: {message}"))
    })?;
    match statements.len() {
        0 => {
            return Err(DataError::Sql(
                "the query is empty: give one SELECT statement".into(),
            ));
        }
        1 => {}
        n => {
            return Err(DataError::Sql(format!(
                "{n} statements given: a data query is one SELECT statement"
            )));
        }
    }
    match &statements[0] {
        Statement::Statement(s) if matches!(**s, Sql::Query(_)) => Ok(()),
        Statement::Statement(s) => Err(DataError::ReadOnly(statement_kind(&s.to_string()))),
        Statement::CopyTo(_) => Err(DataError::ReadOnly("COPY".into())),
        other => Err(DataError::ReadOnly(statement_kind(&other.to_string()))),
    }
}

/// The first word of a statement, for messages.
fn statement_kind(sql: &str) -> String {
    sql.split_whitespace()
        .next()
        .unwrap_or("the statement")
        .to_uppercase()
}

/// Turns DataFusion's error into the one to show: limits first, then the table functions'
/// own messages, then DataFusion's text without its internal prefixes.
fn classify(e: DataFusionError, policy: &DataPolicy, reads: &tables::Reads) -> DataError {
    if let Some(err) = reads.take_error() {
        return err;
    }
    match e.find_root() {
        DataFusionError::ResourcesExhausted(_) => DataError::MemoryLimit {
            limit: policy.memory_limit,
        },
        root => DataError::Sql(clean(&root.to_string())),
    }
}

/// DataFusion's message without "Error during planning: " and the like.
fn clean(message: &str) -> String {
    let mut m = message.trim();
    for prefix in [
        "Error during planning: ",
        "This feature is not implemented: ",
        "SQL error: ",
        "Schema error: ",
        "Execution error: ",
        "Arrow error: ",
        "External error: ",
    ] {
        if let Some(rest) = m.strip_prefix(prefix) {
            m = rest;
        }
    }
    m.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_read_in_mebibytes_when_whole() {
        assert_eq!(
            DataError::MemoryLimit { limit: 256 << 20 }.to_string(),
            "query memory limit 256 MiB exceeded: aggregate more on the node, filter with WHERE, or raise the node's --data-memory-limit"
        );
        assert_eq!(mib(1000), "1000 bytes");
    }
}
