//! Log streams pulled from nodes over the agent link.
//!
//! The API asks for an execution's logs; the orchestrator sends a `LogRequest` to the node that
//! ran it and relays the node's `LogLine` frames to the caller. Nodes keep logs on disk, so this
//! works after the execution ended and for nodes that accept no inbound connection.

use shoal_transport::Frame;

use crate::streams::{OpenStream, StreamEvent, StreamRegistry};

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

impl StreamEvent for LogEvent {
    fn ends(&self) -> bool {
        matches!(self, LogEvent::End { .. })
    }

    fn node_gone(node_id: &str) -> Self {
        LogEvent::End {
            error: Some(format!(
                "node {node_id} disconnected while streaming logs; try again when it is back"
            )),
        }
    }

    fn cancel(stream_id: u64) -> Frame {
        Frame::LogCancel { stream_id }
    }
}

/// Open log streams, by stream id.
pub(crate) type LogRegistry = StreamRegistry<LogEvent>;

/// A live log stream; dropping it tells the node to stop sending.
pub struct LogStream {
    stream: OpenStream<LogEvent>,
}

impl LogStream {
    pub(crate) fn new(stream: OpenStream<LogEvent>) -> Self {
        LogStream { stream }
    }

    /// The next event; `None` after the end.
    pub async fn next(&mut self) -> Option<LogEvent> {
        self.stream.next().await
    }
}
