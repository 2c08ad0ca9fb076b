//! What the engine holds besides the store, what one transaction will send once it commits,
//! and the write-through helpers that keep the engine's caches in step with the store.

use std::collections::{BTreeSet, HashMap};

use shoal_store::Tx;
use shoal_transport::{Frame, Outbound};
use shoal_types::time::UnixNanos;
use shoal_types::{Execution, Job};

use crate::active::ActiveJobs;
use crate::config::OrchestratorConfig;
use crate::error::OrchestratorError;
use crate::logs::LogRegistry;
use crate::nodes::{Links, NodeTable, NodeViews};
use crate::query::LiveQueries;

/// Engine state other than the store.
pub(crate) struct EngineState {
    /// When this engine started: scheduled ticks due before it were missed while it was down.
    pub started: UnixNanos,
    pub cfg: OrchestratorConfig,
    pub nodes: NodeTable,
    pub links: Links,
    pub logs: LogRegistry,
    pub queries: LiveQueries,
    /// What the engine counts (served at `/metrics`).
    pub metrics: std::sync::Arc<crate::metrics::Metrics>,
    /// (when, job id) pairs to re-evaluate; job id `*` means every active job.
    pub timers: BTreeSet<(UnixNanos, String)>,
    /// The scheduler's view of the nodes, kept between evaluations.
    pub views: NodeViews,
    /// Jobs with work in flight and their executions, kept between evaluations.
    pub active: ActiveJobs,
}

/// Frames to send once the transaction that produced them has committed.
#[derive(Default)]
pub(crate) struct Outgoing {
    frames: Vec<(String, Outbound)>,
    /// The highest message applied per node in this transaction: an `Ack` covers everything
    /// up to its number, so one per node is enough (a node's accept and start reports often
    /// arrive in one batch, and each ack costs the node a write).
    acks: HashMap<String, u64>,
}

impl Outgoing {
    /// Queues a frame for a node.
    pub fn push(&mut self, node_id: &str, frame: impl Into<Outbound>) {
        self.frames.push((node_id.to_string(), frame.into()));
    }

    /// Acknowledges a node's message `seq` (and so every one before it).
    pub fn ack(&mut self, node_id: &str, seq: u64) {
        let highest = self.acks.entry(node_id.to_string()).or_default();
        *highest = (*highest).max(seq);
    }

    /// Sends everything queued; call only after the transaction committed.
    pub fn flush(self, links: &Links) {
        for (node, frame) in self.frames {
            // A node that is away gets durable messages from its outbox when it returns.
            links.send(&node, frame);
        }
        for (node, seq) in self.acks {
            links.send(&node, Frame::Ack { seq });
        }
    }
}

/// Writes an execution and keeps the engine's copy of its job's executions in step.
pub(crate) fn write_execution(
    tx: &Tx<'_>,
    st: &mut EngineState,
    e: &Execution,
) -> Result<(), OrchestratorError> {
    tx.put_execution(e)?;
    st.active.put(e);
    Ok(())
}

/// Writes a job and keeps the engine's copy in step.
pub(crate) fn write_job(
    tx: &Tx<'_>,
    st: &mut EngineState,
    job: &Job,
) -> Result<(), OrchestratorError> {
    tx.put_job(job)?;
    st.active.put_job(job);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nodes::Session;

    #[test]
    fn one_ack_per_node_covers_every_message_applied_in_a_transaction() {
        let links = Links::default();
        let mut inboxes = Vec::new();
        for (i, node) in ["n-a", "n-b"].into_iter().enumerate() {
            let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
            links.insert(node, Session { id: i as u64, tx });
            inboxes.push(rx);
        }
        let mut out = Outgoing::default();
        for (node, seq) in [("n-a", 3), ("n-a", 5), ("n-b", 2), ("n-a", 4)] {
            out.ack(node, seq);
        }
        out.flush(&links);
        let received: Vec<Vec<Outbound>> = inboxes
            .iter_mut()
            .map(|rx| std::iter::from_fn(|| rx.try_recv().ok()).collect())
            .collect();
        assert_eq!(received[0], vec![Outbound::Frame(Frame::Ack { seq: 5 })]);
        assert_eq!(received[1], vec![Outbound::Frame(Frame::Ack { seq: 2 })]);
    }
}
