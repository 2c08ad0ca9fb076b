//! The engine: the one thread that changes orchestrator state.
//!
//! Commands arrive on a channel; each is handled inside one store transaction, together with
//! the re-evaluation of every job it affects; the link frames it produced are sent only after
//! the commit ([`Outgoing::flush`]). Timers (queue back-off, deadlines, node-lost grace) and
//! heartbeat checks run between commands.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::time::{Duration, SystemTime};

use shoal_store::{OrchestratorStore, StoreError, Tx};
use shoal_transport::{ExecutionReport, Frame, Message};
use shoal_types::time::{UnixNanos, rfc3339, to_unix_nanos};
use shoal_types::{
    ComputeStateType, ConnectionStatus, DesiredStateType, Event, HistoryType, Job, JobHistory,
    JobId, JobState, JobStateType, Membership, NodeInfo, NodeState, Resources,
};
use tokio::sync::{Notify, oneshot};

use crate::config::OrchestratorConfig;
use crate::error::OrchestratorError;
use crate::evaluate::{ActiveJobs, evaluate};
use crate::handle::{SubmitOptions, SubmitOutcome};
use crate::logs::LogRegistry;
use crate::nodes::{Links, LiveNode, NodeTable, NodeViews, Outbound, Session, Usage};
use crate::query::{LiveQueries, NodeAnswer, Outcome, QueryRequest};

type Reply<T> = oneshot::Sender<Result<T, OrchestratorError>>;

/// What the engine can be asked to do.
pub(crate) enum Command {
    Submit {
        job: Box<Job>,
        options: SubmitOptions,
        reply: Reply<SubmitOutcome>,
    },
    Stop {
        job_id: String,
        reason: String,
        reply: Reply<()>,
    },
    Connect {
        info: Box<NodeInfo>,
        applied_seq: u64,
        token: Option<String>,
        session: Session,
        reply: oneshot::Sender<Result<(), String>>,
    },
    Inbound {
        node_id: String,
        seq: u64,
        msg: Message,
    },
    Ack {
        node_id: String,
        seq: u64,
    },
    Heartbeat {
        node_id: String,
    },
    Disconnected {
        node_id: String,
        session_id: u64,
    },
    NodeAction {
        node_id: String,
        action: String,
        reply: Reply<()>,
    },
    NodeLabels {
        node_id: String,
        set: BTreeMap<String, String>,
        remove: Vec<String>,
        reply: Reply<()>,
    },
    /// Sends a live fleet query to the nodes it reaches (see `query.rs`).
    AskFleet {
        query_id: String,
        job: Box<Job>,
        request: Box<QueryRequest>,
        reply: Reply<Arc<Notify>>,
    },
    /// Live free capacity of every known node.
    Usage {
        reply: oneshot::Sender<HashMap<String, Usage>>,
    },
}

/// A submission waiting in a batch for its transaction.
struct Submission {
    job: Box<Job>,
    options: SubmitOptions,
    reply: Reply<SubmitOutcome>,
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
    pub fn push(&mut self, node_id: &str, frame: impl Into<Outbound>) {
        self.frames.push((node_id.to_string(), frame.into()));
    }

    /// Acknowledges a node's message `seq` (and so every one before it).
    pub fn ack(&mut self, node_id: &str, seq: u64) {
        let highest = self.acks.entry(node_id.to_string()).or_default();
        *highest = (*highest).max(seq);
    }

    fn flush(self, links: &Links) {
        for (node, frame) in self.frames {
            // A node that is away gets durable messages from its outbox when it returns.
            links.send(&node, frame);
        }
        for (node, seq) in self.acks {
            links.send(&node, Frame::Ack { seq });
        }
    }
}

/// Engine state other than the store.
pub(crate) struct EngineState {
    pub cfg: OrchestratorConfig,
    pub nodes: NodeTable,
    pub links: Links,
    pub logs: LogRegistry,
    pub queries: LiveQueries,
    /// (when, job id) pairs to re-evaluate; job id `*` means every active job.
    pub timers: BTreeSet<(UnixNanos, String)>,
    /// The scheduler's view of the nodes, kept between evaluations.
    pub views: NodeViews,
    /// Jobs with work in flight and their executions, kept between evaluations.
    pub active: ActiveJobs,
}

