//! Durable messages from the orchestrator (`Run`, `Cancel`), each applied exactly once, and
//! the acknowledgements of the agent's own reports.
//!
//! A message is applied in the same store transaction that marks its sequence number applied,
//! so a message the orchestrator sends again after a reconnect changes nothing.

use std::sync::Arc;

use shoal_store::{LocalExecution, LocalState, ORCHESTRATOR_PEER, StoreError};
use shoal_transport::{ExecutionReport, Frame, Message, ledger};
use shoal_types::{ComputeStateType, Execution};

use crate::admission::{self, Policy};
use crate::ledger::{Books, Ledger};
use crate::lifecycle::{self, Event, report};
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
    let fresh = ledger::apply(&tx, ORCHESTRATOR_PEER, seq)?;
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
                    sends.push(ledger::push(
                        &tx,
                        ORCHESTRATOR_PEER,
                        &Message::Update(report),
                    )?);
                    if state == LocalState::Accepted {
                        start = Some(local);
                    }
                }
            }
            Message::Cancel { execution_id, .. } => node.running.cancel(&execution_id),
            Message::Update(_) | Message::Logs(_) => {
                tracing::warn!("orchestrator sent a node's message (a report or logs); ignored")
            }
        }
    }
    tx.commit()?;
    sends.push(Frame::Ack { seq }.into());
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

/// Admits an execution or refuses it (see `admission.rs`); an admitted one gets its live log
/// channel and its reservation.
fn admit(node: &NodeContext, execution: &Execution) -> (LocalState, ExecutionReport) {
    let policy = Policy {
        node_id: &node.node_id,
        reject_networked_jobs: node.cfg.reject_networked_jobs,
        allowed_paths: &node.cfg.allowed_paths,
    };
    match admission::decide(&policy, node.free(), &node.executors, execution) {
        Ok(reservation) => {
            node.hub.open(execution.id.as_str());
            node.running
                .reserve(execution.id.as_str(), reservation.resources);
            (
                lifecycle::next(None, Event::Admitted),
                report(execution, ComputeStateType::BidAccepted, "accepted", false),
            )
        }
        Err(refusal) => (
            lifecycle::next(None, Event::Refused),
            refusal.into_report(execution),
        ),
    }
}

/// Acknowledged reports can be forgotten.
pub(crate) fn on_ack(ledger: &Ledger, seq: u64) -> Result<(), StoreError> {
    let mut books = ledger.lock();
    let tx = books.store.begin()?;
    ledger::ack(&tx, ORCHESTRATOR_PEER, seq)?;
    tx.commit()
}
