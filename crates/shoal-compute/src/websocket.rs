//! The agent's first carrier: one outbound WebSocket (`ws://` or `wss://`) to the orchestrator,
//! adapted to the [`Link`] seam, so the link protocol in `link.rs` knows no WebSocket.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};

use futures::future::BoxFuture;
use futures::{Sink, Stream};
use shoal_transport::{Dialer, LINK_PATH, LINK_READ_BUFFER, Link, LinkError};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message as WsMessage;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

/// Dials the orchestrator's link endpoint over WebSocket.
pub(crate) struct WebSocketDialer {
    url: String,
    tls: Option<Arc<rustls::ClientConfig>>,
}

impl WebSocketDialer {
    /// A dialer for `orchestrator` (`http(s)://`, `ws(s)://` or a bare `host:port`); `tls`
    /// says whom to trust for `wss://`.
    pub fn new(orchestrator: &str, tls: Option<Arc<rustls::ClientConfig>>) -> WebSocketDialer {
        WebSocketDialer {
            url: link_url(orchestrator),
            tls,
        }
    }
}

impl Dialer for WebSocketDialer {
    fn dial(&self) -> BoxFuture<'_, Result<Box<dyn Link>, LinkError>> {
        Box::pin(async move {
            // Frames go out as they are written (the link flushes after each one anyway).
            let config = WebSocketConfig::default()
                .read_buffer_size(LINK_READ_BUFFER)
                .write_buffer_size(0);
            // Nagle's algorithm (with delayed ACKs) would hold small link frames back by tens
            // of ms: `true` turns it off.
            let (ws, _) = tokio_tungstenite::connect_async_tls_with_config(
                self.url.as_str(),
                Some(config),
                true,
                self.tls.clone().map(tokio_tungstenite::Connector::Rustls),
            )
            .await
            .map_err(|e| {
                LinkError(format!(
                    "cannot reach orchestrator at {}: {e}; check --orchestrators and that the orchestrator is up",
                    self.url
                ))
            })?;
            Ok(Box::new(WebSocketLink(ws)) as Box<dyn Link>)
        })
    }
}

/// The URL to dial: `http`/`ws` (and `https`/`wss`) with the link path appended.
pub(crate) fn link_url(orchestrator: &str) -> String {
    let base = orchestrator.trim_end_matches('/');
    let base = if let Some(rest) = base.strip_prefix("http://") {
        format!("ws://{rest}")
    } else if let Some(rest) = base.strip_prefix("https://") {
        format!("wss://{rest}")
    } else if base.starts_with("ws://") || base.starts_with("wss://") {
        base.to_string()
    } else {
        format!("ws://{base}")
    };
    if base.ends_with(LINK_PATH) {
        base
    } else {
        format!("{base}{LINK_PATH}")
    }
}

/// A dialled WebSocket as a [`Link`]: text messages are frames; pings and pongs are the
/// socket's own business; a close ends the stream.
struct WebSocketLink(WebSocketStream<MaybeTlsStream<TcpStream>>);

impl Stream for WebSocketLink {
    type Item = Result<String, LinkError>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        loop {
            match ready!(Pin::new(&mut self.0).poll_next(cx)) {
                Some(Ok(WsMessage::Text(t))) => return Poll::Ready(Some(Ok(t.as_str().into()))),
                Some(Ok(WsMessage::Close(_))) | None => return Poll::Ready(None),
                Some(Ok(_)) => continue,
                Some(Err(e)) => {
                    return Poll::Ready(Some(Err(LinkError(format!("link error: {e}")))));
                }
            }
        }
    }
}

impl Sink<String> for WebSocketLink {
    type Error = LinkError;

    fn poll_ready(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), LinkError>> {
        Pin::new(&mut self.0).poll_ready(cx).map_err(write_error)
    }

    fn start_send(mut self: Pin<&mut Self>, text: String) -> Result<(), LinkError> {
        Pin::new(&mut self.0)
            .start_send(WsMessage::text(text))
            .map_err(write_error)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), LinkError>> {
        Pin::new(&mut self.0).poll_flush(cx).map_err(write_error)
    }

    fn poll_close(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), LinkError>> {
        Pin::new(&mut self.0).poll_close(cx).map_err(write_error)
    }
}

fn write_error(e: tokio_tungstenite::tungstenite::Error) -> LinkError {
    LinkError(format!("cannot write to the orchestrator link: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn link_url_accepts_http_ws_and_bare_addresses() {
        assert_eq!(
            link_url("http://10.0.0.1:1234"),
            "ws://10.0.0.1:1234/api/v1/agent/link"
        );
        assert_eq!(
            link_url("wss://o.example:443/"),
            "wss://o.example:443/api/v1/agent/link"
        );
        assert_eq!(
            link_url("127.0.0.1:1234"),
            "ws://127.0.0.1:1234/api/v1/agent/link"
        );
    }
}
