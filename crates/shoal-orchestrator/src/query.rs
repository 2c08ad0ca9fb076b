//! Fleet SQL on the orchestrator: ask every matching node one question, stream the answers.
//!
//! A query is an ops job whose task uses the `query` engine, so it is placed, accounted for
//! and listed like any ops job. What this module adds:
//!
//! ```text
//!  submit_query ──► ops job (Engine query, Params.Query, TotalTimeout = query timeout)
//!  node report applied (engine.rs) ──► committed ──► QueryHub::publish ──► every watcher
//!  watch_query: subscribe first, then replay what the store already has (dedupe by
//!               execution id), so no answer is missed or shown twice
//!  job terminal ──► Done: coverage (targeted, answered, errored, unreachable) + merge stage
//! ```
//!
//! Per answer the engine does O(1) work here (a map lookup and a channel send per watcher);
//! the answer itself travels in the execution's `RunOutput.Answer`, stored with the report.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, Mutex};

use serde_json::{Value as Json, json};
use shoal_hostquery::{QueryError, QueryLimits, Value, run_over_rows};
pub use shoal_types::answer::{
    Coverage, MergeAnswer, NodeAnswer, Outcome, QueryEvent, QueryRequest,
};
use shoal_types::{ComputeStateType, Execution, Job};
use tokio::sync::mpsc::{UnboundedReceiver, UnboundedSender, unbounded_channel};

use crate::error::OrchestratorError;

/// A label every node carries in placement (not stored), holding its own id, so a query
/// (or any job) can target nodes by id: `Key: shoal.node.id, Operator: in`.
pub const NODE_ID_LABEL: &str = "shoal.node.id";

/// Job meta key holding the merge statement of a query.
pub const MERGE_META: &str = "shoal.io/query-merge";

/// Job meta key marking a job as a fleet query (value: the SQL).
pub const QUERY_META: &str = "shoal.io/query";

/// The name of the merge stage's table.
pub const RESULTS_TABLE: &str = "results";

/// Default query timeout.
pub const DEFAULT_TIMEOUT_SECS: u64 = 60;

/// The ops job that asks a fleet query's question.
pub fn query_job(request: &QueryRequest) -> Result<Job, OrchestratorError> {
    let sql = request.query.trim();
    if sql.is_empty() {
        return Err(OrchestratorError::BadRequest(
            "query is empty: send one SELECT statement in \"Query\"".into(),
        ));
    }
    let mut constraints = serde_json::to_value(&request.constraints)
        .map_err(|e| OrchestratorError::BadRequest(format!("bad constraints: {e}")))?;
    if !request.nodes.is_empty()
        && let Json::Array(list) = &mut constraints
    {
        list.push(json!({ "Key": NODE_ID_LABEL, "Operator": "in", "Values": request.nodes }));
    }
    let timeout = if request.timeout == 0 {
        DEFAULT_TIMEOUT_SECS
    } else {
        request.timeout
    };
    let mut params = json!({ "Query": sql, "TimeoutMs": timeout * 1000 });
    if let Some(rows) = request.max_rows {
        params["MaxRows"] = rows.into();
    }
    let mut meta = json!({ QUERY_META: sql });
    if let Some(m) = request
        .merge
        .as_deref()
        .map(str::trim)
        .filter(|m| !m.is_empty())
    {
        meta[MERGE_META] = m.into();
    }
    // No Name: names are unique per namespace, and a second query under the same name would
    // update the first query's job instead of asking again. The SQL is in the job's Meta.
    let job = json!({
        "Type": "ops",
        "Meta": meta,
        "Constraints": constraints,
        "Tasks": [{
            "Name": "query",
            "Engine": { "Type": "query", "Params": params },
            "Timeouts": { "TotalTimeout": timeout, "ExecutionTimeout": timeout },
        }],
    });
    let mut job = shoal_types::spec::read_job_value(job)
        .map_err(|e| OrchestratorError::BadRequest(format!("invalid query: {e}")))?;
    shoal_types::spec::apply_defaults(&mut job);
    let errors = shoal_types::spec::validate_for_submit(&job);
    if !errors.is_empty() {
        let text: Vec<String> = errors.iter().map(|e| e.to_string()).collect();
        return Err(OrchestratorError::BadRequest(format!(
            "invalid query: {}",
            text.join("; ")
        )));
    }
    Ok(job)
}

