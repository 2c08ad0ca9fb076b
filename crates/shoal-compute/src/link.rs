//! The agent side of the link: dial, introduce ourselves, replay, then serve until it drops;
//! redial with back-off for as long as the agent lives. What carries the frames is the
//! [`Dialer`]'s business (`websocket.rs` for a real agent, in-memory pairs in tests).

use std::sync::Arc;
use std::time::Duration;

use futures::stream::{SplitSink, SplitStream};
use futures::{SinkExt, StreamExt};
use shoal_store::ORCHESTRATOR_PEER;
use shoal_transport::{Dialer, Frame, Link, Outbound, ledger};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::host_sample::HostSampler;
use crate::inbox;
use crate::ledger::Ledger;
use crate::node::NodeContext;
use crate::requests::Requests;

const MIN_BACKOFF: Duration = Duration::from_millis(100);
const MAX_BACKOFF: Duration = Duration::from_secs(10);

/// Keeps the link up until `shutdown`.
pub(crate) async fn run(
    node: Arc<NodeContext>,
    ledger: Arc<Ledger>,
    dialer: Arc<dyn Dialer>,
    shutdown: CancellationToken,
) {
    let mut backoff = MIN_BACKOFF;
    // Kept across sessions: each sample's CPU figure covers the time since the one before.
    let mut sampler = HostSampler::new(node.cfg.host_roots.clone(), &node.cfg.data_dir);
    loop {
        match session(&node, &ledger, dialer.as_ref(), &mut sampler, &shutdown).await {
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

/// One link session: dial, handshake, replay, then serve until the link drops or `shutdown`.
async fn session(
    node: &Arc<NodeContext>,
    ledger: &Arc<Ledger>,
    dialer: &dyn Dialer,
    sampler: &mut HostSampler,
    shutdown: &CancellationToken,
) -> Result<(), String> {
    let link = tokio::select! {
        r = dialer.dial() => r.map_err(|e| e.to_string())?,
        _ = shutdown.cancelled() => return Ok(()),
    };
    let (mut sink, mut stream) = link.split();
    let peer_applied = handshake(node, ledger, &mut sink, &mut stream).await?;
    let (tx, mut rx) = mpsc::unbounded_channel::<Outbound>();
    replay(ledger, peer_applied, &tx)?;
    tracing::info!(node = %node.node_id, orchestrator = %node.cfg.orchestrator, "connected to orchestrator");
    let writer = tokio::spawn(async move {
        while let Some(f) = rx.recv().await {
            if sink.send(f.encode()).await.is_err() {
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
    sink: &mut SplitSink<Box<dyn Link>, String>,
    stream: &mut SplitStream<Box<dyn Link>>,
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
    sink.send(hello.encode()).await.map_err(|e| e.to_string())?;
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
    tx: &mpsc::UnboundedSender<Outbound>,
) -> Result<(), String> {
    // Replay under the ledger lock: new reports queue behind the replayed ones.
    let mut books = ledger.lock();
    let t = books.store.begin().map_err(|e| e.to_string())?;
    let resend = ledger::replay(&t, ORCHESTRATOR_PEER, peer_applied).map_err(|e| e.to_string())?;
    t.commit().map_err(|e| e.to_string())?;
    for entry in resend {
        let _ = tx.send(entry);
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
    stream: &mut SplitStream<Box<dyn Link>>,
    tx: &mpsc::UnboundedSender<Outbound>,
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
                if tx.send(Frame::Heartbeat { available, running, sample }.into()).is_err() { return Err("link writer closed".into()) }
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

/// The next frame from the orchestrator; the error says why the link is done.
async fn next_frame(stream: &mut SplitStream<Box<dyn Link>>) -> Result<Frame, String> {
    match stream.next().await {
        Some(Ok(text)) => Frame::decode(&text),
        Some(Err(e)) => Err(e.to_string()),
        None => Err("orchestrator closed the link".into()),
    }
}
