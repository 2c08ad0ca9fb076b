//! The WebSocket endpoint compute nodes dial, adapted to the link's [`Link`] seam: the
//! orchestrator's side of the protocol (`shoal_orchestrator::serve_link`) knows no WebSocket.

use std::pin::Pin;
use std::task::{Context, Poll, ready};

use axum::extract::State;
use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::response::Response;
use futures::{Sink, Stream};
use shoal_transport::{LINK_READ_BUFFER, LinkError};

use crate::AppState;

pub(crate) async fn upgrade(State(s): State<AppState>, ws: WebSocketUpgrade) -> Response {
    ws.read_buffer_size(LINK_READ_BUFFER)
        // Frames go out as they are written: the link flushes after every frame anyway.
        .write_buffer_size(0)
        .on_upgrade(move |socket| {
            shoal_orchestrator::serve_link(s.orchestrator, NodeSocket(socket))
        })
}

/// A node's WebSocket as a link: text messages are frames; pings, pongs and binary messages
/// are skipped; a close ends the stream.
struct NodeSocket(WebSocket);

impl Stream for NodeSocket {
    type Item = Result<String, LinkError>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        loop {
            match ready!(Pin::new(&mut self.0).poll_next(cx)) {
                Some(Ok(Message::Text(t))) => return Poll::Ready(Some(Ok(t.as_str().into()))),
                Some(Ok(Message::Close(_))) | None => return Poll::Ready(None),
                Some(Ok(_)) => continue,
                Some(Err(e)) => {
                    return Poll::Ready(Some(Err(LinkError(format!("node link error: {e}")))));
                }
            }
        }
    }
}

impl Sink<String> for NodeSocket {
    type Error = LinkError;

    fn poll_ready(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), LinkError>> {
        Pin::new(&mut self.0).poll_ready(cx).map_err(write_error)
    }

    fn start_send(mut self: Pin<&mut Self>, text: String) -> Result<(), LinkError> {
        Pin::new(&mut self.0)
            .start_send(Message::text(text))
            .map_err(write_error)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), LinkError>> {
        Pin::new(&mut self.0).poll_flush(cx).map_err(write_error)
    }

    fn poll_close(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), LinkError>> {
        Pin::new(&mut self.0).poll_close(cx).map_err(write_error)
    }
}

fn write_error(e: axum::Error) -> LinkError {
    LinkError(format!("cannot write to the node link: {e}"))
}
