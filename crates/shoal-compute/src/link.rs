//! The agent side of the link: dial, introduce ourselves, replay, then serve until it drops;
//! redial with back-off for as long as the agent lives.

use std::sync::Arc;
use std::time::Duration;

use futures::stream::{SplitSink, SplitStream};
use futures::{SinkExt, StreamExt};
use shoal_transport::{Frame, LINK_PATH, LINK_READ_BUFFER};
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::Message as WsMessage;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};
use tokio_util::sync::CancellationToken;

use crate::host_sample::HostSampler;
use crate::inbox;
use crate::ledger::Ledger;
use crate::node::NodeContext;
use crate::requests::Requests;

const MIN_BACKOFF: Duration = Duration::from_millis(100);
const MAX_BACKOFF: Duration = Duration::from_secs(10);

/// Keeps the link up until `shutdown`.
pub(crate) async fn run(node: Arc<NodeContext>, ledger: Arc<Ledger>, shutdown: CancellationToken) {
    let mut backoff = MIN_BACKOFF;
    // Kept across sessions: each sample's CPU figure covers the time since the one before.
    let mut sampler = HostSampler::new(node.cfg.host_roots.clone(), &node.cfg.data_dir);
    loop {
        match session(&node, &ledger, &mut sampler, &shutdown).await {
            Ok(()) => backoff = MIN_BACKOFF,
            Err(e) => {
                tracing::warn!(node = %node.node_id, error = %e, retry_in = ?backoff, "orchestrator link down")
            }
        }
        ledger.lock().session = None;
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(jitter(backoff)) => {}
        }
        backoff = (backoff * 2).min(MAX_BACKOFF);
    }
}

/// Spreads reconnects of many nodes so that an orchestrator restart is not a thundering herd.
fn jitter(d: Duration) -> Duration {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|t| t.subsec_nanos())
        .unwrap_or(0);
    d + d.mul_f64((nanos % 1000) as f64 / 2000.0)
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

/// The WebSocket the agent dialled.
type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// One link session: dial, handshake, replay, then serve until the link drops or `shutdown`.
async fn session(
    node: &Arc<NodeContext>,
    ledger: &Arc<Ledger>,
    sampler: &mut HostSampler,
    shutdown: &CancellationToken,
) -> Result<(), String> {
    let url = link_url(&node.cfg.orchestrator);
    // Frames go out as they are written (the link flushes after each one anyway).
    let config = WebSocketConfig::default()
        .read_buffer_size(LINK_READ_BUFFER)
        .write_buffer_size(0);
    // Nagle's algorithm (with delayed ACKs) would hold small link frames back by tens of ms.
    let (ws, _) = tokio::select! {
        r = tokio_tungstenite::connect_async_tls_with_config(
            url.as_str(),
            Some(config),
            true,
            node.cfg.tls.clone().map(tokio_tungstenite::Connector::Rustls),
        ) => r.map_err(|e| format!("cannot reach orchestrator at {url}: {e}"))?,
        _ = shutdown.cancelled() => return Ok(()),
    };
    let (mut sink, mut stream) = ws.split();
    let peer_applied = handshake(node, ledger, &mut sink, &mut stream).await?;
    let (tx, mut rx) = mpsc::unbounded_channel::<Frame>();
    replay(ledger, peer_applied, &tx)?;
    tracing::info!(node = %node.node_id, %url, "connected to orchestrator");
    let writer = tokio::spawn(async move {
        while let Some(f) = rx.recv().await {
            if sink.send(WsMessage::text(f.encode())).await.is_err() {
                break;
            }
        }
        let _ = sink.close().await;
    });
    let mut requests = Requests::new(node.clone(), tx.clone());
    let result = serve(
        node,
        ledger,
        &mut stream,
        &tx,
        &mut requests,
        sampler,
        shutdown,
    )
    .await;
    requests.close();
    ledger.lock().session = None;
    drop(tx);
    writer.abort();
    result
}

