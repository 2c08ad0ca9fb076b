//! The `analytics` engine: one read-only SQL statement over this node's data files
//! (Parquet, CSV, newline-delimited JSON) with DataFusion; see `shoal-analytics`.
//!
//! Engine params (keys case-insensitive): `Query` (or `SQL`), required; `MaxRows`;
//! `TimeoutMs`; `Format`: `json` (the default) or `parquet`. A job may lower the node's
//! limits, never raise them; the execution's own timeout also applies. The node offers the engine only when it allows some data directory
//! (`--data-allow DIR`): reading files is opt-in, as host commands are.
//!
//! Output as the `query` engine's: one JSON object per row on stdout (typed values), the rows
//! as a JSON array in `<results_dir>/query/rows.json`, and the typed [`Answer`] for the
//! report, which fleet SQL streams and merges.
//!
//! With `Format: parquet` every row goes to `<results_dir>/query/rows.parquet` instead,
//! bounded by the node's output file limit rather than by the answer's row and size limits:
//! for results too big to answer, which the job's publisher (S3, say) takes off the node.
//! Stdout then holds one line saying what was written.

use std::sync::Arc;
use std::time::Duration;

use futures::future::BoxFuture;
use serde_json::Value as Json;
use shoal_analytics::{DataAnswer, DataError, run_sql, run_sql_to_parquet};
pub use shoal_analytics::{DataDir, DataPolicy};
use shoal_types::{Answer, SpecConfig};
use tokio_util::sync::CancellationToken;

use crate::params::{SqlParams, sql_params, write_answer};
use crate::{ExecutionRequest, Executor, ExecutorError, ExecutorRegistry, Exit, LogSink, Stream};

/// Where a job's rows go, from its `Format` param.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Format {
    /// Answered: stdout lines, `query/rows.json` and the report.
    Json,
    /// Written to `query/rows.parquet` in the results.
    Parquet,
}

/// The results path of a `Format: parquet` job's file.
pub const PARQUET_RESULT: &str = "query/rows.parquet";

fn format(engine: &SpecConfig) -> Result<Format, ExecutorError> {
    match engine.param("Format") {
        None | Some(Json::Null) => Ok(Format::Json),
        Some(Json::String(s)) if s.eq_ignore_ascii_case("json") => Ok(Format::Json),
        Some(Json::String(s)) if s.eq_ignore_ascii_case("parquet") => Ok(Format::Parquet),
        Some(other) => Err(ExecutorError::user(format!(
            "{ENGINE} engine: param Format must be json or parquet, got {other}; parquet writes every row to {PARQUET_RESULT} in the results, for the job's publisher"
        ))),
    }
}

/// The engine's name in job specs.
pub const ENGINE: &str = "analytics";

/// Why a node without data directories does not offer the engine.
pub const ANALYTICS_DISABLED: &str = "analytics disabled (start the agent with --data-allow DIR to let queries read the files under DIR)";

/// Runs SQL over the node's data files within its [`DataPolicy`].
#[derive(Debug, Clone)]
pub struct AnalyticsExecutor {
    policy: DataPolicy,
}

impl AnalyticsExecutor {
    /// An executor whose queries never exceed `policy`.
    pub fn new(policy: DataPolicy) -> Self {
        AnalyticsExecutor { policy }
    }

    /// The policy for one query: the node's, lowered by the job's params and timeout.
    fn policy_for(&self, params: &SqlParams, execution_timeout: Option<Duration>) -> DataPolicy {
        let mut policy = self.policy.clone();
        if let Some(rows) = params.max_rows {
            policy.max_rows = policy.max_rows.min(rows);
        }
        for t in [params.timeout, execution_timeout].into_iter().flatten() {
            policy.timeout = policy.timeout.min(t);
        }
        policy
    }
}

/// Offers the engine when `policy` allows some directory; otherwise marks it unavailable
/// with what to do, which the scheduler shows per node.
pub fn install(registry: &mut ExecutorRegistry, policy: DataPolicy) {
    if policy.allow.is_empty() {
        registry.describe_policy(ENGINE, "disabled");
        registry.mark_unavailable(ENGINE, ANALYTICS_DISABLED);
        return;
    }
    let dirs: Vec<String> = policy.allow.iter().map(ToString::to_string).collect();
    registry.describe_policy(
        ENGINE,
        format!(
            "reads {}; memory {} MiB, {}s, {} rows per query",
            dirs.join(", "),
            policy.memory_limit >> 20,
            policy.timeout.as_secs(),
            policy.max_rows
        ),
    );
    registry.register(Arc::new(AnalyticsExecutor::new(policy)));
}

