//! The engine: the one thread that changes orchestrator state.
//!
//! Commands arrive on a channel; each is handled inside one store transaction, together with
//! the re-evaluation of every job it affects; the link frames it produced are sent only after
//! the commit ([`Outgoing::flush`]). Timers (queue back-off, deadlines, node-lost grace) and
//! heartbeat checks run between commands.

use std::collections::BTreeSet;
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::time::Duration;

use shoal_store::{OrchestratorStore, StoreError, Tx};
use shoal_transport::ledger;
use shoal_types::time::UnixNanos;
use shoal_types::{ConnectionStatus, Job};

use crate::active::ActiveJobs;
use crate::clock::now;
use crate::command::{Command, Reply, SubmitOptions, SubmitOutcome};
use crate::config::OrchestratorConfig;
use crate::error::OrchestratorError;
use crate::evaluate::{evaluate, evaluate_active};
use crate::logs::LogRegistry;
use crate::nodes::{Links, LiveNode, NodeTable, NodeViews, allocated};
use crate::query::LiveQueries;
use crate::state::{EngineState, Outgoing};

mod enrolment;
mod fleet;
mod jobs;
mod membership;
mod reports;
pub(crate) mod schedules;

use enrolment::{create_token, delete_token};
use fleet::ask_fleet;
use jobs::{promote, stop, submit};
use membership::{connect, heartbeat, node_action, node_labels, node_lost_link};
use reports::inbound;

/// A submission waiting in a batch for its transaction.
struct Submission {
    job: Box<Job>,
    options: SubmitOptions,
    reply: Reply<SubmitOutcome>,
}

/// The engine: owns the store and the engine state, and runs on its own thread.
pub(crate) struct Engine {
    store: OrchestratorStore,
    st: EngineState,
    /// When [`Engine::tick`] next looks for silent nodes.
    next_silence_scan: UnixNanos,
}

impl Engine {
    pub fn new(
        store: OrchestratorStore,
        cfg: OrchestratorConfig,
        links: Links,
        logs: LogRegistry,
        queries: LiveQueries,
        metrics: std::sync::Arc<crate::metrics::Metrics>,
    ) -> Result<Self, StoreError> {
        let t = now();
        let mut nodes = NodeTable::new();
        let read = store.read();
        for mut state in read.nodes()? {
            // After a restart every node counts as disconnected until it dials in again; its
            // node-lost grace starts now, so a restart alone never re-places running work.
            state.connection = ConnectionStatus::Disconnected;
            state.connection_state.status = ConnectionStatus::Disconnected;
            nodes.insert(state.info.node_id.clone(), LiveNode::new(state, t));
        }
        load_allocations(&read, &mut nodes)?;
        let mut timers = BTreeSet::new();
        timers.insert((t, "*".to_string()));
        Ok(Engine {
            store,
            next_silence_scan: t,
            st: EngineState {
                started: t,
                cfg,
                nodes,
                links,
                logs,
                queries,
                metrics,
                timers,
                views: NodeViews::default(),
                active: ActiveJobs::default(),
            },
        })
    }

    pub fn run(mut self, rx: Receiver<Command>) {
        loop {
            let t = now();
            let next_timer = self
                .st
                .timers
                .first()
                .map(|(at, _)| *at)
                .unwrap_or(t + 1_000_000_000)
                .min(self.next_silence_scan);
            let wait = Duration::from_nanos((next_timer - t).clamp(0, 1_000_000_000) as u64);
            match rx.recv_timeout(wait) {
                Ok(cmd) => {
                    // Take whatever else is already queued, so that a burst of node traffic
                    // (a fleet answering a query, a reconnect storm) is applied in a few
                    // transactions with one evaluation per job, not one of each per message.
                    let mut batch = vec![cmd];
                    while batch.len() < MAX_BATCH {
                        match rx.try_recv() {
                            Ok(c) => batch.push(c),
                            Err(_) => break,
                        }
                    }
                    self.handle_batch(batch);
                }
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => return,
            }
            self.tick();
        }
    }

    /// Handles queued commands in order. Runs of node traffic (messages, acks, heartbeats)
    /// share one transaction, and every job they touch is evaluated once at its end; other
    /// commands are handled one by one.
    fn handle_batch(&mut self, batch: Vec<Command>) {
        let mut traffic = Vec::new();
        let mut submits = Vec::new();
        for cmd in batch {
            match cmd {
                Command::Inbound { .. } | Command::Ack { .. } | Command::Heartbeat { .. } => {
                    self.handle_submits(std::mem::take(&mut submits));
                    traffic.push(cmd);
                }
                Command::Submit {
                    job,
                    options,
                    reply,
                } => {
                    self.handle_traffic(std::mem::take(&mut traffic));
                    submits.push(Submission {
                        job,
                        options,
                        reply,
                    });
                }
                cmd => {
                    self.handle_traffic(std::mem::take(&mut traffic));
                    self.handle_submits(std::mem::take(&mut submits));
                    self.handle(cmd);
                }
            }
        }
        self.handle_traffic(traffic);
        self.handle_submits(submits);
    }

