//! Messages from nodes: execution reports, applied once each (the link's `seq` makes a
//! replayed message a no-op), and the history lines they leave.

use shoal_store::Tx;
use shoal_transport::{ExecutionReport, Message};
use shoal_types::{ComputeStateType, DesiredStateType};

use crate::clock::{event, history, now};
use crate::error::OrchestratorError;
use crate::state::{EngineState, Outgoing, write_execution};

/// Applies one message from a node; returns the job to re-evaluate, if any. The caller
/// evaluates each affected job once per batch of messages.
pub(super) fn inbound(
    tx: &Tx<'_>,
    st: &mut EngineState,
    out: &mut Outgoing,
    node_id: &str,
    seq: u64,
    msg: Message,
) -> Result<Option<String>, OrchestratorError> {
    let fresh = tx.mark_applied(node_id, seq)?;
    out.ack(node_id, seq);
    if !fresh {
        return Ok(None);
    }
    match msg {
        Message::Update(report) => apply_report(tx, st, node_id, report),
        other => {
            tracing::warn!(node = %node_id, ?other, "unexpected message from a node");
            Ok(None)
        }
    }
}

/// Applies an execution report from the node that owns the execution; returns the job to
/// re-evaluate when the execution ended.
fn apply_report(
    tx: &Tx<'_>,
    st: &mut EngineState,
    node_id: &str,
    r: ExecutionReport,
) -> Result<Option<String>, OrchestratorError> {
    let cached = st.active.execution(&r.job_id, &r.execution_id).cloned();
    let Some(mut e) =
        cached.map_or_else(|| tx.read().execution(&r.execution_id), |e| Ok(Some(e)))?
    else {
        tracing::warn!(node = %node_id, execution = %r.execution_id, "report for an unknown execution ignored");
        return Ok(None);
    };
    if e.node_id.as_str() != node_id {
        tracing::warn!(node = %node_id, execution = %r.execution_id, "report from a node that does not own the execution ignored");
        return Ok(None);
    }
    if e.is_terminal() {
        // Already settled here (e.g. failed as lost while the node was away, and replaced):
        // the first outcome counts. The late one is recorded in the job's history so that what
        // the node produced is visible, and the node already has a durable Cancel for it.
        tracing::info!(execution = %e.id, state = %r.state, "late report for a settled execution ignored");
        if r.state.is_terminal()
            && let Some(job) = tx.read().job(e.job_id.as_str())?
        {
            let message = format!(
                "late {} report from node {node_id} not counted: the execution was already {} ({})",
                r.state.as_str().to_lowercase(),
                e.compute_state.state_type.as_str().to_lowercase(),
                e.compute_state.message
            );
            let ev = event("Execution", message)
                .with("NodeID", node_id)
                .with("LateReport", "true");
            tx.append_history(history(&job, Some(e.id.as_str()), ev))?;
        }
        return Ok(None);
    }
    let t = now();
    // A node that accepted an execution reports its `Preparing` phase (image pull) as further
    // `BidAccepted` reports whose message is the progress.
    let preparing = e.compute_state.state_type == ComputeStateType::BidAccepted
        && r.state == ComputeStateType::BidAccepted;
    e.compute_state.state_type = r.state;
    e.compute_state.message = r.message.clone();
    if r.retryable {
        e.compute_state
            .details
            .insert("Retryable".into(), "true".into());
    }
    if r.run_output.is_some() {
        e.run_output = r.run_output.clone();
    }
    if r.published.is_some() {
        e.published_result = r.published.clone();
    }
    if r.state.is_terminal() {
        e.desired_state.state_type = DesiredStateType::Stopped;
        e.desired_state.message = match r.state {
            ComputeStateType::Completed => "execution completed".into(),
            _ => r.message.clone(),
        };
        if let Some(n) = st.nodes.get_mut(node_id) {
            n.allocated.remove(e.id.as_str());
            st.views.refresh(&st.nodes, node_id);
        }
    }
    e.revision += 1;
    e.modify_time = t;
    write_execution(tx, st, &e)?;
    if let Some(job) = st.active.job(tx, e.job_id.as_str())? {
        let mut message = match (r.state, &r.run_output) {
            (ComputeStateType::Completed, Some(o)) => {
                format!("execution completed with exit code {}", o.exit_code)
            }
            (ComputeStateType::BidAccepted, _) if preparing => r.message.clone(),
            (ComputeStateType::BidAccepted, _) => format!("accepted by node {node_id}"),
            (s, _) => format!("execution {}", s.as_str().to_lowercase()),
        };
        if !r.message.is_empty()
            && !matches!(
                r.state,
                ComputeStateType::Completed | ComputeStateType::BidAccepted
            )
        {
            message = format!("{message}: {}", r.message);
        }
        let mut ev = event("Execution", message).with("NodeID", node_id);
        if r.state == ComputeStateType::Failed {
            ev = ev
                .with("IsError", "true")
                .with("Retryable", r.retryable.to_string());
        }
        tx.append_history(history(job, Some(e.id.as_str()), ev))?;
    }
    // The scheduler tells live executions apart from ended ones, never one live state from
    // another: a report that leaves the execution live (accepted, preparing, running) cannot
    // change the job's plan, so it is not evaluated. A daemon rolled out to 5,000 nodes
    // otherwise evaluated the whole fleet after every batch of its 10,000 reports.
    if !r.state.is_terminal() {
        return Ok(None);
    }
    Ok(Some(e.job_id.to_string()))
}
