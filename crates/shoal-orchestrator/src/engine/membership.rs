//! Node membership: a node connecting (join token, approval, outbox replay), its heartbeats,
//! losing its link, and an operator approving, rejecting, deleting or labelling it.

use std::collections::BTreeMap;

use shoal_store::Tx;
use shoal_transport::{Frame, ledger};
use shoal_types::time::rfc3339;
use shoal_types::{ConnectionStatus, Membership, NodeInfo, NodeState};

use super::enrolment::{admit, enrol};
use crate::clock::now;
use crate::command::NodeCredentials;
use crate::error::{BadRequest, Conflict, NotFound, OrchestratorError, Refusal};
use crate::evaluate::evaluate_active;
use crate::nodes::{LiveNode, Session};
use crate::state::{EngineState, Outgoing};

/// Admits a node that dialled in (checking its credentials and membership), stores its new
/// connection state and queues the `Welcome` and its pending outbox. A refusal (the inner
/// error) says why and how to fix it, and is decided before anything is written; a store
/// failure (the outer error) rolls the whole connect back.
pub(super) fn connect(
    tx: &Tx<'_>,
    st: &mut EngineState,
    out: &mut Outgoing,
    info: NodeInfo,
    applied_seq: u64,
    credentials: NodeCredentials,
    session: Session,
) -> Result<Result<(), Refusal>, OrchestratorError> {
    let admission = match admit(tx, st, &info.node_id, &credentials)? {
        Ok(a) => a,
        Err(refusal) => return Ok(Err(refusal)),
    };
    let t = now();
    let id = info.node_id.clone();
    let membership = match st.nodes.get(&id) {
        Some(n) => n.state.membership,
        None if st.cfg.require_approval => Membership::Pending,
        None => Membership::Approved,
    };
    if membership == Membership::Rejected {
        return Ok(Err(Refusal::Rejected { node_id: id }));
    }
    enrol(tx, &id, &admission)?;
    let previous = st.nodes.remove(&id);
    let known = previous.is_some();
    let mut state = NodeState {
        info,
        membership,
        ..previous
            .as_ref()
            .map(|p| p.state.clone())
            .unwrap_or_default()
    };
    // Control-plane labels outlive the node's own view of itself.
    for (k, v) in &state.operator_labels {
        state.info.labels.insert(k.clone(), v.clone());
    }
    state.connection = ConnectionStatus::Connected;
    state.connection_state.status = ConnectionStatus::Connected;
    state.connection_state.connected_since = rfc3339(t);
    state.connection_state.last_heartbeat = rfc3339(t);
    state.connection_state.last_orchestrator_seq_num = applied_seq;
    let mut live = LiveNode::new(state, t);
    if let Some(p) = previous {
        live.allocated = p.allocated;
    }
    live.state.connection_state.last_compute_seq_num = tx.read().link_applied(&id)?;
    tx.put_node(&live.state)?;
    let resend = ledger::replay(tx, &id, applied_seq)?;
    out.push(
        &id,
        Frame::Welcome {
            applied_seq: live.state.connection_state.last_compute_seq_num,
        },
    );
    st.metrics
        .replayed
        .fetch_add(resend.len() as u64, std::sync::atomic::Ordering::Relaxed);
    for entry in resend {
        out.push(&id, entry);
    }
    tracing::info!(node = %id, "node connected");
    st.nodes.insert(id.clone(), live);
    if known {
        st.views.replace(&st.nodes, &id);
    } else {
        st.views.invalidate();
    }
    st.links.insert(&id, session);
    evaluate_all_soon(st);
    Ok(Ok(()))
}

/// Marks a node disconnected and looks again at its work once the node-lost grace passes.
pub(super) fn node_lost_link(
    tx: &Tx<'_>,
    st: &mut EngineState,
    node_id: &str,
    why: &str,
) -> Result<(), OrchestratorError> {
    st.logs.node_gone(node_id);
    let t = now();
    if let Some(n) = st.nodes.get_mut(node_id) {
        n.state.connection = ConnectionStatus::Disconnected;
        n.state.connection_state.status = ConnectionStatus::Disconnected;
        n.state.connection_state.disconnected_since = rfc3339(t);
        n.state.connection_state.last_error = why.to_string();
        tx.put_node(&n.state)?;
        st.views.replace(&st.nodes, node_id);
        tracing::warn!(node = %node_id, reason = why, "node disconnected");
    }
    // Look again once the node-lost grace has passed, so its work can be re-placed.
    st.timers
        .insert((t + st.cfg.scheduler.node_lost_grace + 1, "*".into()));
    evaluate_all_soon(st);
    Ok(())
}