    /// Commits a run of submissions in one transaction (group commit) and answers each once
    /// it is durable. A submission refused on its merits (a name conflict) writes nothing and
    /// is answered with its error; if the store fails, the whole transaction rolls back and
    /// each submission is retried in its own, so one bad write cannot fail its neighbours.
    fn handle_submits(&mut self, submits: Vec<Submission>) {
        if submits.is_empty() {
            return;
        }
        let batched = self.with_tx(|tx, st, out| {
            let mut outcomes = Vec::with_capacity(submits.len());
            for s in &submits {
                match submit(tx, st, out, (*s.job).clone(), s.options) {
                    Err(e @ OrchestratorError::Store(_)) => return Err(e),
                    r => outcomes.push(r),
                }
            }
            Ok(outcomes)
        });
        match batched {
            Ok(outcomes) => {
                for (s, r) in submits.into_iter().zip(outcomes) {
                    if r.is_ok() {
                        self.st.metrics.submitted(s.job.job_type);
                    }
                    let _ = s.reply.send(r);
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, n = submits.len(), "batched submit failed; retrying one by one");
                for s in submits {
                    let job_type = s.job.job_type;
                    let r = self.with_tx(|tx, st, out| submit(tx, st, out, *s.job, s.options));
                    if r.is_ok() {
                        self.st.metrics.submitted(job_type);
                    }
                    let _ = s.reply.send(r);
                }
            }
        }
    }

    fn handle_traffic(&mut self, traffic: Vec<Command>) {
        if traffic.is_empty() {
            return;
        }
        // Heartbeats change only memory: an idle fleet costs no transactions.
        if traffic
            .iter()
            .all(|c| matches!(c, Command::Heartbeat { .. }))
        {
            for cmd in traffic {
                if let Command::Heartbeat { node_id } = cmd {
                    heartbeat(&mut self.st, &node_id);
                }
            }
            return;
        }
        log_err(self.with_tx(|tx, st, out| {
            let mut dirty = BTreeSet::new();
            for cmd in traffic {
                match cmd {
                    Command::Inbound { node_id, seq, msg } => {
                        if let Some(job) = inbound(tx, st, out, &node_id, seq, msg)? {
                            dirty.insert(job);
                        }
                    }
                    Command::Ack { node_id, seq } => ledger::ack(tx, &node_id, seq)?,
                    Command::Heartbeat { node_id } => heartbeat(st, &node_id),
                    _ => unreachable!("only node traffic is batched"),
                }
            }
            for job in &dirty {
                evaluate(tx, st, out, job)?;
            }
            Ok(())
        }));
    }

    fn handle(&mut self, cmd: Command) {
        match cmd {
            Command::Submit {
                job,
                options,
                reply,
            } => self.handle_submits(vec![Submission {
                job,
                options,
                reply,
            }]),
            Command::Stop {
                job_id,
                reason,
                reply,
            } => {
                let r = self.with_tx(|tx, st, out| stop(tx, st, out, &job_id, &reason));
                let _ = reply.send(r);
            }
            Command::Promote { job_id, reply } => {
                let r = self.with_tx(|tx, st, out| promote(tx, st, out, &job_id));
                let _ = reply.send(r);
            }
            Command::Connect {
                info,
                applied_seq,
                credentials,
                session,
                reply,
            } => {
                let r = self.with_tx(|tx, st, out| {
                    connect(tx, st, out, *info, applied_seq, credentials, session)
                });
                let silent_at = now() + self.st.cfg.disconnect_timeout.as_nanos() as i64 + 1;
                self.next_silence_scan = self.next_silence_scan.min(silent_at);
                let _ = reply.send(r.unwrap_or_else(|e| Err(e.into())));
            }
            cmd @ (Command::Inbound { .. } | Command::Ack { .. } | Command::Heartbeat { .. }) => {
                self.handle_traffic(vec![cmd]);
            }
            Command::Disconnected {
                node_id,
                session_id,
            } => {
                if self.st.links.remove_if(&node_id, Some(session_id)) {
                    log_err(
                        self.with_tx(|tx, st, _| node_lost_link(tx, st, &node_id, "link closed")),
                    );
                }
            }
            Command::NodeAction {
                node_id,
                action,
                reply,
            } => {
                let r = self.with_tx(|tx, st, out| node_action(tx, st, out, &node_id, &action));
                let _ = reply.send(r);
            }
            Command::NodeLabels {
                node_id,
                set,
                remove,
                reply,
            } => {
                let r = self.with_tx(|tx, st, out| node_labels(tx, st, out, &node_id, set, remove));
                let _ = reply.send(r);
            }
            Command::AskFleet {
                query_id,
                job,
                request,
                reply,
            } => {
                let _ = reply.send(Ok(ask_fleet(&mut self.st, &query_id, &job, &request)));
            }
            Command::RunNow { job_id, reply } => {
                let r = self.with_tx(|tx, st, out| schedules::run_now(tx, st, out, &job_id));
                let _ = reply.send(r);
            }
            Command::CreateJoinToken { request, reply } => {
                let r = self.with_tx(|tx, _, _| create_token(tx, &request));
                let _ = reply.send(r);
            }
            Command::DeleteJoinToken { id, reply } => {
                let r = self.with_tx(|tx, _, _| delete_token(tx, &id));
                let _ = reply.send(r);
            }
            Command::Usage { reply } => {
                let usage = self
                    .st
                    .nodes
                    .iter()
                    .map(|(id, n)| (id.clone(), n.usage()))
                    .collect();
                let _ = reply.send(usage);
            }
        }
    }

