//! Messages from nodes: execution reports, applied once each (the link's `seq` makes a
//! replayed message a no-op), and the history lines they leave.

use shoal_store::Tx;
use shoal_transport::{ExecutionReport, LogShipment, Message, ledger};
use shoal_types::time::UnixNanos;
use shoal_types::{ComputeStateType, DesiredStateType, Execution};

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
    let fresh = ledger::apply(tx, node_id, seq)?;
    out.ack(node_id, seq);
    if !fresh {
        return Ok(None);
    }
    match msg {
        Message::Update(report) => apply_report(tx, st, node_id, report),
        Message::Logs(piece) => {
            keep_logs(tx, st, node_id, piece)?;
            Ok(None)
        }
        other => {
            tracing::warn!(node = %node_id, ?other, "unexpected message from a node");
            Ok(None)
        }
    }
}

/// The execution a node's message (`what`: a report, logs) is about, if it is the sender's.
/// A node speaks only for its own executions: one that speaks for another node's is broken
/// or impersonating, and its link is closed. Unknown executions are warned about.
fn senders_execution(
    tx: &Tx<'_>,
    st: &mut EngineState,
    node_id: &str,
    job_id: &str,
    execution_id: &str,
    what: &str,
) -> Result<Option<Execution>, OrchestratorError> {
    let cached = st.active.execution(job_id, execution_id).cloned();
    let Some(e) = cached.map_or_else(|| tx.read().execution(execution_id), |e| Ok(Some(e)))? else {
        tracing::warn!(node = %node_id, execution = %execution_id, "{what} for an unknown execution ignored");
        return Ok(None);
    };
    if e.node_id.as_str() != node_id {
        tracing::error!(node = %node_id, execution = %execution_id, owner = %e.node_id, "{what} for another node's execution refused; closing the link");
        st.links.remove_if(node_id, None);
        return Ok(None);
    }
    Ok(Some(e))
}

/// Keeps a piece of an execution's log shipped by the node that ran it ([`senders_execution`]
/// checks it is); one that does not decode is dropped with a warning (the node still has
/// the log).
fn keep_logs(
    tx: &Tx<'_>,
    st: &mut EngineState,
    node_id: &str,
    piece: LogShipment,
) -> Result<(), OrchestratorError> {
    use base64::Engine as _;
    let Some(e) = senders_execution(tx, st, node_id, &piece.job_id, &piece.execution_id, "logs")?
    else {
        return Ok(());
    };
    let job_id = e.job_id.to_string();
    let Ok(data) = base64::engine::general_purpose::STANDARD.decode(&piece.data) else {
        tracing::warn!(node = %node_id, execution = %piece.execution_id, "a log piece that is not base64 was dropped");
        return Ok(());
    };
    let kept = tx.put_log_piece(
        &job_id,
        &piece.execution_id,
        &shoal_store::LogPiece {
            start: piece.offset,
            data,
            truncated: piece.truncated,
        },
    )?;
    if !kept {
        tracing::warn!(job = %job_id, execution = %piece.execution_id, cap = shoal_store::JOB_LOG_CAP, "the job's kept logs reached their cap; the rest stays on the node");
    }
    Ok(())
}

