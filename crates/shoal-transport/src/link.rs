//! The seam between the link protocol and what carries it. A [`Link`] is a connected duplex
//! stream of text frames; the protocol (handshake, [`crate::ledger`], requests) is written
//! against it, and a carrier is an adapter: WebSocket first (the agent's dialer in
//! `shoal-compute`, axum's socket in `shoal-api`), in-memory pairs ([`pair`]) for tests and
//! simulations, and a message bus for very large fleets later.

use std::pin::Pin;
use std::task::{Context, Poll};

use futures::channel::mpsc;
use futures::future::BoxFuture;
use futures::{Sink, Stream};

use crate::Frame;

/// Why a link failed; the text says what happened, for the log.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct LinkError(pub String);

/// A connected link: the peer's text frames in, ours out. The stream ends when the peer closes.
pub trait Link:
    Stream<Item = Result<String, LinkError>> + Sink<String, Error = LinkError> + Send + Unpin
{
}

impl<T> Link for T where
    T: Stream<Item = Result<String, LinkError>> + Sink<String, Error = LinkError> + Send + Unpin
{
}

/// How an agent reaches its orchestrator: each call opens a fresh link (the agent redials with
/// back-off when one drops).
pub trait Dialer: Send + Sync {
    /// Opens a link to the orchestrator; the error says what to check.
    fn dial(&self) -> BoxFuture<'_, Result<Box<dyn Link>, LinkError>>;
}

/// What a side hands to its link's writer.
#[derive(Debug, Clone, PartialEq)]
pub enum Outbound {
    /// A frame.
    Frame(Frame),
    /// `Frame::Msg` for a durable message as it was serialised into the outbox: written into
    /// the frame as it is, not decoded and serialised again (a daemon job's `Run` carries the
    /// whole job, once per node).
    Stored {
        /// The message's sequence number.
        seq: u64,
        /// The message's JSON.
        body: String,
    },
}

impl Outbound {
    /// The link text.
    pub fn encode(&self) -> String {
        match self {
            Outbound::Frame(f) => f.encode(),
            Outbound::Stored { seq, body } => Frame::encode_msg(*seq, body),
        }
    }
}

impl From<Frame> for Outbound {
    fn from(frame: Frame) -> Self {
        Outbound::Frame(frame)
    }
}

/// One end of an in-memory link (see [`pair`]).
#[derive(Debug)]
pub struct MemoryLink {
    out: mpsc::UnboundedSender<String>,
    incoming: mpsc::UnboundedReceiver<String>,
}

/// Two connected ends of an in-memory link: what one sends, the other receives. Dropping an end
/// closes the link for the other.
pub fn pair() -> (MemoryLink, MemoryLink) {
    let (a_out, b_in) = mpsc::unbounded();
    let (b_out, a_in) = mpsc::unbounded();
    (
        MemoryLink {
            out: a_out,
            incoming: a_in,
        },
        MemoryLink {
            out: b_out,
            incoming: b_in,
        },
    )
}

impl Stream for MemoryLink {
    type Item = Result<String, LinkError>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        Pin::new(&mut self.incoming)
            .poll_next(cx)
            .map(|t| t.map(Ok))
    }
}

impl Sink<String> for MemoryLink {
    type Error = LinkError;

    fn poll_ready(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), LinkError>> {
        Pin::new(&mut self.out).poll_ready(cx).map_err(closed)
    }

    fn start_send(mut self: Pin<&mut Self>, text: String) -> Result<(), LinkError> {
        Pin::new(&mut self.out).start_send(text).map_err(closed)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), LinkError>> {
        Pin::new(&mut self.out).poll_flush(cx).map_err(closed)
    }

    fn poll_close(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), LinkError>> {
        Pin::new(&mut self.out).poll_close(cx).map_err(closed)
    }
}

fn closed(_: mpsc::SendError) -> LinkError {
    LinkError("the other end of the in-memory link is gone".into())
}

#[cfg(test)]
mod tests {
    use futures::{SinkExt, StreamExt};

    use super::*;

    #[test]
    fn what_one_end_sends_the_other_receives_and_dropping_an_end_closes_the_link() {
        futures::executor::block_on(async {
            let (mut a, mut b) = pair();
            a.send("hello".into()).await.unwrap();
            assert_eq!(b.next().await, Some(Ok("hello".to_string())));
            b.send("welcome".into()).await.unwrap();
            assert_eq!(a.next().await, Some(Ok("welcome".to_string())));
            drop(b);
            assert_eq!(a.next().await, None, "the stream ends");
            assert!(a.send("anyone?".into()).await.is_err());
        });
    }
}
