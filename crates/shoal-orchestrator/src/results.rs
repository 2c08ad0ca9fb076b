//! Result archives pulled from nodes over the agent link.
//!
//! The `local` publisher keeps an execution's results as a `.tar.gz` on its node. When a
//! client downloads it, the orchestrator sends `ResultRequest` to that node and relays the
//! node's `ResultChunk` frames to the caller, acknowledging each chunk as the caller consumes
//! it; the node keeps at most `RESULT_WINDOW` chunks unacknowledged, so a large archive never
//! piles up in memory. This works for nodes that accept no inbound connection.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use base64::Engine as _;
use bytes::Bytes;
use shoal_transport::Frame;
use tokio::sync::mpsc;

use crate::nodes::Links;

/// One event of a result download.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ResultEvent {
    /// The archive exists and is `size` bytes long.
    Start {
        /// Bytes to expect.
        size: u64,
    },
    /// The next piece of the archive.
    Chunk(Bytes),
    /// The download ended; `error` says why when it ended abnormally.
    End {
        /// Why the archive could not be sent, if it could not.
        error: Option<String>,
    },
}

type Streams = HashMap<u64, (String, mpsc::UnboundedSender<(u64, ResultEvent)>)>;

/// Open result downloads, by stream id.
#[derive(Default, Clone)]
pub(crate) struct ResultRegistry {
    next: Arc<AtomicU64>,
    streams: Arc<Mutex<Streams>>,
}

impl ResultRegistry {
    pub fn open(&self, node_id: &str) -> (u64, mpsc::UnboundedReceiver<(u64, ResultEvent)>) {
        let id = self.next.fetch_add(1, Ordering::Relaxed) + 1;
        let (tx, rx) = mpsc::unbounded_channel();
        self.lock().insert(id, (node_id.to_string(), tx));
        (id, rx)
    }

    /// Routes a frame from `node_id`; returns false if it is not a result frame.
    pub fn on_frame(&self, node_id: &str, frame: &Frame) -> bool {
        let (stream_id, index, event) = match frame {
            Frame::ResultStart { stream_id, size } => {
                (*stream_id, 0, ResultEvent::Start { size: *size })
            }
            Frame::ResultChunk {
                stream_id,
                index,
                data,
            } => match base64::engine::general_purpose::STANDARD.decode(data) {
                Ok(b) => (*stream_id, *index, ResultEvent::Chunk(Bytes::from(b))),
                Err(e) => (
                    *stream_id,
                    0,
                    ResultEvent::End {
                        error: Some(format!("node {node_id} sent a malformed result chunk: {e}")),
                    },
                ),
            },
            Frame::ResultEnd { stream_id, error } => (
                *stream_id,
                0,
                ResultEvent::End {
                    error: error.clone(),
                },
            ),
            _ => return false,
        };
        let ended = matches!(event, ResultEvent::End { .. });
        let mut map = self.lock();
        if let Some((owner, tx)) = map.get(&stream_id)
            && owner == node_id
        {
            let _ = tx.send((index, event));
            if ended {
                map.remove(&stream_id);
            }
        }
        true
    }

    /// Ends every download served by a node whose link dropped.
    pub fn node_gone(&self, node_id: &str) {
        self.lock().retain(|_, (owner, tx)| {
            if owner == node_id {
                let _ = tx.send((0, ResultEvent::End {
                    error: Some(format!(
                        "node {node_id} disconnected while sending results; try again when it is back"
                    )),
                }));
                false
            } else {
                true
            }
        });
    }

    pub fn close(&self, stream_id: u64) -> Option<String> {
        self.lock().remove(&stream_id).map(|(node, _)| node)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Streams> {
        self.streams.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// A result archive arriving from a node; dropping it tells the node to stop.
pub struct ResultStream {
    pub(crate) id: u64,
    pub(crate) node_id: String,
    pub(crate) rx: mpsc::UnboundedReceiver<(u64, ResultEvent)>,
    pub(crate) registry: ResultRegistry,
    pub(crate) links: Links,
    /// The archive's size, known once the node answered.
    pub(crate) size: u64,
}

impl ResultStream {
    /// Bytes the archive holds.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// The next event; `None` after the end. Each chunk is acknowledged to the node as it is
    /// handed out, which lets the node send the next one.
    pub async fn next(&mut self) -> Option<ResultEvent> {
        let (index, event) = self.rx.recv().await?;
        if matches!(event, ResultEvent::Chunk(_)) {
            self.links.send(
                &self.node_id,
                Frame::ResultAck {
                    stream_id: self.id,
                    index,
                },
            );
        }
        Some(event)
    }
}

impl Drop for ResultStream {
    fn drop(&mut self) {
        if let Some(node) = self.registry.close(self.id) {
            self.links
                .send(&node, Frame::ResultCancel { stream_id: self.id });
        }
    }
}
