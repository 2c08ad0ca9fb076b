//! The agent's ledger: its store and the current link session, under one lock, so that
//! replayed and new reports reach the link in sequence order.
//!
//! Every state change of an execution is stored together with the report announcing it
//! ([`Ledger::record`]); the report waits in the outbox until the orchestrator acknowledges it,
//! and is sent at once when a link is up.

use std::sync::{Mutex, MutexGuard};

use shoal_store::{ComputeStore, LocalExecution, StoreError};
use shoal_transport::{ExecutionReport, Frame, LogShipment, Message};
use tokio::sync::mpsc::UnboundedSender;

/// The store and the link session, behind the ledger lock.
pub(crate) struct Ledger(Mutex<Books>);

/// What the ledger lock guards.
pub(crate) struct Books {
    pub store: ComputeStore,
    /// The writer of the link, while one is up.
    pub session: Option<UnboundedSender<Frame>>,
}

impl Ledger {
    /// A ledger over an opened store, with no link yet.
    pub fn new(store: ComputeStore) -> Ledger {
        Ledger(Mutex::new(Books {
            store,
            session: None,
        }))
    }

    /// Takes the ledger lock.
    pub fn lock(&self) -> MutexGuard<'_, Books> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Stores an execution's new local state together with the report announcing it, then
    /// sends the report if the link is up (else it waits in the outbox).
    pub fn record(
        &self,
        local: &LocalExecution,
        report: ExecutionReport,
    ) -> Result<(), StoreError> {
        let mut books = self.lock();
        let Books { store, session } = &mut *books;
        let tx = store.begin()?;
        tx.put_local_execution(local)?;
        let msg = Message::Update(report);
        let seq = tx.outbox_push(
            shoal_store::ORCHESTRATOR_PEER,
            &serde_json::to_string(&msg).expect("serialise"),
        )?;
        tx.commit()?;
        if let Some(s) = session {
            let _ = s.send(Frame::Msg { seq, msg });
        }
        Ok(())
    }

    /// Puts an execution's log pieces in the outbox in one transaction (ahead of the report
    /// that ends the execution) and sends them if the link is up.
    pub fn ship_logs(&self, pieces: Vec<LogShipment>) -> Result<(), StoreError> {
        if pieces.is_empty() {
            return Ok(());
        }
        let mut books = self.lock();
        let Books { store, session } = &mut *books;
        let tx = store.begin()?;
        let mut sends = Vec::with_capacity(pieces.len());
        for piece in pieces {
            let msg = Message::Logs(piece);
            let seq = tx.outbox_push(
                shoal_store::ORCHESTRATOR_PEER,
                &serde_json::to_string(&msg).expect("serialise"),
            )?;
            sends.push(Frame::Msg { seq, msg });
        }
        tx.commit()?;
        if let Some(s) = session {
            for f in sends {
                let _ = s.send(f);
            }
        }
        Ok(())
    }
}