/// How long an evaluation of every active job waits for other nodes that connect or drop.
const COALESCE_ALL: i64 = 50_000_000;

/// Asks for every active job to be evaluated shortly, once for however many nodes connect or
/// drop meanwhile. Evaluating them all at every connect made a reconnect storm of 5,000 nodes
/// cost 5,000 evaluations of every job (a node's own reports are evaluated as they arrive).
fn evaluate_all_soon(st: &mut EngineState) {
    let at = now() + COALESCE_ALL;
    let pending = st
        .timers
        .iter()
        .take_while(|(when, _)| *when <= at)
        .any(|(_, job)| job == "*");
    if !pending {
        st.timers.insert((at, "*".into()));
    }
}

/// Records a heartbeat: memory only, no transaction.
pub(super) fn heartbeat(st: &mut EngineState, node_id: &str) {
    if let Some(n) = st.nodes.get_mut(node_id) {
        n.last_seen = now();
        n.state.connection_state.last_heartbeat = rfc3339(n.last_seen);
        st.views.refresh(&st.nodes, node_id);
    }
}

/// Approves, rejects, cordons, uncordons, revokes (forgets its key and closes its link) or
/// deletes a node, then re-evaluates every active job.
pub(super) fn node_action(
    tx: &Tx<'_>,
    st: &mut EngineState,
    out: &mut Outgoing,
    node_id: &str,
    action: &str,
) -> Result<(), OrchestratorError> {
    st.views.invalidate();
    let Some(node) = st.nodes.get_mut(node_id) else {
        return Err(NotFound::Node {
            key: node_id.to_string(),
        }
        .into());
    };
    match action.to_ascii_lowercase().as_str() {
        "approve" => {
            if node.state.membership == Membership::Approved {
                return Err(Conflict::AlreadyApproved {
                    node_id: node_id.to_string(),
                }
                .into());
            }
            node.state.membership = Membership::Approved;
            tx.put_node(&node.state)?;
        }
        "reject" => {
            if node.state.membership == Membership::Rejected {
                return Err(Conflict::AlreadyRejected {
                    node_id: node_id.to_string(),
                }
                .into());
            }
            node.state.membership = Membership::Rejected;
            tx.put_node(&node.state)?;
            st.links.remove_if(node_id, None);
        }
        "cordon" | "uncordon" => {
            let cordon = action.eq_ignore_ascii_case("cordon");
            if node.state.cordoned == cordon {
                return Err(Conflict::AlreadyCordoned {
                    node_id: node_id.to_string(),
                    cordoned: cordon,
                }
                .into());
            }
            node.state.cordoned = cordon;
            node.state.drained = false;
            tx.put_node(&node.state)?;
        }
        "drain" => {
            node.state.cordoned = true;
            node.state.drained = true;
            tx.put_node(&node.state)?;
        }
        "revoke" => {
            tx.revoke_node_key(node_id, now())?;
            st.links.remove_if(node_id, None);
            tracing::warn!(node = %node_id, "node key revoked");
        }
        "delete" => {
            st.nodes.remove(node_id);
            st.links.remove_if(node_id, None);
            tx.delete_node(node_id)?;
        }
        other => {
            return Err(BadRequest::UnknownNodeAction {
                action: other.to_string(),
            }
            .into());
        }
    }
    evaluate_active(tx, st, out)
}

/// Sets and removes a node's control-plane labels, then re-evaluates every active job, so that
/// daemon jobs start on a node that now matches and stop where it no longer does. A removed
/// key disappears at once; the node's own value for it, if any, returns when it reconnects.
pub(super) fn node_labels(
    tx: &Tx<'_>,
    st: &mut EngineState,
    out: &mut Outgoing,
    node_id: &str,
    set: BTreeMap<String, String>,
    remove: Vec<String>,
) -> Result<(), OrchestratorError> {
    let Some(node) = st.nodes.get_mut(node_id) else {
        return Err(NotFound::Node {
            key: node_id.to_string(),
        }
        .into());
    };
    if let Some(k) = set.keys().chain(&remove).find(|k| k.trim().is_empty()) {
        return Err(BadRequest::EmptyLabelKey {
            node_id: node_id.to_string(),
            key: k.clone(),
        }
        .into());
    }
    for k in &remove {
        node.state.operator_labels.remove(k);
        node.state.info.labels.remove(k);
    }
    for (k, v) in set {
        node.state.info.labels.insert(k.clone(), v.clone());
        node.state.operator_labels.insert(k, v);
    }
    tx.put_node(&node.state)?;
    // Labels are part of the node views the scheduler reads: rebuild them.
    st.views.invalidate();
    evaluate_active(tx, st, out)
}