/// Introduces the node (`Hello` with what it has applied) and reads the orchestrator's
/// answer: the sequence number up to which it has applied the node's reports.
async fn handshake(
    node: &NodeContext,
    ledger: &Ledger,
    sink: &mut SplitSink<Ws, WsMessage>,
    stream: &mut SplitStream<Ws>,
) -> Result<u64, String> {
    let applied_seq = ledger
        .lock()
        .store
        .applied_seq()
        .map_err(|e| e.to_string())?;
    let hello = Frame::Hello {
        node: Box::new(node.describe()),
        applied_seq,
        token: node.cfg.token.clone(),
        node_key: Some(node.node_key.clone()),
    };
    sink.send(WsMessage::text(hello.encode()))
        .await
        .map_err(|e| e.to_string())?;
    let welcome = tokio::time::timeout(Duration::from_secs(10), next_frame(stream))
        .await
        .map_err(|_| "orchestrator did not answer the handshake within 10s".to_string())??;
    match welcome {
        Frame::Welcome { applied_seq } => Ok(applied_seq),
        Frame::Refused { reason } => Err(reason),
        other => Err(format!(
            "unexpected first frame from orchestrator: {other:?}"
        )),
    }
}

/// Forgets the reports the orchestrator has applied, queues the rest on `tx`, and makes `tx`
/// the session that new reports go to.
fn replay(
    ledger: &Ledger,
    peer_applied: u64,
    tx: &mpsc::UnboundedSender<Frame>,
) -> Result<(), String> {
    // Replay under the ledger lock: new reports queue behind the replayed ones.
    let mut books = ledger.lock();
    let store = &mut books.store;
    let t = store.begin().map_err(|e| e.to_string())?;
    t.outbox_ack(shoal_store::ORCHESTRATOR_PEER, peer_applied)
        .map_err(|e| e.to_string())?;
    t.commit().map_err(|e| e.to_string())?;
    for entry in books
        .store
        .outbox_pending(peer_applied)
        .map_err(|e| e.to_string())?
    {
        match serde_json::from_str(&entry.body) {
            Ok(msg) => {
                let _ = tx.send(Frame::Msg {
                    seq: entry.seq,
                    msg,
                });
            }
            Err(e) => {
                tracing::error!(seq = entry.seq, error = %e, "unreadable outbox entry skipped")
            }
        }
    }
    books.session = Some(tx.clone());
    Ok(())
}

/// Reads frames until the link drops, a frame cannot be applied, or `shutdown`; sends
/// heartbeats, each with a host sample, meanwhile. Durable messages go to the inbox, requests
/// to `requests`.
async fn serve(
    node: &Arc<NodeContext>,
    ledger: &Arc<Ledger>,
    stream: &mut SplitStream<Ws>,
    tx: &mpsc::UnboundedSender<Frame>,
    requests: &mut Requests,
    sampler: &mut HostSampler,
    shutdown: &CancellationToken,
) -> Result<(), String> {
    let mut heartbeat = tokio::time::interval(node.cfg.heartbeat_interval);
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return Ok(()),
            _ = heartbeat.tick() => {
                let available = node.free();
                let running = node.running.count() as u32;
                let now = shoal_types::time::to_unix_nanos(std::time::SystemTime::now());
                let sample = Some(Box::new(sampler.sample(now)));
                if tx.send(Frame::Heartbeat { available, running, sample }).is_err() { return Err("link writer closed".into()) }
            }
            frame = next_frame(stream) => match frame {
                Ok(Frame::Msg { seq, msg }) => {
                    if let Err(e) = inbox::on_message(node, ledger, seq, msg) {
                        return Err(format!("cannot store a message from the orchestrator: {e}"));
                    }
                }
                Ok(Frame::Ack { seq }) => {
                    if let Err(e) = inbox::on_ack(ledger, seq) { tracing::warn!(error = %e, "ack not recorded") }
                }
                Ok(Frame::Refused { reason }) => return Err(reason),
                Ok(other) => requests.serve(other),
                Err(e) => return Err(e),
            }
        }
    }
}

async fn next_frame<S>(stream: &mut S) -> Result<Frame, String>
where
    S: futures::Stream<Item = Result<WsMessage, tokio_tungstenite::tungstenite::Error>> + Unpin,
{
    loop {
        match stream.next().await {
            Some(Ok(WsMessage::Text(t))) => return Frame::decode(t.as_str()),
            Some(Ok(WsMessage::Close(_))) | None => {
                return Err("orchestrator closed the link".into());
            }
            Some(Ok(_)) => continue,
            Some(Err(e)) => return Err(format!("link error: {e}")),
        }
    }
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
