//! Live and recently finished fleet queries, and the stream a watcher reads one from.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use shoal_types::Answer;
use shoal_types::answer::{NodeAnswer, Outcome, QueryEvent, QueryRequest};
use shoal_types::time::UnixNanos;
use tokio::sync::Notify;
use tokio::sync::mpsc::{UnboundedReceiver, UnboundedSender, unbounded_channel};

use crate::clock::now;

/// How long a finished query's answers stay readable (`GET /queries/{id}/stream`).
pub const KEEP_FINISHED: Duration = Duration::from_secs(600);

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
        let t = now();
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
    pub(crate) fn expire(&self, id: &str, timeout: Duration) {
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
    pub(crate) fn answers(&self, id: &str) -> (Vec<NodeAnswer>, Option<String>, UnixNanos) {
        self.lock()
            .get(id)
            .map(|q| (q.answers.clone(), q.merge.clone(), q.created))
            .unwrap_or_default()
    }

    /// Ends a query with its `Done` event, sent to every watcher and kept for later ones.
    pub(crate) fn finish(&self, id: &str, done: QueryEvent) {
        if let Some(q) = self.lock().get_mut(id) {
            for w in q.watchers.drain(..) {
                let _ = w.send(done.clone());
            }
            q.done = Some((done, now()));
        }
    }

    /// Subscribes to a query: its events so far, then the live ones; `None` if unknown.
    pub(crate) fn subscribe(&self, id: &str) -> Option<Subscription> {
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
    pending: VecDeque<QueryEvent>,
    live: Option<UnboundedReceiver<QueryEvent>>,
    done: bool,
}

impl QueryStream {
    pub(crate) fn new(s: Subscription) -> QueryStream {
        let mut pending = VecDeque::with_capacity(s.replay.len() + 1);
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

#[cfg(test)]
mod tests {
    use serde_json::json;
    use shoal_types::answer::Coverage;

    use super::*;
    use crate::query::coverage;

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
        let long_ago = now() - KEEP_FINISHED.as_nanos() as i64 - 1;
        if let Some(old) = q.lock().get_mut("q-old") {
            old.done.as_mut().unwrap().1 = long_ago;
        }
        q.open("q-new", &request(), &[], vec![]);
        assert!(!q.knows("q-old"));
        assert!(q.knows("q-new"));
    }
}
