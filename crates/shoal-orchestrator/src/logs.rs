//! Log streams pulled from nodes over the agent link.
//!
//! The API asks for an execution's logs; the orchestrator sends a `LogRequest` to the node that
//! ran it and relays the node's `LogLine` frames to the caller. Nodes keep logs on disk, so this
//! works after the execution ended and for nodes that accept no inbound connection.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use shoal_transport::Frame;
use tokio::sync::mpsc;

use crate::nodes::Links;

/// One event of a log stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LogEvent {
    /// A chunk of output; `stream` is 1 for stdout, 2 for stderr.
    Line {
        /// 1 = stdout, 2 = stderr.
        stream: u8,
        /// The text, with its newline.
        line: String,
    },
    /// The stream ended; `error` says why when it ended abnormally.
    End {
        /// Why the logs could not be read, if they could not.
        error: Option<String>,
    },
}

/// Open streams: id → (serving node, receiver of the caller).
type Streams = HashMap<u64, (String, mpsc::UnboundedSender<LogEvent>)>;

#[derive(Default, Clone)]
pub(crate) struct LogRegistry {
    next: Arc<AtomicU64>,
    streams: Arc<Mutex<Streams>>,
}

impl LogRegistry {
    pub fn open(&self, node_id: &str) -> (u64, mpsc::UnboundedReceiver<LogEvent>) {
        let id = self.next.fetch_add(1, Ordering::Relaxed) + 1;
        let (tx, rx) = mpsc::unbounded_channel();
        self.lock().insert(id, (node_id.to_string(), tx));
        (id, rx)
    }

    pub fn deliver(&self, node_id: &str, stream_id: u64, event: LogEvent) {
        let mut map = self.lock();
        let ended = matches!(event, LogEvent::End { .. });
        if let Some((owner, tx)) = map.get(&stream_id) {
            if owner != node_id {
                return;
            }
            let _ = tx.send(event);
        }
        if ended {
            map.remove(&stream_id);
        }
    }

    /// Ends every stream served by a node whose link dropped.
    pub fn node_gone(&self, node_id: &str) {
        let mut map = self.lock();
        map.retain(|_, (owner, tx)| {
            if owner == node_id {
                let _ = tx.send(LogEvent::End {
                    error: Some(format!("node {node_id} disconnected while streaming logs; try again when it is back")),
                });
                false
            } else {
                true
            }
        });
    }

    pub fn close(&self, stream_id: u64) -> Option<String> {
        self.lock().remove(&stream_id).map(|(node, _)| node)
    }

    fn lock(
        &self,
    ) -> std::sync::MutexGuard<'_, HashMap<u64, (String, mpsc::UnboundedSender<LogEvent>)>> {
        self.streams.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// A live log stream; dropping it tells the node to stop sending.
pub struct LogStream {
    pub(crate) id: u64,
    pub(crate) rx: mpsc::UnboundedReceiver<LogEvent>,
    pub(crate) registry: LogRegistry,
    pub(crate) links: Links,
}

impl LogStream {
    /// The next event; `None` after the end.
    pub async fn next(&mut self) -> Option<LogEvent> {
        self.rx.recv().await
    }
}

impl Drop for LogStream {
    fn drop(&mut self) {
        if let Some(node) = self.registry.close(self.id) {
            self.links
                .send(&node, Frame::LogCancel { stream_id: self.id });
        }
    }
}