pub(crate) struct Engine {
    store: OrchestratorStore,
    st: EngineState,
    /// When [`Engine::tick`] next looks for silent nodes.
    next_silence_scan: UnixNanos,
}

pub(crate) fn now() -> UnixNanos {
    to_unix_nanos(SystemTime::now())
}

/// A history entry stamped now.
pub(crate) fn history(job: &Job, execution_id: Option<&str>, event: Event) -> JobHistory {
    JobHistory {
        seq_num: 0,
        kind: if execution_id.is_some() {
            HistoryType::ExecutionLevel
        } else {
            HistoryType::JobLevel
        },
        job_id: job.id.clone(),
        job_version: job.version,
        execution_id: execution_id.unwrap_or_default().to_string(),
        time: event.timestamp.clone(),
        event,
    }
}

pub(crate) fn event(topic: &str, message: impl Into<String>) -> Event {
    Event::new(topic, message, rfc3339(now()))
}

impl Engine {
    pub fn new(
        store: OrchestratorStore,
        cfg: OrchestratorConfig,
        links: Links,
        logs: LogRegistry,
        queries: LiveQueries,
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
                cfg,
                nodes,
                links,
                logs,
                queries,
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
                    let _ = s.reply.send(r);
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, n = submits.len(), "batched submit failed; retrying one by one");
                for s in submits {
                    let r = self.with_tx(|tx, st, out| submit(tx, st, out, *s.job, s.options));
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
                    Command::Ack { node_id, seq } => tx.outbox_ack(&node_id, seq)?,
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
            Command::Connect {
                info,
                applied_seq,
                token,
                session,
                reply,
            } => {
                let r = self.with_tx(|tx, st, out| {
                    Ok(connect(tx, st, out, *info, applied_seq, token, session))
                });
                let silent_at = now() + self.st.cfg.disconnect_timeout.as_nanos() as i64 + 1;
                self.next_silence_scan = self.next_silence_scan.min(silent_at);
                let _ = reply.send(r.unwrap_or_else(|e| Err(e.to_string())));
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
        let tx = self.store.begin()?;
        let done = f(&tx, &mut self.st, &mut out).and_then(|v| {
            tx.commit()?;
            Ok(v)
        });
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

fn heartbeat(st: &mut EngineState, node_id: &str) {
    if let Some(n) = st.nodes.get_mut(node_id) {
        n.last_seen = now();
        n.state.connection_state.last_heartbeat = rfc3339(n.last_seen);
        st.views.refresh(&st.nodes, node_id);
    }
}

fn log_err<T>(r: Result<T, OrchestratorError>) {
    if let Err(e) = r {
        tracing::error!(error = %e, "orchestrator engine step failed");
    }
}

pub(crate) fn allocated(e: &shoal_types::Execution) -> Resources {
    e.allocated_resources
        .tasks
        .values()
        .fold(Resources::default(), |acc, r| acc.add(r))
}

pub(crate) fn evaluate_active(
    tx: &Tx<'_>,
    st: &mut EngineState,
    out: &mut Outgoing,
) -> Result<(), OrchestratorError> {
    for job_id in tx.read().active_job_ids()? {
        evaluate(tx, st, out, &job_id)?;
    }
    Ok(())
}

fn submit(
    tx: &Tx<'_>,
    st: &mut EngineState,
    out: &mut Outgoing,
    mut job: Job,
    options: SubmitOptions,
) -> Result<SubmitOutcome, OrchestratorError> {
    let t = now();
    let existing = if job.name.is_empty() {
        None
    } else {
        tx.read().job_by_name(&job.namespace, &job.name)?
    };
    let submission = match existing {
        Some(old) => {
            if !options.force && same_spec(&old, &job) {
                return Err(OrchestratorError::Conflict(format!(
                    "job {:?} ({}) already has this spec (version {}, {}); nothing to update. \
                     Change the spec to update it, resubmit with --force (API: \"Force\": true) \
                     to run it again as a new version, or give the job another Name",
                    old.name, old.id, old.version, old.state.state_type
                )));
            }
            job.id = old.id.clone();
            job.version = old.version + 1;
            job.revision = old.revision + 1;
            job.create_time = old.create_time;
            event("Submission", "Job updated").with("Version", job.version.to_string())
        }
        None => {
            job.id = JobId::generate().to_string();
            if job.name.is_empty() {
                job.name = job.id.clone();
            }
            job.version = 1;
            job.revision = 1;
            job.create_time = t;
            event("Submission", "Job submitted")
        }
    };
    job.state = JobState::new(JobStateType::Pending, "");
    job.modify_time = t;
    job.meta.insert(
        "bacalhau.org/orchestrator.id".into(),
        st.cfg.node_id.clone(),
    );
    crate::evaluate::put_job(tx, st, &job)?;
    tx.append_history(history(&job, None, submission))?;
    evaluate(tx, st, out, &job.id)?;
    let stored = st.active.job(tx, &job.id)?.unwrap_or(&job);
    Ok(SubmitOutcome {
        job_id: stored.id.clone(),
        state: stored.state.clone(),
        version: stored.version,
    })
}

/// Whether two job specs are the same for an update: system fields (id, state, version,
/// revision, times) and the orchestrator's own `bacalhau.org/` metadata are ignored.
fn same_spec(old: &Job, new: &Job) -> bool {
    fn comparable(job: &Job) -> Job {
        let mut j = job.clone();
        j.id.clear();
        j.state = JobState::new(JobStateType::Pending, "");
        j.version = 0;
        j.revision = 0;
        j.create_time = 0;
        j.modify_time = 0;
        j.meta.retain(|k, _| !k.starts_with("bacalhau.org/"));
        j
    }
    serde_json::to_value(comparable(old)).ok() == serde_json::to_value(comparable(new)).ok()
}

fn stop(
    tx: &Tx<'_>,
    st: &mut EngineState,
    out: &mut Outgoing,
    job_id: &str,
    reason: &str,
) -> Result<(), OrchestratorError> {
    let Some(mut job) = st.active.job(tx, job_id)?.cloned() else {
        return Err(OrchestratorError::NotFound(format!(
            "job {job_id} not found"
        )));
    };
    match job.state.state_type {
        JobStateType::Stopped => return Ok(()),
        s if s.is_terminal() => {
            return Err(OrchestratorError::Conflict(format!(
                "job {} is already {s} and cannot be stopped",
                job.id
            )));
        }
        _ => {}
    }
    job.state = JobState::new(JobStateType::Stopped, reason);
    job.revision += 1;
    job.modify_time = now();
    crate::evaluate::put_job(tx, st, &job)?;
    let ev = event("State Update", reason).with("NewState", "Stopped");
    tx.append_history(history(&job, None, ev))?;
    evaluate(tx, st, out, job_id)
}

fn connect(
    tx: &Tx<'_>,
    st: &mut EngineState,
    out: &mut Outgoing,
    info: NodeInfo,
    applied_seq: u64,
    token: Option<String>,
    session: Session,
) -> Result<(), String> {
    if let Some(expected) = &st.cfg.join_token
        && token.as_deref() != Some(expected.as_str())
    {
        let why = if token.is_none() {
            "no join token was given"
        } else {
            "the join token is wrong"
        };
        return Err(format!(
            "node {} refused: {why}; start it with --token set to the orchestrator's join token (printed by `shoal serve --orchestrator`)",
            info.node_id
        ));
    }
    let t = now();
    let id = info.node_id.clone();
    let membership = match st.nodes.get(&id) {
        Some(n) => n.state.membership,
        None if st.cfg.require_approval => Membership::Pending,
        None => Membership::Approved,
    };
    if membership == Membership::Rejected {
        return Err(format!(
            "node {id} refused: it was rejected by an operator; `shoal node approve {id}` lets it join"
        ));
    }
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
    let result = (|| -> Result<(), OrchestratorError> {
        live.state.connection_state.last_compute_seq_num = tx.read().link_applied(&id)?;
        tx.put_node(&live.state)?;
        tx.outbox_ack(&id, applied_seq)?;
        out.push(
            &id,
            Frame::Welcome {
                applied_seq: live.state.connection_state.last_compute_seq_num,
            },
        );
        for entry in tx.read().outbox_pending(&id, applied_seq)? {
            // Read to make sure the node can (an unreadable one would close its link each
            // time), then sent as stored, like the first time.
            match serde_json::from_str::<Message>(&entry.body) {
                Ok(_) => out.push(
                    &id,
                    Outbound::Stored {
                        seq: entry.seq,
                        body: entry.body,
                    },
                ),
                Err(e) => {
                    tracing::error!(node = %id, seq = entry.seq, error = %e, "unreadable outbox entry")
                }
            }
        }
        Ok(())
    })();
    if let Err(e) = result {
        return Err(e.to_string());
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
    Ok(())
}

fn node_lost_link(
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

/// Applies one message from a node; returns the job to re-evaluate, if any. The caller
/// evaluates each affected job once per batch of messages.
fn inbound(
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
    crate::evaluate::put_execution(tx, st, &e)?;
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

/// Opens a live fleet query and sends it to every connected node it reaches; the matching
/// nodes that are away count as unreachable at once.
fn ask_fleet(
    st: &mut EngineState,
    query_id: &str,
    job: &Job,
    request: &QueryRequest,
) -> Arc<Notify> {
    let reach = shoal_scheduler::reach(job, st.views.get(&st.nodes));
    let asked: Vec<String> = reach.connected.iter().map(|n| n.to_string()).collect();
    let away = reach
        .away
        .iter()
        .map(|r| NodeAnswer {
            error: Some(format!("not asked: {}", r.reason)),
            ..NodeAnswer::new(r.node_id.as_str(), Outcome::Unreachable)
        })
        .collect();
    let all_in = st.queries.open(query_id, request, &asked, away);
    let timeout_ms = job.task().timeouts.total_timeout.saturating_mul(1000);
    for node in &asked {
        let frame = Frame::Query {
            query_id: query_id.to_string(),
            sql: request.query.trim().to_string(),
            max_rows: request.max_rows,
            timeout_ms,
        };
        if !st.links.send(node, frame) {
            // Its link closed after the engine last heard of it: nothing will come back.
            st.queries.node_gone(node);
        }
    }
    all_in
}

fn node_action(
    tx: &Tx<'_>,
    st: &mut EngineState,
    out: &mut Outgoing,
    node_id: &str,
    action: &str,
) -> Result<(), OrchestratorError> {
    st.views.invalidate();
    let Some(node) = st.nodes.get_mut(node_id) else {
        return Err(OrchestratorError::NotFound(format!(
            "node {node_id} not found; `shoal node list` shows known nodes"
        )));
    };
    match action.to_ascii_lowercase().as_str() {
        "approve" => {
            if node.state.membership == Membership::Approved {
                return Err(OrchestratorError::Conflict(format!(
                    "node {node_id} is already approved"
                )));
            }
            node.state.membership = Membership::Approved;
            tx.put_node(&node.state)?;
        }
        "reject" => {
            if node.state.membership == Membership::Rejected {
                return Err(OrchestratorError::Conflict(format!(
                    "node {node_id} is already rejected"
                )));
            }
            node.state.membership = Membership::Rejected;
            tx.put_node(&node.state)?;
            st.links.remove_if(node_id, None);
        }
        "delete" => {
            st.nodes.remove(node_id);
            st.links.remove_if(node_id, None);
            tx.delete_node(node_id)?;
        }
        other => {
            return Err(OrchestratorError::BadRequest(format!(
                "unknown node action {other:?}; use approve, reject or delete"
            )));
        }
    }
    evaluate_active(tx, st, out)
}

/// Sets and removes a node's control-plane labels, then re-evaluates every active job, so that
/// daemon jobs start on a node that now matches and stop where it no longer does. A removed
/// key disappears at once; the node's own value for it, if any, returns when it reconnects.
fn node_labels(
    tx: &Tx<'_>,
    st: &mut EngineState,
    out: &mut Outgoing,
    node_id: &str,
    set: BTreeMap<String, String>,
    remove: Vec<String>,
) -> Result<(), OrchestratorError> {
    let Some(node) = st.nodes.get_mut(node_id) else {
        return Err(OrchestratorError::NotFound(format!(
            "node {node_id} not found; `shoal node list` shows known nodes"
        )));
    };
    if let Some(k) = set.keys().chain(&remove).find(|k| k.trim().is_empty()) {
        return Err(OrchestratorError::BadRequest(format!(
            "node {node_id}: label key {k:?} is empty; use key=value to set and key- to remove"
        )));
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

#[cfg(test)]
mod tests {
    use super::*;

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