/// What the engine tells watchers, after the transaction that made it true committed.
#[derive(Debug, Clone)]
pub(crate) enum HubEvent {
    /// An execution of the job reached a terminal state.
    Settled(Box<Execution>),
    /// The job reached a terminal state; every execution was settled before.
    Finished,
}

/// Watchers of query jobs, by job id. The engine publishes to it after each commit.
#[derive(Debug, Clone, Default)]
pub(crate) struct QueryHub(Arc<Mutex<HashMap<String, Vec<UnboundedSender<HubEvent>>>>>);

impl QueryHub {
    /// Whether anyone watches `job_id`.
    #[cfg(test)]
    pub fn watched(&self, job_id: &str) -> bool {
        self.0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .contains_key(job_id)
    }

    pub fn subscribe(&self, job_id: &str) -> UnboundedReceiver<HubEvent> {
        let (tx, rx) = unbounded_channel();
        self.0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .entry(job_id.to_string())
            .or_default()
            .push(tx);
        rx
    }

    pub fn publish(&self, job_id: &str, event: HubEvent) {
        let mut map = self.0.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(watchers) = map.get_mut(job_id) {
            watchers.retain(|w| w.send(event.clone()).is_ok());
            if watchers.is_empty() {
                map.remove(job_id);
            }
        }
    }
}

/// Reads a settled execution of a query job.
pub fn node_answer(e: &Execution) -> NodeAnswer {
    let mut a = NodeAnswer {
        node_id: e.node_id.to_string(),
        execution_id: e.id.to_string(),
        outcome: Outcome::Errored,
        columns: vec![],
        rows: vec![],
        warnings: vec![],
        wall_ms: 0,
        error: None,
    };
    let msg = &e.compute_state.message;
    let unreachable = msg.starts_with(shoal_scheduler::UNREACHABLE_PREFIX)
        || e.compute_state
            .details
            .get("Unreachable")
            .is_some_and(|v| v == "true");
    match e.compute_state.state_type {
        ComputeStateType::Completed => match e.run_output.as_ref().and_then(|o| o.answer.as_ref()) {
            Some(answer) => {
                a.outcome = Outcome::Answered;
                a.columns = answer.columns.clone();
                a.rows = answer.rows.clone();
                a.warnings = answer.warnings.clone();
                a.wall_ms = answer.wall_ms;
            }
            None => {
                a.error = Some(
                    "the node completed without an answer (is its query engine older than this orchestrator?)"
                        .into(),
                )
            }
        },
        // The deadline cancels work on connected nodes: they were silent until then.
        ComputeStateType::Cancelled => {
            a.outcome = Outcome::Unreachable;
            a.error = Some(if msg.is_empty() {
                "no answer before the timeout".into()
            } else {
                format!("no answer: {msg}")
            });
        }
        _ if unreachable => {
            a.outcome = Outcome::Unreachable;
            a.error = Some(msg.clone());
        }
        _ => {
            let error = e
                .run_output
                .as_ref()
                .map(|o| o.error_msg.clone())
                .filter(|m| !m.is_empty())
                .unwrap_or_else(|| msg.clone());
            a.error = Some(error);
        }
    }
    a
}

/// Streams a query's answers: replayed from the store, then live, each once.
pub struct QueryStream {
    pub(crate) job: Job,
    pub(crate) replay: std::vec::IntoIter<Execution>,
    pub(crate) live: UnboundedReceiver<HubEvent>,
    pub(crate) finished: bool,
    pub(crate) unreachable_at_submit: usize,
    pub(crate) seen: HashSet<String>,
    pub(crate) targeted: usize,
    pub(crate) answers: Vec<NodeAnswer>,
    pub(crate) started: bool,
    pub(crate) done: bool,
    pub(crate) reread: Option<crate::Orchestrator>,
}

