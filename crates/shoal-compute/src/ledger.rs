//! The agent's ledger: its store and the current link session, under one lock, so that
//! replayed and new reports reach the link in sequence order.
//!
//! Every state change of an execution is stored together with the report announcing it
//! ([`Ledger::record`]); the report waits in the outbox until the orchestrator acknowledges it,
//! and is sent at once when a link is up.

use std::sync::{Mutex, MutexGuard};

use shoal_store::{ComputeStore, LocalExecution, ORCHESTRATOR_PEER, StoreError};
use shoal_transport::{ExecutionReport, LogShipment, Message, Outbound, ledger};
use tokio::sync::mpsc::UnboundedSender;

/// The store and the link session, behind the ledger lock.
pub(crate) struct Ledger(Mutex<Books>);

/// What the ledger lock guards.
pub(crate) struct Books {
    pub store: ComputeStore,
    /// The writer of the link, while one is up.
    pub session: Option<UnboundedSender<Outbound>>,
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
        let send = ledger::push(&tx, ORCHESTRATOR_PEER, &Message::Update(report))?;
        tx.commit()?;
        if let Some(s) = session {
            let _ = s.send(send);
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
        let sends = pieces
            .into_iter()
            .map(|piece| ledger::push(&tx, ORCHESTRATOR_PEER, &Message::Logs(piece)))
            .collect::<Result<Vec<_>, _>>()?;
        tx.commit()?;
        if let Some(s) = session {
            for f in sends {
                let _ = s.send(f);
            }
        }
        Ok(())
    }
}
