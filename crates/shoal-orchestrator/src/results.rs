//! Result archives pulled from nodes over the agent link.
//!
//! The `local` publisher keeps an execution's results as a `.tar.gz` on its node. When a
//! client downloads it, the orchestrator sends `ResultRequest` to that node and relays the
//! node's `ResultChunk` frames to the caller, acknowledging each chunk as the caller consumes
//! it; the node keeps at most `RESULT_WINDOW` chunks unacknowledged, so a large archive never
//! piles up in memory. This works for nodes that accept no inbound connection.

use base64::Engine as _;
use bytes::Bytes;
use shoal_transport::Frame;

use crate::streams::{OpenStream, StreamEvent, StreamRegistry};

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

/// A result event with the index of the chunk it carries (0 for the others), which the
/// stream acknowledges to the node.
impl StreamEvent for (u64, ResultEvent) {
    fn ends(&self) -> bool {
        matches!(self.1, ResultEvent::End { .. })
    }

    fn node_gone(node_id: &str) -> Self {
        let error =
            format!("node {node_id} disconnected while sending results; try again when it is back");
        (0, ResultEvent::End { error: Some(error) })
    }

    fn cancel(stream_id: u64) -> Frame {
        Frame::ResultCancel { stream_id }
    }
}

/// Open result downloads, by stream id.
pub(crate) type ResultRegistry = StreamRegistry<(u64, ResultEvent)>;

impl ResultRegistry {
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
        self.deliver(node_id, stream_id, (index, event));
        true
    }
}

/// A result archive arriving from a node; dropping it tells the node to stop.
pub struct ResultStream {
    stream: OpenStream<(u64, ResultEvent)>,
    node_id: String,
    /// The archive's size, known once the node answered.
    size: u64,
}

impl ResultStream {
    pub(crate) fn new(stream: OpenStream<(u64, ResultEvent)>, node_id: String) -> Self {
        ResultStream {
            stream,
            node_id,
            size: 0,
        }
    }

    /// Bytes the archive holds.
    pub fn size(&self) -> u64 {
        self.size
    }

    pub(crate) fn set_size(&mut self, size: u64) {
        self.size = size;
    }

    /// The next event; `None` after the end. Each chunk is acknowledged to the node as it is
    /// handed out, which lets the node send the next one.
    pub async fn next(&mut self) -> Option<ResultEvent> {
        let (index, event) = self.stream.next().await?;
        if matches!(event, ResultEvent::Chunk(_)) {
            self.stream.links().send(
                &self.node_id,
                Frame::ResultAck {
                    stream_id: self.stream.id(),
                    index,
                },
            );
        }
        Some(event)
    }
}
