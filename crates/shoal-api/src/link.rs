//! The WebSocket endpoint compute nodes dial.

use axum::extract::State;
use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::response::Response;
use futures::{SinkExt, StreamExt};
use shoal_transport::LINK_READ_BUFFER;

use crate::AppState;

pub(crate) async fn upgrade(State(s): State<AppState>, ws: WebSocketUpgrade) -> Response {
    ws.read_buffer_size(LINK_READ_BUFFER)
        // Frames go out as they are written: the link flushes after every frame anyway.
        .write_buffer_size(0)
        .on_upgrade(move |socket| run(s, socket))
}

async fn run(s: AppState, socket: WebSocket) {
    let (sink, stream) = socket.split();
    let incoming = stream
        .take_while(|m| {
            futures::future::ready(matches!(
                m,
                Ok(Message::Text(_))
                    | Ok(Message::Ping(_))
                    | Ok(Message::Pong(_))
                    | Ok(Message::Binary(_))
            ))
        })
        .filter_map(|m| {
            futures::future::ready(match m {
                Ok(Message::Text(t)) => Some(t.to_string()),
                _ => None,
            })
        });
    let outgoing =
        sink.with(|text: String| futures::future::ready(Ok::<_, axum::Error>(Message::text(text))));
    shoal_orchestrator::serve_link(s.orchestrator, Box::pin(incoming), Box::pin(outgoing)).await;
}