impl QueryStream {
    /// The next event; `None` after `Done`.
    pub async fn next(&mut self) -> Option<QueryEvent> {
        if self.done {
            return None;
        }
        if !self.started {
            self.started = true;
            return Some(QueryEvent::Started {
                job_id: self.job.id.clone(),
                query: self.job.meta.get(QUERY_META).cloned().unwrap_or_default(),
                targeted: self.targeted + self.unreachable_at_submit,
            });
        }
        for e in self.replay.by_ref() {
            if let Some(ev) = Self::settle(&mut self.seen, &mut self.answers, &e) {
                return Some(ev);
            }
        }
        while !self.finished {
            match self.live.recv().await {
                Some(HubEvent::Settled(e)) => {
                    if let Some(ev) = Self::settle(&mut self.seen, &mut self.answers, &e) {
                        return Some(ev);
                    }
                }
                Some(HubEvent::Finished) | None => self.finished = true,
            }
        }
        self.done = true;
        Some(self.finish().await)
    }

    fn settle(
        seen: &mut HashSet<String>,
        answers: &mut Vec<NodeAnswer>,
        e: &Execution,
    ) -> Option<QueryEvent> {
        if !e.is_terminal() || !seen.insert(e.id.to_string()) {
            return None;
        }
        let a = node_answer(e);
        answers.push(a.clone());
        Some(QueryEvent::Answer(a))
    }

    async fn finish(&mut self) -> QueryEvent {
        let mut message = self.job.state.message.clone();
        if let Some(o) = &self.reread
            && let Ok(job) = o.job(&self.job.id).await
        {
            message = job.state.message;
        }
        let mut coverage = coverage(&self.answers, self.unreachable_at_submit);
        coverage.wall_ms =
            ((crate::engine::now() - self.job.create_time).max(0) / 1_000_000) as u64;
        let merge = match self.job.meta.get(MERGE_META) {
            Some(sql) => {
                let (sql, answers) = (sql.clone(), std::mem::take(&mut self.answers));
                let run = tokio::task::spawn_blocking(move || {
                    merge(&sql, &answers, &QueryLimits::default())
                });
                let mut m = run.await.unwrap_or_else(|e| MergeAnswer {
                    sql: String::new(),
                    columns: vec![],
                    rows: vec![],
                    error: Some(format!("merge stage failed: {e}")),
                    answered: 0,
                    targeted: 0,
                });
                m.targeted = coverage.targeted;
                Some(m)
            }
            None => None,
        };
        QueryEvent::Done {
            coverage,
            merge,
            message,
        }
    }
}

/// Counts answers into the fleet coverage.
pub fn coverage(answers: &[NodeAnswer], unreachable_at_submit: usize) -> Coverage {
    let mut c = Coverage {
        targeted: answers.len() + unreachable_at_submit,
        unreachable: unreachable_at_submit,
        ..Coverage::default()
    };
    for a in answers {
        match a.outcome {
            Outcome::Answered => {
                c.answered += 1;
                c.rows += a.rows.len();
            }
            Outcome::Errored => c.errored += 1,
            Outcome::Unreachable => c.unreachable += 1,
        }
    }
    c
}

