//! Fleet SQL on the orchestrator: ask every matching node one question now, stream the answers.
//!
//! A fleet query is live, as Fleet's live queries and Salt's publish are: it is not a job and
//! leaves no execution behind on any node. The engine picks the nodes (the scheduler's
//! [`reach`](shoal_scheduler::reach): approved, offering the `query` engine, matching the
//! constraints), sends each connected one a `Query` frame, and counts the disconnected ones
//! unreachable at once. Answers come back as `QueryAnswer` frames and go from the link task
//! straight to [`LiveQueries`], never through the engine thread or the store:
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

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{Value as Json, json};
use shoal_hostquery::{QueryError, QueryLimits, Value, run_over_rows};
pub use shoal_types::answer::{
    Coverage, MergeAnswer, NodeAnswer, Outcome, QueryEvent, QueryRequest,
};
use shoal_types::time::UnixNanos;
use shoal_types::{Answer, Job};
use tokio::sync::Notify;
use tokio::sync::mpsc::{UnboundedReceiver, UnboundedSender, unbounded_channel};

use crate::error::OrchestratorError;

/// A label every node carries in placement (not stored), holding its own id, so a query
/// (or any job) can target nodes by id: `Key: shoal.node.id, Operator: in`.
pub const NODE_ID_LABEL: &str = "shoal.node.id";

/// The name of the merge stage's table.
pub const RESULTS_TABLE: &str = "results";

/// Default query timeout, in seconds.
pub const DEFAULT_TIMEOUT_SECS: u64 = 60;

/// How long a finished query's answers stay readable (`GET /queries/{id}/stream`).
pub const KEEP_FINISHED: Duration = Duration::from_secs(600);

/// The ops job a query is equivalent to: the engine picks the nodes a live query asks as the
/// scheduler would place this job, and `shoal job run` of the same spec asks durably.
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

fn timeout_secs(request: &QueryRequest) -> u64 {
    if request.timeout == 0 {
        DEFAULT_TIMEOUT_SECS
    } else {
        request.timeout
    }
}

/// Live and recently finished fleet queries, by query id. Shared by the engine (which opens
/// them), the link tasks (which deliver answers) and the API (which watches them).
#[derive(Debug, Clone, Default)]
pub(crate) struct LiveQueries(Arc<Mutex<HashMap<String, LiveQuery>>>);

#[derive(Debug)]
struct LiveQuery {
    sql: String,
    merge: Option<String>,
    created: UnixNanos,
    targeted: usize,
    /// Nodes asked that have not answered yet.
    pending: HashSet<String>,
    answers: Vec<NodeAnswer>,
    watchers: Vec<UnboundedSender<QueryEvent>>,
    /// Wakes the driver when nothing is pending any more.
    all_in: Arc<Notify>,
    /// The `Done` event, once the query is over.
    done: Option<(QueryEvent, UnixNanos)>,
}

impl LiveQuery {
    fn settle(&mut self, answer: NodeAnswer) {
        self.watchers
            .retain(|w| w.send(QueryEvent::Answer(answer.clone())).is_ok());
        self.answers.push(answer);
        if self.pending.is_empty() {
            self.all_in.notify_one();
        }
    }
}

/// What a watcher gets when it subscribes: the events so far, then the live ones.
pub(crate) struct Subscription {
    started: QueryEvent,
    replay: Vec<QueryEvent>,
    live: Option<UnboundedReceiver<QueryEvent>>,
}

