//! The orchestrator side of the agent link: one task per connected node.

use std::sync::atomic::Ordering;
use std::time::Duration;

use futures::{SinkExt, StreamExt};
use shoal_transport::{Frame, Link};
use tokio::sync::{mpsc, oneshot};

use crate::command::{Command, NodeCredentials};
use crate::handle::Orchestrator;
use crate::logs::LogEvent;
use crate::samples::Latest;

/// Serves one node's link until it closes. The carrier (axum's WebSocket in the API crate, an
/// in-memory pair in tests) only converts messages into the [`Link`]'s text frames.
pub async fn serve_link(orch: Orchestrator, link: impl Link) {
    let (mut outgoing, mut incoming) = link.split();
    let hello = match tokio::time::timeout(Duration::from_secs(10), incoming.next()).await {
        Ok(Some(Ok(text))) => Frame::decode(&text),
        _ => return,
    };
    let (node, applied_seq, credentials) = match hello {
        Ok(Frame::Hello {
            node,
            applied_seq,
            token,
            node_key,
        }) => (node, applied_seq, NodeCredentials { token, node_key }),
        Ok(_) => {
            let _ = outgoing
                .send(
                    Frame::Refused {
                        reason: "the first frame on the link must be Hello".into(),
                    }
                    .encode(),
                )
                .await;
            return;
        }
        Err(e) => {
            let _ = outgoing.send(Frame::Refused { reason: e }.encode()).await;
            return;
        }
    };
    let node_id = node.node_id.clone();
    let (tx, mut rx) = mpsc::unbounded_channel();
    let session = orch.new_session(tx);
    let session_id = session.id;
    let (reply, accepted) = oneshot::channel();
    if orch
        .send(Command::Connect {
            info: node,
            applied_seq,
            credentials,
            session,
            reply,
        })
        .is_err()
    {
        return;
    }
    match accepted.await {
        Ok(Ok(())) => {}
        Ok(Err(reason)) => {
            tracing::warn!(node = %node_id, %reason, "node refused");
            let reason = reason.to_string();
            let _ = outgoing.send(Frame::Refused { reason }.encode()).await;
            return;
        }
        Err(_) => return,
    }
    loop {
        tokio::select! {
            frame = rx.recv() => match frame {
                Some(f) => {
                    orch.metrics().frames_out.fetch_add(1, Ordering::Relaxed);
                    if outgoing.send(f.encode()).await.is_err() { break }
                }
                // The engine dropped this session (replaced, rejected or timed out).
                None => break,
            },
            text = incoming.next() => match text {
                Some(Ok(text)) => if !on_frame(&orch, &node_id, session_id, &text) { break },
                Some(Err(e)) => {
                    tracing::warn!(node = %node_id, error = %e, "node link failed");
                    break;
                }
                None => break,
            },
        }
    }
    orch.result_registry().node_gone(&node_id);
    orch.live_queries().node_gone(&node_id);
    orch.fleet_samples().node_gone(&node_id, session_id);
    let _ = orch.send(Command::Disconnected {
        node_id,
        session_id,
    });
}

/// Routes one frame from a node (which arrived over link session `session`); false ends the
/// session.
fn on_frame(orch: &Orchestrator, node_id: &str, session: u64, text: &str) -> bool {
    orch.metrics().frames_in.fetch_add(1, Ordering::Relaxed);
    let frame = match Frame::decode(text) {
        Ok(f) => f,
        Err(e) => {
            tracing::warn!(node = %node_id, error = %e, "closing link");
            return false;
        }
    };
    if orch.result_registry().on_frame(node_id, &frame) {
        return true;
    }
    let node_id = node_id.to_string();
    let cmd = match frame {
        Frame::Msg { seq, msg } => Command::Inbound { node_id, seq, msg },
        Frame::Ack { seq } => Command::Ack { node_id, seq },
        Frame::Heartbeat {
            running, sample, ..
        } => {
            // Straight into the samples, not through the engine: heartbeats stay memory-only.
            if let Some(sample) = sample {
                let latest = Latest {
                    session,
                    received_at: crate::clock::now(),
                    running,
                    sample: *sample,
                };
                orch.fleet_samples().record(&node_id, latest);
            }
            Command::Heartbeat { node_id }
        }
        Frame::LogLine {
            stream_id,
            stream,
            line,
        } => {
            orch.log_registry()
                .deliver(&node_id, stream_id, LogEvent::Line { stream, line });
            return true;
        }
        Frame::QueryAnswer {
            query_id,
            answer,
            error,
        } => {
            orch.live_queries()
                .answer(&node_id, &query_id, answer, error);
            return true;
        }
        Frame::LogEnd { stream_id, error } => {
            orch.log_registry()
                .deliver(&node_id, stream_id, LogEvent::End { error });
            return true;
        }
        other => {
            tracing::warn!(node = %node_id, ?other, "unexpected frame from a node ignored");
            return true;
        }
    };
    orch.send(cmd).is_ok()
}
