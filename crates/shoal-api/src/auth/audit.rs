//! The API's audit writer: every write call and every refusal becomes an [`AuditEntry`] before
//! the answer goes out, so "Event has been recorded" is true when the client reads it.
//!
//! Entries are handed to one writer task, which appends whatever has queued up in one
//! transaction (group commit): a burst of submits costs one small SQLite commit per batch, and
//! the job store's writer never waits for the audit file (they are separate files).

use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use shoal_store::{AuditEntry, AuditFilter, AuditLog, StoreError};
use tokio::sync::{mpsc, oneshot};

/// Largest batch appended in one transaction.
const BATCH: usize = 512;

type Pending = (AuditEntry, oneshot::Sender<Result<(), String>>);

/// A handle to the audit log; cheap to clone.
#[derive(Clone)]
pub struct Audit {
    tx: mpsc::Sender<Pending>,
    log: Arc<AuditLog>,
}

impl std::fmt::Debug for Audit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Audit")
    }
}

/// Unix time in nanoseconds.
pub(crate) fn now_nanos() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos() as i64)
        .unwrap_or_default()
}

impl Audit {
    /// Starts the writer over `log`. Needs a Tokio runtime.
    pub fn start(log: AuditLog) -> Audit {
        let log = Arc::new(log);
        let (tx, mut rx) = mpsc::channel::<Pending>(4 * BATCH);
        let writer = log.clone();
        tokio::spawn(async move {
            let mut batch = Vec::with_capacity(BATCH);
            while rx.recv_many(&mut batch, BATCH).await > 0 {
                let entries: Vec<AuditEntry> = batch.iter().map(|(e, _)| e.clone()).collect();
                let log = writer.clone();
                let result = tokio::task::spawn_blocking(move || log.append(&entries))
                    .await
                    .map_err(|e| e.to_string())
                    .and_then(|r| r.map_err(|e| e.to_string()));
                if let Err(e) = &result {
                    tracing::error!(error = %e, entries = batch.len(), "audit entries could not be written");
                }
                for (_, done) in batch.drain(..) {
                    let _ = done.send(result.clone());
                }
            }
        });
        Audit { tx, log }
    }

    /// An audit log in memory (devstack and tests without a data dir).
    pub fn in_memory() -> Audit {
        Audit::start(AuditLog::open_in_memory().expect("an in-memory database opens"))
    }

    /// Appends one entry and waits until it is stored. A full queue makes the caller wait
    /// rather than losing the entry; a failed write is logged and returned.
    pub async fn record(
        &self,
        principal: &str,
        action: String,
        target: String,
        outcome: String,
    ) -> Result<(), String> {
        let entry = AuditEntry {
            seq: 0,
            time: now_nanos(),
            principal: principal.to_string(),
            action,
            target,
            outcome,
        };
        let (done, wait) = oneshot::channel();
        self.tx
            .send((entry, done))
            .await
            .map_err(|_| "the audit writer has stopped".to_string())?;
        wait.await
            .map_err(|_| "the audit writer has stopped".to_string())?
    }

    /// Stored entries, newest first.
    pub async fn list(&self, filter: AuditFilter) -> Result<Vec<AuditEntry>, StoreError> {
        let log = self.log.clone();
        tokio::task::spawn_blocking(move || log.list(&filter))
            .await
            .expect("the audit read does not panic")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_recorded_entry_is_readable_as_soon_as_record_returns() {
        let audit = Audit::in_memory();
        let mut waits = Vec::new();
        for i in 0..50 {
            let a = audit.clone();
            waits.push(tokio::spawn(async move {
                a.record(
                    "alice",
                    format!("PUT /x/{i}"),
                    format!("t{i}"),
                    "allowed 200".into(),
                )
                .await
            }));
        }
        for w in waits {
            w.await.unwrap().unwrap();
        }
        let all = audit.list(AuditFilter::default()).await.unwrap();
        assert_eq!(all.len(), 50, "every concurrent entry is kept");
    }
}