fn to_answer(a: DataAnswer) -> Answer {
    Answer {
        columns: a.columns,
        rows: a.rows,
        warnings: vec![],
        wall_ms: a.wall.as_millis() as u64,
    }
}

fn classify(e: DataError, timeout: Duration) -> ExecutorError {
    match e {
        DataError::Timeout(_) => ExecutorError::Timeout(timeout),
        other => ExecutorError::user(other.to_string()),
    }
}

impl Executor for AnalyticsExecutor {
    fn engine(&self) -> &'static str {
        ENGINE
    }

    fn validate(&self, engine: &SpecConfig) -> Result<(), ExecutorError> {
        sql_params(engine, ENGINE)?;
        format(engine).map(|_| ())
    }

    fn live_answer(
        &self,
        sql: String,
        max_rows: Option<u64>,
        timeout: Duration,
    ) -> Option<BoxFuture<'static, Result<Answer, String>>> {
        let params = SqlParams {
            sql,
            max_rows: max_rows.map(|n| usize::try_from(n).unwrap_or(usize::MAX)),
            timeout: None,
        };
        let policy = self.policy_for(&params, Some(timeout));
        Some(Box::pin(async move {
            run_sql(&params.sql, &policy)
                .await
                .map(to_answer)
                .map_err(|e| e.to_string())
        }))
    }

    fn run(
        &self,
        request: ExecutionRequest,
        logs: LogSink,
        cancel: CancellationToken,
    ) -> BoxFuture<'static, Result<Exit, ExecutorError>> {
        let prepared = sql_params(&request.engine, ENGINE).and_then(|p| {
            let policy = self.policy_for(&p, request.timeout);
            Ok((p, policy, format(&request.engine)?))
        });
        Box::pin(async move {
            let (params, policy, format) = prepared?;
            if format == Format::Parquet {
                let path = request.results_dir.join(PARQUET_RESULT);
                let written = tokio::select! {
                    written = run_sql_to_parquet(&params.sql, &policy, &path) => written.map_err(|e| classify(e, policy.timeout))?,
                    () = cancel.cancelled() => return Err(ExecutorError::Cancelled),
                };
                tracing::info!(
                    execution = %request.execution_id,
                    rows = written.rows,
                    bytes = written.bytes,
                    files = written.files,
                    wall_ms = written.wall.as_millis() as u64,
                    "analytics query written as parquet"
                );
                let summary = vec![
                    Json::from(PARQUET_RESULT),
                    Json::from(written.rows),
                    Json::from(written.bytes),
                ];
                let columns: Vec<String> = ["file", "rows", "bytes"].map(String::from).into();
                let line: serde_json::Map<String, Json> = columns
                    .iter()
                    .cloned()
                    .zip(summary.iter().cloned())
                    .collect();
                logs.write(Stream::Stdout, format!("{}\n", Json::Object(line)));
                logs.answer(Answer {
                    columns,
                    rows: vec![summary],
                    warnings: vec![],
                    wall_ms: written.wall.as_millis() as u64,
                });
                return Ok(Exit { code: 0 });
            }
            let answer = tokio::select! {
                answered = run_sql(&params.sql, &policy) => answered.map_err(|e| classify(e, policy.timeout))?,
                () = cancel.cancelled() => return Err(ExecutorError::Cancelled),
            };
            tracing::info!(
                execution = %request.execution_id,
                rows = answer.rows.len(),
                files = answer.files,
                wall_ms = answer.wall.as_millis() as u64,
                "analytics query answered"
            );
            let answer = to_answer(answer);
            let rows = answer
                .rows
                .iter()
                .map(|r| {
                    answer
                        .columns
                        .iter()
                        .cloned()
                        .zip(r.iter().cloned())
                        .collect::<serde_json::Map<String, Json>>()
                })
                .collect();
            write_answer(answer, rows, &logs, &request.results_dir);
            Ok(Exit { code: 0 })
        })
    }
}
