//! Durable messages from the orchestrator (`Run`, `Cancel`), each applied exactly once, and
//! the acknowledgements of the agent's own reports.
//!
//! A message is applied in the same store transaction that marks its sequence number applied,
//! so a message the orchestrator sends again after a reconnect changes nothing.

use std::sync::Arc;

use shoal_store::{LocalExecution, LocalState, StoreError};
use shoal_transport::{ExecutionReport, Frame, Message};
use shoal_types::{ComputeStateType, Execution, NetworkType, Resources};

use crate::ledger::{Books, Ledger};
use crate::lifecycle::report;
use crate::node::NodeContext;

/// Applies one durable message from the orchestrator, exactly once.
pub(crate) fn on_message(
    node: &Arc<NodeContext>,
    ledger: &Arc<Ledger>,
    seq: u64,
    msg: Message,
) -> Result<(), StoreError> {
    let mut books = ledger.lock();
    let Books { store, session } = &mut *books;
    let tx = store.begin()?;
    let fresh = tx.mark_applied(shoal_store::ORCHESTRATOR_PEER, seq)?;
    let mut sends = Vec::new();
    let mut start = None;
    if fresh {
        match msg {
            Message::Run { execution } => {
                if tx.local_execution(execution.id.as_str())?.is_none() {
                    let (state, report) = admit(node, &execution);
                    let local = LocalExecution {
                        execution: *execution,
                        state,
                    };
                    tx.put_local_execution(&local)?;
                    let m = Message::Update(report);
                    let s = tx.outbox_push(
                        shoal_store::ORCHESTRATOR_PEER,
                        &serde_json::to_string(&m).expect("serialise"),
                    )?;
                    sends.push(Frame::Msg { seq: s, msg: m });
                    if state == LocalState::Accepted {
                        start = Some(local);
                    }
                }
            }
            Message::Cancel { execution_id, .. } => node.running.cancel(&execution_id),
            Message::Update(_) => {
                tracing::warn!("orchestrator sent an execution report; ignored")
            }
        }
    }
    tx.commit()?;
    sends.push(Frame::Ack { seq });
    if let Some(s) = session {
        for f in sends {
            let _ = s.send(f);
        }
    }
    drop(books);
    if let Some(local) = start {
        let (node, ledger) = (node.clone(), ledger.clone());
        tokio::spawn(async move { crate::runner::run(node, ledger, local).await });
    }
    Ok(())
}

/// Decides whether this node takes an execution; reserves its resources if so.
fn admit(node: &NodeContext, execution: &Execution) -> (LocalState, ExecutionReport) {
    let reject = |message: String| {
        (LocalState::Failed, {
            let mut r = report(
                execution,
                ComputeStateType::AskForBidRejected,
                &message,
                true,
            );
            r.retryable = true;
            r
        })
    };
    let Some(job) = execution.job.as_deref() else {
        return reject("execution arrived without its job".into());
    };
    let engine = &job.task().engine;
    let Some(executor) = node.executors.get(&engine.kind) else {
        return reject(format!(
            "node {} does not support {}, only {}",
            node.node_id,
            engine.kind,
            node.executors.engines().join(", ")
        ));
    };
    let network = job.task().network.kind;
    if node.cfg.reject_networked_jobs && network != NetworkType::None {
        return reject(format!(
            "node {} refuses networked jobs (reject networked jobs is set) and the task asks for network {network:?}; set the task's Network.Type to None (shoal docker run --network none) or run it on another node",
            node.node_id
        ));
    }
    if let Err(e) = executor.validate(engine) {
        let r = report(execution, ComputeStateType::Failed, &e.to_string(), false);
        return (LocalState::Failed, r);
    }
    // Data locality: a local input this node cannot serve sends the work elsewhere.
    for input in &job.task().input_sources {
        if (input.source.is("local") || input.source.is("localDirectory"))
            && let Err(e) = crate::inputs::local::stage(input, &node.cfg.allowed_paths)
        {
            return reject(format!("node {} lacks the data: {e}", node.node_id));
        }
    }
    let want = execution
        .allocated_resources
        .tasks
        .values()
        .fold(Resources::default(), |a, r| a.add(r));
    let free = node.free();
    if let Some((dim, need, have)) = want.shortfall(&free) {
        return reject(format!(
            "node {} is busy: job needs {need} {dim}, {have} free",
            node.node_id
        ));
    }
    node.hub.open(execution.id.as_str());
    node.running.reserve(execution.id.as_str(), want);
    (
        LocalState::Accepted,
        report(execution, ComputeStateType::BidAccepted, "accepted", false),
    )
}

/// Acknowledged reports can be forgotten.
pub(crate) fn on_ack(ledger: &Ledger, seq: u64) -> Result<(), StoreError> {
    let mut books = ledger.lock();
    let tx = books.store.begin()?;
    tx.outbox_ack(shoal_store::ORCHESTRATOR_PEER, seq)?;
    tx.commit()
}
