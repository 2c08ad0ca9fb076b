//! Log streams pulled from nodes over the agent link, or read from the logs nodes shipped.
//!
//! The API asks for an execution's logs; the orchestrator sends a `LogRequest` to the node that
//! ran it and relays the node's `LogLine` frames to the caller. Nodes keep logs on disk, so this
//! works after the execution ended and for nodes that accept no inbound connection. Nodes also
//! ship each execution's log when it ends (`Message::Logs`, kept in the store), so when the
//! node is away or gone the kept copy answers instead ([`kept_events`]).

use std::io::Read;

use shoal_store::LogPiece;

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

/// A log stream: live from the node (dropping it tells the node to stop sending), or the
/// copy the orchestrator kept.
pub struct LogStream {
    source: Source,
}

enum Source {
    Live(OpenStream<LogEvent>),
    Kept(std::vec::IntoIter<LogEvent>),
}

impl LogStream {
    pub(crate) fn new(stream: OpenStream<LogEvent>) -> Self {
        LogStream {
            source: Source::Live(stream),
        }
    }

    /// A stream over the kept copy's events (which end with `End`).
    pub(crate) fn kept(events: Vec<LogEvent>) -> Self {
        LogStream {
            source: Source::Kept(events.into_iter()),
        }
    }

    /// Whether this is the orchestrator's copy rather than the node's live log.
    pub fn is_kept(&self) -> bool {
        matches!(self.source, Source::Kept(_))
    }

    /// The next event; `None` after the end.
    pub async fn next(&mut self) -> Option<LogEvent> {
        match &mut self.source {
            Source::Live(stream) => stream.next().await,
            Source::Kept(events) => events.next(),
        }
    }
}

/// A line of a node's `logs.ndjson`.
#[derive(serde::Deserialize)]
struct Line {
    s: u8,
    l: String,
}

/// The events of an execution's kept log: its lines in order, a note on stderr when the node
/// kept more than it shipped, then `End`. A piece that does not decompress ends the stream
/// with an error naming the execution and the node to read instead.
pub(crate) fn kept_events(pieces: &[LogPiece], node_id: &str, execution_id: &str) -> Vec<LogEvent> {
    let mut events = Vec::new();
    for piece in pieces {
        if piece.data.is_empty() {
            continue;
        }
        let mut text = String::new();
        if let Err(e) = flate2::read::GzDecoder::new(&piece.data[..]).read_to_string(&mut text) {
            events.push(LogEvent::End {
                error: Some(format!(
                    "the kept log of execution {execution_id} is damaged ({e}); read it from node {node_id} when it is back"
                )),
            });
            return events;
        }
        for line in text.lines() {
            if let Ok(Line { s, l }) = serde_json::from_str::<Line>(line) {
                events.push(LogEvent::Line { stream: s, line: l });
            }
        }
    }
    if pieces.last().is_some_and(|p| p.truncated) {
        events.push(LogEvent::Line {
            stream: 2,
            line: format!(
                "[shoal: the orchestrator kept only the start of this log; the rest is on node {node_id}]\n"
            ),
        });
    }
    events.push(LogEvent::End { error: None });
    events
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn gz(text: &str) -> Vec<u8> {
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        e.write_all(text.as_bytes()).unwrap();
        e.finish().unwrap()
    }

    #[test]
    fn kept_pieces_read_back_as_lines_in_order_and_say_when_cut() {
        let pieces = [
            LogPiece {
                start: 0,
                data: gz("{\"s\":1,\"l\":\"one\\n\"}\n{\"s\":2,\"l\":\"oops\\n\"}\n"),
                truncated: false,
            },
            LogPiece {
                start: 40,
                data: gz("{\"s\":1,\"l\":\"two\\n\"}\n"),
                truncated: true,
            },
        ];
        let events = kept_events(&pieces, "n-1", "e-1");
        let line = |stream, l: &str| LogEvent::Line {
            stream,
            line: l.to_string(),
        };
        assert_eq!(
            events,
            vec![
                line(1, "one\n"),
                line(2, "oops\n"),
                line(1, "two\n"),
                line(
                    2,
                    "[shoal: the orchestrator kept only the start of this log; the rest is on node n-1]\n"
                ),
                LogEvent::End { error: None },
            ]
        );
        let damaged = kept_events(
            &[LogPiece {
                start: 0,
                data: b"not gzip".to_vec(),
                truncated: false,
            }],
            "n-1",
            "e-1",
        );
        assert!(
            matches!(&damaged[..], [LogEvent::End { error: Some(e) }] if e.contains("read it from node n-1")),
            "{damaged:?}"
        );
    }
}