impl LiveQueries {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, LiveQuery>> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Starts a query asked of `asked` (answers pending) with `away` already unreachable;
    /// returns what wakes its driver. Forgets queries finished over [`KEEP_FINISHED`] ago.
    pub fn open(
        &self,
        id: &str,
        request: &QueryRequest,
        asked: &[String],
        away: Vec<NodeAnswer>,
    ) -> Arc<Notify> {
        let t = crate::engine::now();
        let keep = KEEP_FINISHED.as_nanos() as i64;
        let mut map = self.lock();
        map.retain(|_, q| q.done.as_ref().is_none_or(|(_, at)| t - at < keep));
        let all_in = Arc::new(Notify::new());
        let mut query = LiveQuery {
            sql: request.query.trim().to_string(),
            merge: request
                .merge
                .as_deref()
                .map(str::trim)
                .filter(|m| !m.is_empty())
                .map(str::to_string),
            created: t,
            targeted: asked.len() + away.len(),
            pending: asked.iter().cloned().collect(),
            answers: Vec::with_capacity(asked.len() + away.len()),
            watchers: Vec::new(),
            all_in: all_in.clone(),
            done: None,
        };
        query.answers.extend(away);
        if query.pending.is_empty() {
            all_in.notify_one();
        }
        map.insert(id.to_string(), query);
        all_in
    }

    /// A node's reply; ignored unless the node was asked and has not answered yet.
    pub fn answer(
        &self,
        node_id: &str,
        query_id: &str,
        answer: Option<Answer>,
        error: Option<String>,
    ) {
        let mut map = self.lock();
        let Some(q) = map.get_mut(query_id) else {
            return;
        };
        if !q.pending.remove(node_id) {
            return;
        }
        let mut a = NodeAnswer::new(node_id, Outcome::Answered);
        match (answer, error) {
            (Some(answer), None) => {
                a.wall_ms = answer.wall_ms;
                a.columns = answer.columns;
                a.rows = answer.rows;
                a.warnings = answer.warnings;
            }
            (_, error) => {
                a.outcome = Outcome::Errored;
                a.error =
                    Some(error.unwrap_or_else(|| "the node sent no answer and no error".into()));
            }
        }
        q.settle(a);
    }

    /// The link to `node_id` closed: every query still waiting for it counts it unreachable.
    pub fn node_gone(&self, node_id: &str) {
        for q in self.lock().values_mut() {
            if q.pending.remove(node_id) {
                let mut a = NodeAnswer::new(node_id, Outcome::Unreachable);
                a.error = Some("the link to the node closed before it answered".into());
                q.settle(a);
            }
        }
    }

    /// The deadline passed: every node still pending counts unreachable.
    fn expire(&self, id: &str, timeout: Duration) {
        let mut map = self.lock();
        let Some(q) = map.get_mut(id) else {
            return;
        };
        let mut late: Vec<String> = q.pending.drain().collect();
        late.sort();
        for node in late {
            let mut a = NodeAnswer::new(&node, Outcome::Unreachable);
            a.error = Some(format!(
                "no answer within the query's timeout of {}s",
                timeout.as_secs()
            ));
            q.settle(a);
        }
    }

    /// The answers so far, the merge statement and when the query was asked, for the
    /// closing account.
    fn answers(&self, id: &str) -> (Vec<NodeAnswer>, Option<String>, UnixNanos) {
        self.lock()
            .get(id)
            .map(|q| (q.answers.clone(), q.merge.clone(), q.created))
            .unwrap_or_default()
    }

    /// Ends a query with its `Done` event, sent to every watcher and kept for later ones.
    fn finish(&self, id: &str, done: QueryEvent) {
        if let Some(q) = self.lock().get_mut(id) {
            for w in q.watchers.drain(..) {
                let _ = w.send(done.clone());
            }
            q.done = Some((done, crate::engine::now()));
        }
    }

    /// Subscribes to a query: its events so far, then the live ones; `None` if unknown.
    fn subscribe(&self, id: &str) -> Option<Subscription> {
        let mut map = self.lock();
        let q = map.get_mut(id)?;
        let started = QueryEvent::Started {
            query_id: id.to_string(),
            query: q.sql.clone(),
            targeted: q.targeted,
        };
        let mut replay: Vec<QueryEvent> =
            q.answers.iter().cloned().map(QueryEvent::Answer).collect();
        let live = match &q.done {
            Some((done, _)) => {
                replay.push(done.clone());
                None
            }
            None => {
                let (tx, rx) = unbounded_channel();
                q.watchers.push(tx);
                Some(rx)
            }
        };
        Some(Subscription {
            started,
            replay,
            live,
        })
    }

