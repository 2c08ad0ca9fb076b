//! The `query` engine: one read-only SQL statement over this node's osquery-compatible host
//! tables (see `shoal-hostquery`).
//!
//! Engine params (keys case-insensitive): `Query` (or `SQL`) — the statement, required;
//! `MaxRows` — row limit; `TimeoutMs` — time limit in milliseconds. A job may lower the
//! node's limits, never raise them; the execution's own timeout also applies.
//!
//! Output: one JSON object per row on stdout (keys are column names, values are strings as
//! `osqueryi --json` prints them), warnings on stderr, the whole answer as a JSON array in
//! `<results_dir>/query/rows.json`, and the whole answer with typed values as the
//! execution's structured [`Answer`](shoal_types::Answer), which the agent sends to the
//! orchestrator in full (fleet SQL streams and merges it). SQL errors, refused writes and
//! limit breaches are user errors: the same query fails the same way on every node.
//!
//! The log tables (`file_lines`, `nginx_access`) read only under the directories the node
//! offers with [`QueryExecutor::with_log_dirs`]; by default there are none.
//!
//! The answer is bounded by the node's limits; [`QueryExecutor::default`] keeps answers
//! under [`DEFAULT_MAX_ANSWER_BYTES`] because an answer travels in one link message.

use std::path::Path;
use std::sync::{Arc, LazyLock};
use std::time::Duration;

use futures::future::BoxFuture;
use shoal_hostquery::{QueryError, QueryLimits, QueryResult, run_query};
use shoal_types::{Answer, SpecConfig};
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

/// A directory the log tables may read, as `--log-allow` names it (`DIR` or `NAME=DIR`).
pub use shoal_hostquery::allowed::AllowedDir as LogDir;

use crate::params::{SqlParams as QueryParams, sql_params, write_answer};
use crate::{ExecutionRequest, Executor, ExecutorError, Exit, LogSink};

/// Largest answer (approximate bytes, see `QueryLimits::max_result_bytes`) the default
/// executor returns: an answer travels whole in one agent-link message.
pub const DEFAULT_MAX_ANSWER_BYTES: usize = 8 << 20;

/// Runs SQL over the host tables.
#[derive(Debug, Clone)]
pub struct QueryExecutor {
    limits: QueryLimits,
}

impl Default for QueryExecutor {
    /// `QueryLimits::default()` with answers capped at [`DEFAULT_MAX_ANSWER_BYTES`].
    fn default() -> Self {
        QueryExecutor::new(QueryLimits {
            max_result_bytes: DEFAULT_MAX_ANSWER_BYTES,
            ..QueryLimits::default()
        })
    }
}

impl QueryExecutor {
    /// An executor whose queries never exceed `limits` (the node's policy).
    pub fn new(limits: QueryLimits) -> Self {
        QueryExecutor { limits }
    }

    /// The same executor, letting `file_lines` and `nginx_access` read the log files under
    /// `dirs` (the node's `--log-allow`); without it they read nothing.
    pub fn with_log_dirs(mut self, dirs: Vec<LogDir>) -> Self {
        self.limits.log_dirs = dirs;
        self
    }

    /// The limits for one execution: the node's, lowered by the job's params and timeout.
    fn limits_for(&self, params: &QueryParams, execution_timeout: Option<Duration>) -> QueryLimits {
        let mut limits = self.limits.clone();
        if let Some(rows) = params.max_rows {
            limits.max_rows = limits.max_rows.min(rows);
        }
        for t in [params.timeout, execution_timeout].into_iter().flatten() {
            limits.timeout = limits.timeout.min(t);
        }
        limits
    }
}

fn params(engine: &SpecConfig) -> Result<QueryParams, ExecutorError> {
    sql_params(engine, "query")
}

impl Executor for QueryExecutor {
    fn engine(&self) -> &'static str {
        "query"
    }

    fn validate(&self, engine: &SpecConfig) -> Result<(), ExecutorError> {
        params(engine).map(|_| ())
    }

    fn live_answer(
        &self,
        sql: String,
        max_rows: Option<u64>,
        timeout: Duration,
    ) -> Option<BoxFuture<'static, Result<Answer, String>>> {
        let this = self.clone();
        Some(Box::pin(async move {
            this.answer(&sql, max_rows, timeout).await
        }))
    }

    fn run(
        &self,
        request: ExecutionRequest,
        logs: LogSink,
        cancel: CancellationToken,
    ) -> BoxFuture<'static, Result<Exit, ExecutorError>> {
        let prepared = params(&request.engine).map(|p| {
            let limits = self.limits_for(&p, request.timeout);
            (p, limits)
        });
        let span = tracing::info_span!("query_execution", execution = %request.execution_id, job = %request.job_id);
        let run = async move {
            let (params, limits) = prepared?;
            let sql = params.sql.clone();
            let task_limits = limits.clone();
            // The query is bounded by its own time limit, so on cancellation the blocking
            // thread is left to finish on its own; nothing it does outlives that limit.
            let task = run_blocking(move || run_query(&sql, &task_limits));
            let result = tokio::select! {
                joined = task => joined.map_err(|e| ExecutorError::transient(format!("query engine: query task failed: {e}")))?,
                () = cancel.cancelled() => return Err(ExecutorError::Cancelled),
            };
            let result = result.map_err(|e| classify(e, &limits))?;
            emit(&result, &logs, &request.results_dir);
            tracing::info!(
                rows = result.cost.rows,
                wall_ms = result.cost.wall.as_millis() as u64,
                "query answered"
            );
            Ok(Exit { code: 0 })
        };
        // The span goes with the future, not with the thread: a guard held across the awaits
        // above would mark whatever else that worker thread polls as part of this query.
        Box::pin(run.instrument(span))
    }
}