/// Runs the merge stage over the union of answered rows: table `results` with `node_id`
/// first, then every column any node answered, in order of first appearance (`NULL` where a
/// node's answer lacks it).
pub fn merge(sql: &str, answers: &[NodeAnswer], limits: &QueryLimits) -> MergeAnswer {
    let answered: Vec<&NodeAnswer> = answers
        .iter()
        .filter(|a| a.outcome == Outcome::Answered)
        .collect();
    let mut columns = vec!["node_id".to_string()];
    let mut index: BTreeMap<String, usize> = BTreeMap::from([("node_id".to_string(), 0)]);
    for a in &answered {
        for c in &a.columns {
            if !index.contains_key(c) {
                index.insert(c.clone(), columns.len());
                columns.push(c.clone());
            }
        }
    }
    let mut rows = Vec::new();
    for a in &answered {
        let positions: Vec<usize> = a.columns.iter().map(|c| index[c]).collect();
        for r in &a.rows {
            let mut row = vec![Value::Null; columns.len()];
            row[0] = Value::Text(a.node_id.clone());
            for (pos, v) in positions.iter().zip(r) {
                if *pos != 0 {
                    row[*pos] = to_value(v);
                }
            }
            rows.push(row);
        }
    }
    let mut out = MergeAnswer {
        sql: sql.to_string(),
        columns: vec![],
        rows: vec![],
        error: None,
        answered: answered.len(),
        targeted: answers.len(),
    };
    match run_over_rows(sql, RESULTS_TABLE, &columns, &rows, limits) {
        Ok(r) => {
            out.columns = r.columns;
            out.rows = r
                .rows
                .iter()
                .map(|row| row.iter().map(Value::to_json).collect())
                .collect();
        }
        Err(QueryError::NoSuchTable { table, .. }) => {
            out.error = Some(format!(
                "merge: no such table: {table}; the merge stage reads the table {RESULTS_TABLE} (columns: {})",
                columns.join(", ")
            ));
        }
        Err(e) => out.error = Some(format!("merge: {e}")),
    }
    out
}

fn to_value(v: &Json) -> Value {
    match v {
        Json::Null => Value::Null,
        Json::Bool(b) => Value::Integer(i64::from(*b)),
        Json::Number(n) => n
            .as_i64()
            .map(Value::Integer)
            .or_else(|| n.as_f64().map(Value::Real))
            .unwrap_or(Value::Null),
        Json::String(s) => Value::Text(s.clone()),
        other => Value::Text(other.to_string()),
    }
}

impl crate::Orchestrator {
    /// Submits a fleet query as an ops job; returns the job id and its first state.
    pub async fn submit_query(
        &self,
        request: &QueryRequest,
    ) -> Result<crate::SubmitOutcome, OrchestratorError> {
        let job = query_job(request)?;
        self.submit(job).await
    }

    /// Streams a query job's answers: those already in, then each as its node's report is
    /// applied, then the coverage (and merge stage) once the job is over.
    pub async fn watch_query(&self, key: &str) -> Result<QueryStream, OrchestratorError> {
        let job = self.job(key).await?;
        if !job.meta.contains_key(QUERY_META) {
            return Err(OrchestratorError::BadRequest(format!(
                "job {} is not a fleet query; `shoal job describe {}` shows it",
                job.id, job.id
            )));
        }
        // Subscribe before reading the store: an answer committed in between is then seen
        // twice (deduplicated by execution id) rather than never.
        let live = self.query_hub().subscribe(&job.id);
        let details = self.job_details(&job.id).await?;
        let finished = details.job.state.state_type.is_terminal();
        let unreachable_at_submit = self.disconnected_matching(&details).await?;
        Ok(QueryStream {
            targeted: details.executions.len(),
            job: details.job,
            replay: details.executions.into_iter(),
            live,
            finished,
            unreachable_at_submit,
            seen: HashSet::new(),
            answers: Vec::new(),
            started: false,
            done: false,
            reread: Some(self.clone()),
        })
    }