/// Applies an execution report from the node that owns the execution; returns the job to
/// re-evaluate when the execution ended.
fn apply_report(
    tx: &Tx<'_>,
    st: &mut EngineState,
    node_id: &str,
    r: ExecutionReport,
) -> Result<Option<String>, OrchestratorError> {
    let Some(mut e) = senders_execution(tx, st, node_id, &r.job_id, &r.execution_id, "report")?
    else {
        return Ok(None);
    };
    if e.is_terminal() {
        // Already settled here (e.g. failed as lost while the node was away, and replaced):
        // the first outcome counts. The late one is recorded in the job's history so that what
        // the node produced is visible, and the node already has a durable Cancel for it.
        tracing::info!(execution = %e.id, state = %r.state, "late report for a settled execution ignored");
        if r.state.is_terminal()
            && let Some(job) = tx.read().job(e.job_id.as_str())?
        {
            let message = late_report_message(&e, &r, node_id);
            let ev = event("Execution", message)
                .with("NodeID", node_id)
                .with("LateReport", "true");
            tx.append_history(history(&job, Some(e.id.as_str()), ev))?;
        }
        return Ok(None);
    }
    let preparing = apply_to_execution(&mut e, &r, now());
    if r.state.is_terminal()
        && let Some(n) = st.nodes.get_mut(node_id)
    {
        n.allocated.remove(e.id.as_str());
        st.views.refresh(&st.nodes, node_id);
    }
    write_execution(tx, st, &e)?;
    if let Some(job) = st.active.job(tx, e.job_id.as_str())? {
        let message = report_message(&r, node_id, preparing);
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

/// Updates a live execution with its node's report, as of `t`; returns whether the report is
/// progress of the `Preparing` phase. Pure: the caller writes the execution and frees the
/// node's capacity when it ended.
fn apply_to_execution(e: &mut Execution, r: &ExecutionReport, t: UnixNanos) -> bool {
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
    }
    e.revision += 1;
    e.modify_time = t;
    preparing
}

/// The history line a report leaves in its job's history.
fn report_message(r: &ExecutionReport, node_id: &str, preparing: bool) -> String {
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
    message
}

/// The history line of a final report for an execution that had already ended here.
fn late_report_message(e: &Execution, r: &ExecutionReport, node_id: &str) -> String {
    format!(
        "late {} report from node {node_id} not counted: the execution was already {} ({})",
        r.state.as_str().to_lowercase(),
        e.compute_state.state_type.as_str().to_lowercase(),
        e.compute_state.message
    )
}

#[cfg(test)]
mod tests {
    use shoal_types::execution::AllocatedResources;
    use shoal_types::{ExecutionId, ExecutionState, NodeId, RunOutput};

    use super::*;

    fn accepted() -> Execution {
        Execution {
            id: ExecutionId::generate(),
            namespace: "default".into(),
            eval_id: String::new(),
            name: String::new(),
            node_id: NodeId::new("n-a".to_string()),
            job_id: shoal_types::JobId::generate(),
            job: None,
            job_version: 1,
            allocated_resources: AllocatedResources::default(),
            desired_state: ExecutionState::new(DesiredStateType::Running, ""),
            compute_state: ExecutionState::new(ComputeStateType::BidAccepted, ""),
            published_result: None,
            run_output: None,
            previous_execution: String::new(),
            next_execution: String::new(),
            followup_eval_id: String::new(),
            partition_index: 0,
            revision: 1,
            create_time: 1,
            modify_time: 1,
        }
    }

    fn report(state: ComputeStateType, message: &str) -> ExecutionReport {
        ExecutionReport {
            execution_id: String::new(),
            job_id: String::new(),
            state,
            message: message.into(),
            retryable: false,
            run_output: None,
            published: None,
        }
    }

    #[test]
    fn a_final_report_stops_the_execution_and_keeps_what_it_produced() {
        let mut e = accepted();
        let r = ExecutionReport {
            run_output: Some(RunOutput {
                exit_code: 3,
                ..RunOutput::default()
            }),
            ..report(ComputeStateType::Completed, "")
        };
        assert!(!apply_to_execution(&mut e, &r, 7));
        assert_eq!(e.compute_state.state_type, ComputeStateType::Completed);
        assert_eq!(e.desired_state.state_type, DesiredStateType::Stopped);
        assert_eq!(e.desired_state.message, "execution completed");
        assert_eq!(e.exit_code(), Some(3));
        assert_eq!((e.revision, e.modify_time), (2, 7));
        assert_eq!(
            report_message(&r, "n-a", false),
            "execution completed with exit code 3"
        );
    }

    #[test]
    fn a_retryable_failure_is_marked_and_its_reason_is_in_the_history_line() {
        let mut e = accepted();
        let r = ExecutionReport {
            retryable: true,
            ..report(ComputeStateType::Failed, "image not found")
        };
        apply_to_execution(&mut e, &r, 7);
        assert_eq!(
            e.compute_state.details.get("Retryable").map(String::as_str),
            Some("true")
        );
        assert_eq!(e.desired_state.message, "image not found");
        assert_eq!(
            report_message(&r, "n-a", false),
            "execution failed: image not found"
        );
    }

    #[test]
    fn preparing_progress_is_told_in_the_nodes_words_and_leaves_the_execution_live() {
        let mut e = accepted();
        let r = report(ComputeStateType::BidAccepted, "pulling image 40%");
        assert!(apply_to_execution(&mut e, &r, 7));
        assert_eq!(e.desired_state.state_type, DesiredStateType::Running);
        assert_eq!(report_message(&r, "n-a", true), "pulling image 40%");
        assert_eq!(report_message(&r, "n-a", false), "accepted by node n-a");
    }

    #[test]
    fn a_late_report_names_the_outcome_that_counted() {
        let mut e = accepted();
        e.compute_state = ExecutionState::new(ComputeStateType::Failed, "node n-a lost");
        let r = report(ComputeStateType::Completed, "");
        assert_eq!(
            late_report_message(&e, &r, "n-a"),
            "late completed report from node n-a not counted: the execution was already failed (node n-a lost)"
        );
    }
}