impl QueryExecutor {
    /// Answers a live fleet query: the statement over the host tables within this node's
    /// limits, lowered by the query's own; `Err` holds the message to show for this node.
    pub async fn answer(
        &self,
        sql: &str,
        max_rows: Option<u64>,
        timeout: Duration,
    ) -> Result<Answer, String> {
        let params = QueryParams {
            sql: sql.to_string(),
            max_rows: max_rows.map(|n| usize::try_from(n).unwrap_or(usize::MAX)),
            timeout: None,
        };
        let limits = self.limits_for(&params, Some(timeout));
        let result = run_blocking(move || run_query(&params.sql, &limits))
            .await
            .map_err(|e| format!("query engine: query task failed: {e}"))?;
        result.map(|r| to_answer(&r)).map_err(|e| e.to_string())
    }
}

/// Host queries running at once in this process: one per CPU. A burst of questions (many
/// users at once, or a simulated fleet of agents in one process) waits here for a slot
/// instead of starting a blocking thread per query: at 10,000 agents in one process, the
/// threads' context switches cost more than the queries. A query's time limit starts when
/// it runs, not while it waits.
static SLOTS: LazyLock<Arc<Semaphore>> = LazyLock::new(|| {
    Arc::new(Semaphore::new(
        std::thread::available_parallelism().map_or(2, usize::from),
    ))
});

/// Runs `query` on the blocking pool once a slot is free.
async fn run_blocking<T: Send + 'static>(
    query: impl FnOnce() -> T + Send + 'static,
) -> Result<T, tokio::task::JoinError> {
    // The semaphore is never closed. The slot goes with the query: a cancelled execution
    // stops waiting for it, but it holds the slot until it has finished.
    let slot = SLOTS
        .clone()
        .acquire_owned()
        .await
        .expect("the query slots stay open");
    tokio::task::spawn_blocking(move || {
        let _slot = slot;
        query()
    })
    .await
}

/// The typed answer an execution's report or a live query's reply carries.
fn to_answer(result: &QueryResult) -> Answer {
    Answer {
        columns: result.columns.clone(),
        rows: result
            .rows
            .iter()
            .map(|r| r.iter().map(|v| v.to_json()).collect())
            .collect(),
        warnings: result.warnings.clone(),
        wall_ms: result.cost.wall.as_millis() as u64,
    }
}

fn classify(e: QueryError, limits: &QueryLimits) -> ExecutorError {
    match e {
        QueryError::Timeout { .. } => ExecutorError::Timeout(limits.timeout),
        other => ExecutorError::user(other.to_string()),
    }
}

