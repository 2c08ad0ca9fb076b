//! Live stdout/stderr for modules: every complete line the module writes goes to the
//! [`LogSink`] at once, while the module is still running.
//!
//! wasmtime-wasi's `MemoryOutputPipe` only hands its contents over at the end, which would
//! make `job logs --follow` useless for long-running modules, hence this stream.

use std::io;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use bytes::Bytes;
use tokio::io::AsyncWrite;
use wasmtime_wasi::cli::{IsTerminal, StdoutStream};
use wasmtime_wasi::p2::{OutputStream, Pollable, StreamResult};

use crate::{LogSink, Stream};

/// How much of a line without a newline is held back before it is sent as it is, so that a
/// module printing one endless line still shows progress and cannot grow host memory.
const MAX_PENDING: usize = 64 * 1024;

/// How many bytes the module may hand over in one write (WASI streams use about 64 KiB).
const WRITE_PERMIT: usize = 64 * 1024;

/// A module's stdout or stderr, forwarding lines to a sink.
///
/// Clones share the pending partial line; call [`LineForwarder::finish`] after the module
/// ends so that a last line without a trailing newline is not lost.
#[derive(Clone)]
pub struct LineForwarder {
    stream: Stream,
    sink: LogSink,
    pending: Arc<Mutex<Vec<u8>>>,
}

impl LineForwarder {
    /// A forwarder for one stream.
    pub fn new(sink: LogSink, stream: Stream) -> Self {
        LineForwarder {
            stream,
            sink,
            pending: Arc::new(Mutex::new(Vec::new())),
        }
    }

    fn push(&self, mut bytes: &[u8]) {
        let mut pending = self.pending.lock().unwrap_or_else(|e| e.into_inner());
        while let Some(newline) = bytes.iter().position(|&b| b == b'\n') {
            let (line, rest) = bytes.split_at(newline + 1);
            if pending.is_empty() {
                self.send(line);
            } else {
                pending.extend_from_slice(line);
                self.send(&pending);
                pending.clear();
            }
            bytes = rest;
        }
        pending.extend_from_slice(bytes);
        if pending.len() >= MAX_PENDING {
            self.send(&pending);
            pending.clear();
        }
    }

    fn send(&self, bytes: &[u8]) {
        self.sink.write(self.stream, String::from_utf8_lossy(bytes));
    }

    /// Sends whatever partial line is left.
    pub fn finish(&self) {
        let mut pending = self.pending.lock().unwrap_or_else(|e| e.into_inner());
        if !pending.is_empty() {
            self.send(&pending);
            pending.clear();
        }
    }
}

impl IsTerminal for LineForwarder {
    fn is_terminal(&self) -> bool {
        false
    }
}

impl StdoutStream for LineForwarder {
    fn p2_stream(&self) -> Box<dyn OutputStream> {
        Box::new(self.clone())
    }

    fn async_stream(&self) -> Box<dyn AsyncWrite + Send + Sync> {
        Box::new(self.clone())
    }
}

#[wasmtime_wasi::async_trait]
impl OutputStream for LineForwarder {
    fn write(&mut self, bytes: Bytes) -> StreamResult<()> {
        self.push(&bytes);
        Ok(())
    }

    fn flush(&mut self) -> StreamResult<()> {
        // Lines are sent as they complete; a partial line waits for its newline (or the end).
        Ok(())
    }

    fn check_write(&mut self) -> StreamResult<usize> {
        // The sink is unbounded, so the module never waits on a slow reader.
        Ok(WRITE_PERMIT)
    }
}

#[wasmtime_wasi::async_trait]
impl Pollable for LineForwarder {
    async fn ready(&mut self) {}
}

impl AsyncWrite for LineForwarder {
    fn poll_write(
        self: Pin<&mut Self>,
        _: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.push(buf);
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.finish();
        Poll::Ready(Ok(()))
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
    fn complete_lines_are_sent_at_once_and_partial_lines_wait_for_their_newline() {
        let (sink, mut rx) = LogSink::channel();
        let out = LineForwarder::new(sink, Stream::Stdout);
        out.push(b"one\ntw");
        assert_eq!(drain(&mut rx), ["one\n"]);
        out.push(b"o\nthree");
        assert_eq!(drain(&mut rx), ["two\n"]);
        out.finish();
        assert_eq!(drain(&mut rx), ["three"]);
    }

    #[test]
    fn an_endless_line_is_sent_in_bounded_pieces() {
        let (sink, mut rx) = LogSink::channel();
        let out = LineForwarder::new(sink, Stream::Stderr);
        out.push(&vec![b'x'; MAX_PENDING + 1]);
        let chunks = drain(&mut rx);
        assert_eq!(chunks.len(), 1);
        assert_eq!(chunks[0].len(), MAX_PENDING + 1);
    }
}