    /// Whether a query is known (live or kept).
    #[cfg(test)]
    fn knows(&self, id: &str) -> bool {
        self.lock().contains_key(id)
    }
}

/// Streams a query's events: `Started`, every answer once (those already in first), `Done`.
pub struct QueryStream {
    pending: std::collections::VecDeque<QueryEvent>,
    live: Option<UnboundedReceiver<QueryEvent>>,
    done: bool,
}

impl QueryStream {
    fn new(s: Subscription) -> QueryStream {
        let mut pending = std::collections::VecDeque::with_capacity(s.replay.len() + 1);
        pending.push_back(s.started);
        pending.extend(s.replay);
        QueryStream {
            pending,
            live: s.live,
            done: false,
        }
    }

    /// The next event; `None` after `Done`.
    pub async fn next(&mut self) -> Option<QueryEvent> {
        if self.done {
            return None;
        }
        let event = match self.pending.pop_front() {
            Some(ev) => ev,
            None => self.live.as_mut()?.recv().await?,
        };
        self.done = matches!(event, QueryEvent::Done { .. });
        Some(event)
    }
}

/// Counts answers into the fleet coverage.
pub fn coverage(answers: &[NodeAnswer]) -> Coverage {
    let mut c = Coverage {
        targeted: answers.len(),
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
    /// Asks the fleet a question now; returns the query id. Answers stream through
    /// [`Self::watch_query`]; the query ends when every node asked has answered, its link
    /// closed, or the timeout passed.
    pub async fn ask_query(&self, request: &QueryRequest) -> Result<String, OrchestratorError> {
        let job = query_job(request)?;
        let id = format!(
            "q-{}",
            shoal_types::JobId::generate()
                .as_str()
                .trim_start_matches("j-")
        );
        let timeout = Duration::from_secs(timeout_secs(request));
        let all_in = self
            .ask(|reply| crate::engine::Command::AskFleet {
                query_id: id.clone(),
                job: Box::new(job),
                request: Box::new(request.clone()),
                reply,
            })
            .await?;
        let (queries, query_id) = (self.live_queries().clone(), id.clone());
        tokio::spawn(async move {
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
            coverage.wall_ms = ((crate::engine::now() - asked).max(0) / 1_000_000) as u64;
            let merge = match merge_sql {
                Some(sql) => {
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
            let message = if coverage.targeted == 0 {
                "no node offers the query engine and matches the query's constraints; `shoal node list` shows the nodes and their labels".to_string()
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
        });
        Ok(id)
    }

    /// Streams a query's events: the answers already in, then each as its node replies, then
    /// the coverage (and the merge stage) once the query is over.
    pub async fn watch_query(&self, id: &str) -> Result<QueryStream, OrchestratorError> {
        match self.live_queries().subscribe(id) {
            Some(s) => Ok(QueryStream::new(s)),
            None => Err(OrchestratorError::NotFound(format!(
                "query {id} not found: queries are kept for {} minutes after they end; ask again with `shoal query`",
                KEEP_FINISHED.as_secs() / 60
            ))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answered(node: &str, columns: &[&str], rows: Vec<Vec<Json>>) -> NodeAnswer {
        NodeAnswer {
            columns: columns.iter().map(|c| c.to_string()).collect(),
            rows,
            wall_ms: 1,
            ..NodeAnswer::new(node, Outcome::Answered)
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
        let c = coverage(&answers);
        assert_eq!(
            (c.targeted, c.answered, c.errored, c.unreachable, c.rows),
            (3, 1, 1, 1, 2)
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

    fn request() -> QueryRequest {
        QueryRequest {
            query: "SELECT 1".into(),
            ..QueryRequest::default()
        }
    }

    fn rows(n: i64) -> Option<Answer> {
        Some(Answer {
            columns: vec!["x".into()],
            rows: vec![vec![json!(n)]],
            ..Answer::default()
        })
    }

    #[tokio::test]
    async fn a_watcher_sees_every_answer_once_whether_it_came_before_or_after_it_subscribed() {
        let q = LiveQueries::default();
        let all_in = q.open("q-1", &request(), &["n-a".into(), "n-b".into()], vec![]);
        q.answer("n-a", "q-1", rows(1), None);
        let mut stream = QueryStream::new(q.subscribe("q-1").unwrap());
        q.answer("n-b", "q-1", None, Some("no such table: nope".into()));
        // A second reply from a node, and one from a node never asked, count for nothing.
        q.answer("n-b", "q-1", rows(2), None);
        q.answer("n-z", "q-1", rows(3), None);
        all_in.notified().await;
        q.finish(
            "q-1",
            QueryEvent::Done {
                coverage: coverage(&q.answers("q-1").0),
                merge: None,
                message: String::new(),
            },
        );
        let mut seen = Vec::new();
        while let Some(ev) = stream.next().await {
            seen.push(ev);
        }
        assert!(
            matches!(&seen[0], QueryEvent::Started { targeted: 2, .. }),
            "{seen:?}"
        );
        let answers: Vec<(&str, Outcome)> = seen
            .iter()
            .filter_map(|e| match e {
                QueryEvent::Answer(a) => Some((a.node_id.as_str(), a.outcome)),
                _ => None,
            })
            .collect();
        assert_eq!(
            answers,
            [("n-a", Outcome::Answered), ("n-b", Outcome::Errored)]
        );
        let Some(QueryEvent::Done { coverage, .. }) = seen.last() else {
            panic!("{seen:?}")
        };
        assert_eq!((coverage.answered, coverage.errored), (1, 1));
        // A watcher that comes after the end gets the whole story, Done included.
        let late: Vec<QueryEvent> = {
            let mut s = QueryStream::new(q.subscribe("q-1").unwrap());
            let mut v = Vec::new();
            while let Some(ev) = s.next().await {
                v.push(ev);
            }
            v
        };
        assert_eq!(late.len(), 4, "{late:?}");
    }

    #[tokio::test]
    async fn a_lost_link_and_the_deadline_make_silent_nodes_unreachable() {
        let q = LiveQueries::default();
        let away = vec![NodeAnswer::new("n-away", Outcome::Unreachable)];
        let asked = ["n-a".to_string(), "n-b".to_string(), "n-c".to_string()];
        let all_in = q.open("q-1", &request(), &asked, away);
        q.answer("n-a", "q-1", rows(1), None);
        q.node_gone("n-b");
        q.expire("q-1", Duration::from_secs(5));
        all_in.notified().await;
        let (answers, _, _) = q.answers("q-1");
        let c = coverage(&answers);
        assert_eq!((c.targeted, c.answered, c.unreachable), (4, 1, 3));
        let why: Vec<&str> = answers.iter().filter_map(|a| a.error.as_deref()).collect();
        assert!(
            why.contains(&"the link to the node closed before it answered"),
            "{why:?}"
        );
        assert!(
            why.contains(&"no answer within the query's timeout of 5s"),
            "{why:?}"
        );
    }

    #[test]
    fn finished_queries_are_forgotten_after_the_keep_time() {
        let q = LiveQueries::default();
        q.open("q-old", &request(), &[], vec![]);
        q.finish(
            "q-old",
            QueryEvent::Done {
                coverage: Coverage::default(),
                merge: None,
                message: String::new(),
            },
        );
        let long_ago = crate::engine::now() - KEEP_FINISHED.as_nanos() as i64 - 1;
        if let Some(old) = q.lock().get_mut("q-old") {
            old.done.as_mut().unwrap().1 = long_ago;
        }
        q.open("q-new", &request(), &[], vec![]);
        assert!(!q.knows("q-old"));
        assert!(q.knows("q-new"));
    }
}