/// Streams the rows to stdout as `osqueryi --json` prints them, warnings to stderr, writes
/// `query/rows.json` and leaves the typed answer for the report.
fn emit(result: &QueryResult, logs: &LogSink, results_dir: &Path) {
    write_answer(to_answer(result), result.osquery_rows(), logs, results_dir);
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use shoal_types::{JobType, Network, Resources};

    use serde_json::Value as Json;

    use super::*;
    use crate::{LogChunk, Stream};

    fn request(params: Json, results_dir: &Path) -> ExecutionRequest {
        let Json::Object(params) = params else {
            panic!("params must be an object")
        };
        ExecutionRequest {
            job_id: "j-test".into(),
            execution_id: "e-test".into(),
            job_type: JobType::Ops,
            engine: SpecConfig {
                kind: "query".into(),
                params,
            },
            env: BTreeMap::new(),
            inputs: vec![],
            results_dir: results_dir.to_path_buf(),
            result_paths: vec![],
            resources: Resources::default(),
            network: Network::default(),
            timeout: None,
        }
    }

    async fn run(
        params: Json,
    ) -> (
        Result<Exit, ExecutorError>,
        Vec<LogChunk>,
        tempfile::TempDir,
    ) {
        let dir = tempfile::tempdir().unwrap();
        let (sink, mut rx) = LogSink::channel();
        let out = QueryExecutor::default()
            .run(request(params, dir.path()), sink, CancellationToken::new())
            .await;
        let mut chunks = vec![];
        while let Ok(c) = rx.try_recv() {
            chunks.push(c);
        }
        (out, chunks, dir)
    }

    #[tokio::test]
    async fn a_query_prints_osquery_json_lines_and_writes_rows_json() {
        let (out, chunks, dir) =
            run(serde_json::json!({"query": "SELECT uid, username FROM users WHERE uid = 0"}))
                .await;
        assert_eq!(out, Ok(Exit { code: 0 }));
        let stdout: Vec<&str> = chunks
            .iter()
            .filter(|c| c.stream == Stream::Stdout)
            .map(|c| c.text.as_str())
            .collect();
        assert_eq!(stdout, vec!["{\"uid\":\"0\",\"username\":\"root\"}\n"]);
        let saved: Json =
            serde_json::from_slice(&std::fs::read(dir.path().join("query/rows.json")).unwrap())
                .unwrap();
        assert_eq!(saved, serde_json::json!([{"uid": "0", "username": "root"}]));
    }

    #[tokio::test]
    async fn the_whole_answer_is_left_typed_for_the_report() {
        let dir = tempfile::tempdir().unwrap();
        let (sink, _rx) = LogSink::channel();
        let slot = sink.answer_slot();
        let sql = "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c LIMIT 3000) SELECT x, 'r' || x AS label FROM c";
        let out = QueryExecutor::default()
            .run(
                request(serde_json::json!({ "Query": sql }), dir.path()),
                sink,
                CancellationToken::new(),
            )
            .await;
        assert_eq!(out, Ok(Exit { code: 0 }));
        let answer = slot.take().expect("an answer");
        assert_eq!(answer.columns, vec!["x", "label"]);
        assert_eq!(answer.rows.len(), 3000, "every row, not a log head");
        assert_eq!(
            answer.rows[2999],
            vec![Json::from(3000), Json::from("r3000")]
        );
    }

    #[tokio::test]
    async fn a_live_answer_reads_the_host_within_the_node_and_query_limits() {
        let q = QueryExecutor::default();
        let timeout = Duration::from_secs(5);
        let a = q
            .answer("SELECT username FROM users WHERE uid = 0", None, timeout)
            .await
            .unwrap();
        assert_eq!(
            (a.columns, a.rows),
            (vec!["username".to_string()], vec![vec![Json::from("root")]])
        );
        let sql = "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c LIMIT 10) SELECT x FROM c";
        let err = q.answer(sql, Some(3), timeout).await.unwrap_err();
        assert!(err.contains("more than 3 rows"), "{err}");
        let err = q
            .answer("SELECT * FROM nope", None, timeout)
            .await
            .unwrap_err();
        assert!(err.contains("no such table: nope"), "{err}");
    }

    #[tokio::test]
    async fn the_sql_param_is_accepted_as_a_synonym() {
        let (out, chunks, _dir) = run(serde_json::json!({"SQL": "SELECT 1 AS one"})).await;
        assert_eq!(out, Ok(Exit { code: 0 }));
        assert_eq!(chunks[0].text, "{\"one\":\"1\"}\n");
    }

    #[tokio::test]
    async fn sql_errors_are_user_errors_with_sqlites_message() {
        let (out, _, _dir) = run(serde_json::json!({"Query": "SELECT * FROM nope"})).await;
        let err = out.unwrap_err();
        assert!(!err.is_retryable());
        assert!(
            err.to_string()
                .starts_with("no such table: nope (known tables:"),
            "{err}"
        );
    }

    #[tokio::test]
    async fn the_max_rows_param_lowers_the_row_limit() {
        let sql = "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c LIMIT 5) SELECT x FROM c";
        let (out, _, _dir) = run(serde_json::json!({"Query": sql, "MaxRows": 3})).await;
        assert!(out.unwrap_err().to_string().contains("more than 3 rows"));
    }

    #[test]
    fn validation_names_the_missing_or_bad_param() {
        let exec = QueryExecutor::default();
        let err = exec.validate(&SpecConfig::of("query")).unwrap_err();
        assert!(err.to_string().contains("missing param Query"), "{err}");
        let mut spec = SpecConfig::of("query");
        spec.params.insert("Query".into(), "SELECT 1".into());
        spec.params.insert("TimeoutMs".into(), (-5).into());
        let err = exec.validate(&spec).unwrap_err();
        assert!(
            err.to_string()
                .contains("TimeoutMs must be a positive integer"),
            "{err}"
        );
    }

    #[test]
    fn job_params_lower_the_node_limits_but_never_raise_them() {
        let exec = QueryExecutor::new(QueryLimits {
            max_rows: 100,
            timeout: Duration::from_secs(5),
            ..QueryLimits::default()
        });
        let p = QueryParams {
            sql: "SELECT 1".into(),
            max_rows: Some(1000),
            timeout: Some(Duration::from_secs(1)),
        };
        let limits = exec.limits_for(&p, Some(Duration::from_secs(10)));
        assert_eq!(limits.max_rows, 100);
        assert_eq!(limits.timeout, Duration::from_secs(1));
    }
}