    /// Fires due timers and marks silent nodes disconnected.
    fn tick(&mut self) {
        let t = now();
        let timeout = self.st.cfg.disconnect_timeout.as_nanos() as i64;
        // The scan for silent nodes walks the whole node table; run after every batch, a fleet
        // of 20,000 heartbeating nodes spent most of the engine's time in it. So it runs when
        // the first node can fall silent: the oldest heartbeat plus the timeout (heartbeats
        // only move that later; a node that connects moves it earlier, see `Connect`). A lost
        // node is then seen within the timeout itself, not the timeout plus a scan period.
        let silent: Vec<String> = if t >= self.next_silence_scan {
            let mut next = t + timeout;
            let mut silent = Vec::new();
            for (id, n) in self.st.nodes.iter() {
                if t - n.last_seen > timeout {
                    if self.st.links.is_connected(id) {
                        silent.push(id.clone());
                    }
                } else {
                    next = next.min(n.last_seen + timeout + 1);
                }
            }
            self.next_silence_scan = next.max(t + 1_000_000);
            silent
        } else {
            Vec::new()
        };
        for id in silent {
            self.st.links.remove_if(&id, None);
            let why = format!("no heartbeat for {:?}", self.st.cfg.disconnect_timeout);
            log_err(self.with_tx(|tx, st, _| node_lost_link(tx, st, &id, &why)));
        }
        let mut due = Vec::new();
        while let Some(first) = self.st.timers.first().cloned() {
            if first.0 > t {
                break;
            }
            self.st.timers.pop_first();
            due.push(first.1);
        }
        if due.is_empty() {
            return;
        }
        due.sort();
        due.dedup();
        log_err(self.with_tx(|tx, st, out| {
            if due.iter().any(|j| j == "*") {
                evaluate_active(tx, st, out)
            } else {
                for job in &due {
                    evaluate(tx, st, out, job)?;
                }
                Ok(())
            }
        }));
    }

    fn with_tx<T>(
        &mut self,
        f: impl FnOnce(&Tx<'_>, &mut EngineState, &mut Outgoing) -> Result<T, OrchestratorError>,
    ) -> Result<T, OrchestratorError> {
        let mut out = Outgoing::default();
        let started = std::time::Instant::now();
        let tx = self.store.begin()?;
        let done = f(&tx, &mut self.st, &mut out).and_then(|v| {
            tx.commit()?;
            Ok(v)
        });
        self.st.metrics.store_tx.observe(started.elapsed());
        if done.is_err() {
            // The caches may hold what the store now does not.
            self.st.active.clear();
            self.st.views.invalidate();
            if let Err(e) = load_allocations(&self.store.read(), &mut self.st.nodes) {
                tracing::error!(error = %e, "reloading node allocations after a failed transaction");
            }
        }
        let value = done?;
        out.flush(&self.st.links);
        Ok(value)
    }
}

/// Commands taken from the queue at once.
const MAX_BATCH: usize = 1024;

/// Sets every node's allocations to the unfinished executions the store holds.
fn load_allocations(
    read: &shoal_store::Reader<'_>,
    nodes: &mut NodeTable,
) -> Result<(), StoreError> {
    for n in nodes.values_mut() {
        n.allocated.clear();
    }
    for job_id in read.active_job_ids()? {
        for e in read.executions(&job_id)? {
            if !e.is_terminal()
                && let Some(n) = nodes.get_mut(e.node_id.as_str())
            {
                n.allocated.insert(e.id.to_string(), allocated(&e));
            }
        }
    }
    Ok(())
}

fn log_err<T>(r: Result<T, OrchestratorError>) {
    if let Err(e) = r {
        tracing::error!(error = %e, "orchestrator engine step failed");
    }
}
