//! What the orchestrator asks of the node over the link besides durable messages: an
//! execution's logs, its `local` result archive, and answers to live fleet queries.
//!
//! Each request is served by a task of its own, so a slow follower or a large archive never
//! holds up the link's reader; answers go to the link's writer. A log or result stream ends
//! when it runs out, when the orchestrator cancels it, or when the link drops
//! ([`Requests::close`]). Nothing here is durable: a request lost with the link is asked again.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use shoal_transport::{Frame, Outbound};
use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;

use crate::node::NodeContext;

/// The streams one link session is serving.
pub(crate) struct Requests {
    node: Arc<NodeContext>,
    /// The link's writer.
    out: mpsc::UnboundedSender<Outbound>,
    logs: HashMap<u64, CancellationToken>,
    /// Each result stream's cancel and the highest chunk index the orchestrator acknowledged.
    results: HashMap<u64, (CancellationToken, watch::Sender<i64>)>,
}

impl Requests {
    /// No streams yet; answers go to `out`.
    pub fn new(node: Arc<NodeContext>, out: mpsc::UnboundedSender<Outbound>) -> Requests {
        Requests {
            node,
            out,
            logs: HashMap::new(),
            results: HashMap::new(),
        }
    }

    /// Serves one frame of a request; frames that are none are ignored.
    pub fn serve(&mut self, frame: Frame) {
        match frame {
            Frame::LogRequest {
                stream_id,
                execution_id,
                follow,
            } => self.logs(stream_id, execution_id, follow),
            Frame::LogCancel { stream_id } => {
                if let Some(c) = self.logs.remove(&stream_id) {
                    c.cancel()
                }
            }
            Frame::ResultRequest {
                stream_id,
                execution_id,
            } => self.results(stream_id, execution_id),
            Frame::ResultAck { stream_id, index } => {
                if let Some((_, ack)) = self.results.get(&stream_id) {
                    let _ = ack.send(index as i64);
                }
            }
            Frame::ResultCancel { stream_id } => {
                if let Some((c, _)) = self.results.remove(&stream_id) {
                    c.cancel()
                }
            }
            Frame::Query {
                query_id,
                sql,
                max_rows,
                timeout_ms,
                engine,
            } => self.query(query_id, &engine, sql, max_rows, timeout_ms),
            other => tracing::debug!(?other, "ignored frame"),
        }
    }

    /// Sends an execution's log file, then (with `follow`) its live chunks until it ends.
    fn logs(&mut self, stream_id: u64, execution_id: String, follow: bool) {
        let cancel = CancellationToken::new();
        self.logs.retain(|_, c| !c.is_cancelled());
        self.logs.insert(stream_id, cancel.clone());
        let (node, tx) = (self.node.clone(), self.out.clone());
        tokio::spawn(async move {
            let dir = node.exec_dir(&execution_id);
            crate::logs::serve(
                &node.hub,
                &dir,
                &execution_id,
                follow,
                stream_id,
                tx,
                cancel.clone(),
            )
            .await;
            cancel.cancel();
        });
    }

    /// Sends an execution's `local` result archive in acknowledged chunks.
    fn results(&mut self, stream_id: u64, execution_id: String) {
        let cancel = CancellationToken::new();
        let (ack_tx, ack_rx) = watch::channel(-1i64);
        self.results.retain(|_, (c, _)| !c.is_cancelled());
        self.results.insert(stream_id, (cancel.clone(), ack_tx));
        let (node, tx) = (self.node.clone(), self.out.clone());
        tokio::spawn(async move {
            crate::publish::serve::serve(
                &node.local_results_dir(),
                &node.node_id,
                &execution_id,
                stream_id,
                tx,
                ack_rx,
                cancel.clone(),
            )
            .await;
            cancel.cancel();
        });
    }

    /// Answers a live fleet query with `engine` (`query` or `analytics`), if this node
    /// offers it.
    fn query(
        &self,
        query_id: String,
        engine: &str,
        sql: String,
        max_rows: Option<u64>,
        timeout_ms: u64,
    ) {
        let timeout = Duration::from_millis(timeout_ms);
        let answering = self
            .node
            .executors
            .get(engine)
            .and_then(|e| e.live_answer(sql, max_rows, timeout));
        let missing = format!("this node does not offer the {engine} engine");
        let tx = self.out.clone();
        tokio::spawn(async move {
            let answered = match answering {
                Some(answer) => answer.await,
                None => Err(missing),
            };
            let (answer, error) = match answered {
                Ok(a) => (Some(a), None),
                Err(e) => (None, Some(e)),
            };
            let _ = tx.send(
                Frame::QueryAnswer {
                    query_id,
                    answer,
                    error,
                }
                .into(),
            );
        });
    }

    /// Stops every stream still being served: the link they were for is gone.
    pub fn close(self) {
        for c in self.logs.values() {
            c.cancel();
        }
        for (c, _) in self.results.values() {
            c.cancel();
        }
    }
}