    /// Nodes the query did not reach because they were disconnected at submission although
    /// their labels match: the scheduler rules them out before looking at labels, so they
    /// are counted here, as unreachable.
    async fn disconnected_matching(
        &self,
        details: &crate::JobDetails,
    ) -> Result<usize, OrchestratorError> {
        let away: HashSet<&str> = details
            .placement
            .iter()
            .filter(|p| p.reason.starts_with("node disconnected"))
            .map(|p| p.node_id.as_str())
            .collect();
        if away.is_empty() {
            return Ok(0);
        }
        let nodes = self.nodes().await?;
        Ok(nodes
            .iter()
            .filter(|n| away.contains(n.info.node_id.as_str()))
            .filter(|n| {
                let mut labels = n.info.labels.clone();
                labels.insert(NODE_ID_LABEL.into(), n.info.node_id.clone());
                shoal_types::selector::matches(&details.job.constraints, &labels)
            })
            .count())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answered(node: &str, columns: &[&str], rows: Vec<Vec<Json>>) -> NodeAnswer {
        NodeAnswer {
            node_id: node.into(),
            execution_id: format!("e-{node}"),
            outcome: Outcome::Answered,
            columns: columns.iter().map(|c| c.to_string()).collect(),
            rows,
            warnings: vec![],
            wall_ms: 1,
            error: None,
        }
    }

    fn failed(node: &str, outcome: Outcome) -> NodeAnswer {
        NodeAnswer {
            outcome,
            error: Some("no such table: nope".into()),
            ..answered(node, &[], vec![])
        }
    }

    #[test]
    fn coverage_puts_every_node_in_one_bucket() {
        let answers = vec![
            answered("n-a", &["x"], vec![vec![json!(1)], vec![json!(2)]]),
            failed("n-b", Outcome::Errored),
            failed("n-c", Outcome::Unreachable),
        ];
        let c = coverage(&answers, 2);
        assert_eq!(
            (c.targeted, c.answered, c.errored, c.unreachable, c.rows),
            (5, 1, 1, 3, 2)
        );
    }

    #[test]
    fn merge_runs_over_the_union_with_node_ids_and_states_its_coverage() {
        let answers = vec![
            answered("n-a", &["port"], vec![vec![json!(22)], vec![json!(80)]]),
            answered("n-b", &["port", "extra"], vec![vec![json!(22), json!("x")]]),
            failed("n-c", Outcome::Errored),
        ];
        let m = merge(
            "SELECT port, count(*) AS nodes FROM results GROUP BY port ORDER BY port",
            &answers,
            &QueryLimits::default(),
        );
        assert_eq!(m.error, None);
        assert_eq!(m.columns, vec!["port", "nodes"]);
        assert_eq!(
            m.rows,
            vec![vec![json!(22), json!(2)], vec![json!(80), json!(1)]]
        );
        assert_eq!((m.answered, m.targeted), (2, 3));
        let m = merge(
            "SELECT node_id, extra FROM results WHERE extra IS NOT NULL",
            &answers,
            &QueryLimits::default(),
        );
        assert_eq!(m.rows, vec![vec![json!("n-b"), json!("x")]]);
    }

    #[test]
    fn merge_errors_name_the_results_table_and_writes_are_refused() {
        let answers = vec![answered("n-a", &["x"], vec![vec![json!(1)]])];
        let m = merge("SELECT * FROM answers", &answers, &QueryLimits::default());
        let err = m.error.unwrap();
        assert!(
            err.contains("reads the table results (columns: node_id, x)"),
            "{err}"
        );
        let m = merge("DROP TABLE results", &answers, &QueryLimits::default());
        assert!(m.error.unwrap().contains("read-only"));
    }

    #[test]
    fn a_query_becomes_an_ops_job_with_the_query_engine_and_node_targets() {
        let job = query_job(&QueryRequest {
            query: "SELECT hostname FROM system_info".into(),
            nodes: vec!["n-1".into()],
            timeout: 5,
            merge: Some("SELECT count(*) FROM results".into()),
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
        assert_eq!(job.meta[MERGE_META], "SELECT count(*) FROM results");
        assert_eq!(job.task().timeouts.total_timeout, 5);
    }

    #[test]
    fn an_empty_query_is_refused_before_it_reaches_any_node() {
        let err = query_job(&QueryRequest::default()).unwrap_err();
        assert!(err.to_string().contains("query is empty"), "{err}");
    }

    #[tokio::test]
    async fn the_hub_delivers_to_watchers_and_forgets_them_when_they_leave() {
        let hub = QueryHub::default();
        assert!(!hub.watched("j-1"));
        let mut rx = hub.subscribe("j-1");
        assert!(hub.watched("j-1"));
        hub.publish("j-1", HubEvent::Finished);
        hub.publish("j-2", HubEvent::Finished);
        assert!(matches!(rx.recv().await, Some(HubEvent::Finished)));
        drop(rx);
        hub.publish("j-1", HubEvent::Finished);
        assert!(!hub.watched("j-1"));
    }
}
