//! A command's stdout and stderr, forwarded to the [`LogSink`] as whole lines while it runs,
//! under the node's output cap.
//!
//! Memory stays bounded whatever the command prints: each stream holds at most one read
//! buffer and one pending partial line ([`MAX_LINE`]); a longer line is sent in pieces. What
//! is read in one go is sent as one chunk of complete lines, not one chunk per line: `yes`
//! prints half a million lines per MiB, and the agent writes every chunk to disk.
//!
//! The cap counts the bytes sent, both streams together. The first line that does not fit
//! closes the output: it and everything after it on both streams is read (so the command never
//! blocks on a full pipe) and counted, not sent, and [`OutputCap::truncation`] says how much
//! was dropped so that the engine writes one `[truncated N bytes]` marker at the end.

use std::sync::{Arc, Mutex};

use tokio::io::{AsyncRead, AsyncReadExt};

use crate::{LogSink, Stream};

/// Bytes read from a pipe at once.
const READ_SIZE: usize = 64 * 1024;

/// How much of a line without a newline is held back before it is sent as it is.
const MAX_LINE: usize = 64 * 1024;

/// The output budget of one execution, shared by its two streams.
#[derive(Debug)]
pub(crate) struct OutputCap(Mutex<CapState>);

#[derive(Debug)]
struct CapState {
    room: u64,
    dropped: u64,
    closed_on: Option<Stream>,
}

impl OutputCap {
    /// A budget of `cap` bytes.
    pub fn new(cap: u64) -> Arc<OutputCap> {
        Arc::new(OutputCap(Mutex::new(CapState {
            room: cap,
            dropped: 0,
            closed_on: None,
        })))
    }

    /// How many leading bytes of `chunk` may be sent: all of it while it fits, otherwise the
    /// complete lines that fit; the rest is counted as dropped and the output is closed.
    fn admit(&self, stream: Stream, chunk: &[u8]) -> usize {
        let mut st = self.0.lock().unwrap_or_else(|p| p.into_inner());
        let len = chunk.len() as u64;
        if st.closed_on.is_some() {
            st.dropped += len;
            return 0;
        }
        if len <= st.room {
            st.room -= len;
            return chunk.len();
        }
        let room = st.room as usize;
        let fit = chunk[..room]
            .iter()
            .rposition(|&b| b == b'\n')
            .map_or(0, |i| i + 1);
        st.room -= fit as u64;
        st.dropped += len - fit as u64;
        st.closed_on = Some(stream);
        fit
    }

    /// The stream whose line first did not fit and the bytes dropped in all, if any were.
    pub fn truncation(&self) -> Option<(Stream, u64)> {
        let st = self.0.lock().unwrap_or_else(|p| p.into_inner());
        st.closed_on.map(|s| (s, st.dropped))
    }
}

/// Reads `pipe` to its end, sending complete lines to `sink` as `stream` within `cap`. A read
/// error ends the stream like its end does: the command's exit status still tells how it ended.
pub(crate) async fn forward(
    mut pipe: impl AsyncRead + Unpin,
    stream: Stream,
    sink: LogSink,
    cap: Arc<OutputCap>,
) {
    let send = |bytes: &[u8]| {
        let keep = cap.admit(stream, bytes);
        if keep > 0 {
            sink.write(stream, String::from_utf8_lossy(&bytes[..keep]));
        }
    };
    let mut buf = vec![0u8; READ_SIZE];
    let mut pending: Vec<u8> = Vec::new();
    loop {
        let n = match pipe.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        let data = &buf[..n];
        match data.iter().rposition(|&b| b == b'\n') {
            Some(last) => {
                pending.extend_from_slice(&data[..=last]);
                send(&pending);
                pending.clear();
                pending.extend_from_slice(&data[last + 1..]);
            }
            None => pending.extend_from_slice(data),
        }
        if pending.len() >= MAX_LINE {
            send(&pending);
            pending.clear();
        }
    }
    if !pending.is_empty() {
        send(&pending);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn drain(rx: &mut tokio::sync::mpsc::UnboundedReceiver<crate::LogChunk>) -> Vec<String> {
        std::iter::from_fn(|| rx.try_recv().ok())
            .map(|c| c.text)
            .collect()
    }

    #[test]
    fn output_within_the_cap_is_sent_whole() {
        let cap = OutputCap::new(10);
        assert_eq!(cap.admit(Stream::Stdout, b"abc\n"), 4);
        assert_eq!(cap.admit(Stream::Stderr, b"def\n"), 4);
        assert_eq!(cap.truncation(), None);
    }

    #[test]
    fn the_first_line_that_does_not_fit_closes_the_output_for_both_streams() {
        let cap = OutputCap::new(10);
        assert_eq!(cap.admit(Stream::Stdout, b"aaaa\nbbbb\ncccc\n"), 10);
        assert_eq!(cap.admit(Stream::Stderr, b"e\n"), 0);
        assert_eq!(cap.admit(Stream::Stdout, b"f\n"), 0);
        assert_eq!(cap.truncation(), Some((Stream::Stdout, 5 + 2 + 2)));
    }

    #[test]
    fn a_line_that_does_not_fit_is_dropped_whole_even_if_part_of_it_would() {
        let cap = OutputCap::new(6);
        assert_eq!(cap.admit(Stream::Stdout, b"ab\ncdefgh\n"), 3);
        assert_eq!(cap.truncation(), Some((Stream::Stdout, 7)));
    }

    #[tokio::test]
    async fn lines_are_forwarded_whole_and_the_last_one_without_a_newline_too() {
        let (sink, mut rx) = LogSink::channel();
        let cap = OutputCap::new(1 << 20);
        forward(&b"one\ntwo\nthree"[..], Stream::Stdout, sink, cap).await;
        assert_eq!(drain(&mut rx).concat(), "one\ntwo\nthree");
    }

    #[tokio::test]
    async fn an_endless_line_is_sent_in_bounded_pieces() {
        let (sink, mut rx) = LogSink::channel();
        let line = vec![b'x'; 3 * MAX_LINE];
        forward(&line[..], Stream::Stdout, sink, OutputCap::new(1 << 30)).await;
        let chunks = drain(&mut rx);
        assert!(chunks.iter().all(|c| c.len() <= MAX_LINE + READ_SIZE));
        assert_eq!(chunks.concat().len(), 3 * MAX_LINE);
    }
}
