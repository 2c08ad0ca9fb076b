//! Fleet SQL on the orchestrator: ask every matching node one question now, stream the answers.
//!
//! A fleet query is live, as Fleet's live queries and Salt's publish are: it is not a job and
//! leaves no execution behind on any node. The engine picks the nodes (the scheduler's
//! [`reach`](shoal_scheduler::reach): approved, offering the `query` engine, matching the
//! constraints), sends each connected one a `Query` frame, and counts the disconnected ones
//! unreachable at once. Answers come back as `QueryAnswer` frames and go from the link task
//! straight to `LiveQueries` (`registry.rs`), never through the engine thread or the store:
//!
//! ```text
//!  ask_query ──► engine: reach() ──► LiveQueries::open ──► Query frame to each connected node
//!  node: run the SQL (no execution, no files) ──► QueryAnswer ──► link task ──► LiveQueries::answer
//!     ──► every watcher; the last answer (or the deadline, or a lost link) wakes the driver
//!  driver ──► coverage (targeted, answered, errored, unreachable) + merge stage ──► Done
//! ```
//!
//! Why not an ops job (the first design): a job writes an execution, a `Run` message, three
//! reports and their history per node, durably on both sides. At 10,000 nodes that cost about
//! a millisecond of CPU per node on each side, ten times the target of an answer in a second,
//! for durability a question asked now does not need. A query that must survive restarts or
//! wait for offline nodes is still a job: `Engine: {Type: query}` in a job file (ops or batch).
//! A finished query's answers stay readable for [`KEEP_FINISHED`].

use std::sync::Arc;
use std::time::Duration;

use serde_json::{Value as Json, json};
use shoal_hostquery::QueryLimits;
use shoal_types::Job;
pub use shoal_types::answer::{
    Coverage, MergeAnswer, NodeAnswer, Outcome, QueryEvent, QueryRequest,
};
use tokio::sync::Notify;

use crate::clock::now;
use crate::error::{BadRequest, OrchestratorError};

mod merge;
mod registry;
mod split;

pub use merge::{RESULTS_TABLE, coverage, merge};
pub(crate) use registry::LiveQueries;
pub use registry::{KEEP_FINISHED, QueryStream};
pub use split::{AUTO as MERGE_AUTO, Split, approximate, split};

/// A label every node carries in placement (not stored), holding its own id, so a query
/// (or any job) can target nodes by id: `Key: shoal.node.id, Operator: in`.
pub const NODE_ID_LABEL: &str = "shoal.node.id";

/// Default query timeout, in seconds.
pub const DEFAULT_TIMEOUT_SECS: u64 = 60;

/// The engine that answers a query that names none: the host tables.
pub const HOST_ENGINE: &str = "query";

/// The engines a fleet query may name.
pub const QUERY_ENGINES: [&str; 2] = [HOST_ENGINE, "analytics"];

/// The request as the nodes and the merge stage will run it: the engine checked and
/// `--merge auto` split into the node query and the exact merge.
pub fn prepare(request: &QueryRequest) -> Result<QueryRequest, OrchestratorError> {
    let mut out = request.clone();
    let engine = request
        .engine
        .as_deref()
        .map(str::trim)
        .unwrap_or(HOST_ENGINE);
    if !QUERY_ENGINES.contains(&engine) {
        return Err(BadRequest::QueryEngine(engine.to_string()).into());
    }
    out.engine = Some(engine.to_string());
    if request
        .merge
        .as_deref()
        .is_some_and(|m| m.trim().eq_ignore_ascii_case(MERGE_AUTO))
    {
        let halves = split(&request.query).map_err(BadRequest::MergeSplit)?;
        out.query = halves.node_sql;
        out.merge = Some(halves.merge_sql);
    }
    Ok(out)
}

/// The ops job a query is equivalent to: the engine picks the nodes a live query asks as the
/// scheduler would place this job, and `shoal job run` of the same spec asks durably.
pub fn query_job(request: &QueryRequest) -> Result<Job, OrchestratorError> {
    let sql = request.query.trim();
    if sql.is_empty() {
        return Err(BadRequest::EmptyQuery.into());
    }
    let mut constraints =
        serde_json::to_value(&request.constraints).map_err(BadRequest::QueryConstraints)?;
    if !request.nodes.is_empty()
        && let Json::Array(list) = &mut constraints
    {
        list.push(json!({ "Key": NODE_ID_LABEL, "Operator": "in", "Values": request.nodes }));
    }
    let timeout = timeout_secs(request);
    let mut params = json!({ "Query": sql, "TimeoutMs": timeout * 1000 });
    if let Some(rows) = request.max_rows {
        params["MaxRows"] = rows.into();
    }
    let job = json!({
        "Type": "ops",
        "Constraints": constraints,
        "Tasks": [{
            "Name": "query",
            "Engine": { "Type": request.engine.as_deref().unwrap_or(HOST_ENGINE), "Params": params },
            "Timeouts": { "TotalTimeout": timeout, "ExecutionTimeout": timeout },
        }],
    });
    let job = shoal_types::spec::read_job_value(job).map_err(BadRequest::QuerySpec)?;
    shoal_types::spec::finish_job(job).map_err(|e| match e {
        shoal_types::spec::SpecError::Invalid(errors) => BadRequest::QueryFields(errors).into(),
        other => BadRequest::QuerySpec(other).into(),
    })
}

pub(crate) fn timeout_secs(request: &QueryRequest) -> u64 {
    if request.timeout == 0 {
        DEFAULT_TIMEOUT_SECS
    } else {
        request.timeout
    }
}

/// Waits for a query's answers (until every node asked has answered, its link closed, or
/// `timeout` passed), then ends it with its coverage and merge stage. Runs as its own task.
pub(crate) async fn drive(
    queries: LiveQueries,
    query_id: String,
    all_in: Arc<Notify>,
    timeout: Duration,
    metrics: Arc<crate::metrics::Metrics>,
) {
    if tokio::time::timeout(timeout, all_in.notified())
        .await
        .is_err()
    {
        queries.expire(&query_id, timeout);
    }
    // Every targeted node has an answer by now: the driver wakes when none is pending,
    // and the deadline settles the rest.
    let (answers, merge_sql, asked) = queries.answers(&query_id);
    let mut coverage = coverage(&answers);
    let wall = (now() - asked).max(0);
    coverage.wall_ms = (wall / 1_000_000) as u64;
    metrics.query_done(&coverage, Duration::from_nanos(wall as u64));
    let merge = match merge_sql {
        Some(sql) => {
            let run =
                tokio::task::spawn_blocking(move || merge(&sql, &answers, &QueryLimits::default()));
            let mut m = run.await.unwrap_or_else(|e| MergeAnswer {
                sql: String::new(),
                columns: vec![],
                rows: vec![],
                error: Some(format!("merge stage failed: {e}")),
                warnings: vec![],
                answered: 0,
                targeted: 0,
            });
            m.targeted = coverage.targeted;
            Some(m)
        }
        None => None,
    };
    let message = if coverage.targeted == 0 {
        "no node offers the query's engine and matches its constraints; `shoal node list` shows the nodes and their labels (the analytics engine needs agents started with --data-allow DIR)".to_string()
    } else {
        format!(
            "{} of {} nodes answered",
            coverage.answered, coverage.targeted
        )
    };
    queries.finish(
        &query_id,
        QueryEvent::Done {
            coverage,
            merge,
            message,
        },
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_query_targets_nodes_as_an_ops_job_with_the_query_engine_would() {
        let job = query_job(&QueryRequest {
            query: "SELECT hostname FROM system_info".into(),
            nodes: vec!["n-1".into()],
            timeout: 5,
            ..QueryRequest::default()
        })
        .unwrap();
        assert_eq!(job.job_type, shoal_types::JobType::Ops);
        assert_eq!(job.task().engine.kind, "query");
        assert_eq!(
            job.task().engine.param("Query"),
            Some(&json!("SELECT hostname FROM system_info"))
        );
        assert_eq!(job.constraints[0].key, NODE_ID_LABEL);
        assert_eq!(job.constraints[0].values, vec!["n-1"]);
        assert_eq!(job.task().timeouts.total_timeout, 5);
    }

    #[test]
    fn an_empty_query_is_refused_before_it_reaches_any_node() {
        let err = query_job(&QueryRequest::default()).unwrap_err();
        assert!(err.to_string().contains("query is empty"), "{err}");
    }
}
