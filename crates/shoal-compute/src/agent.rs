//! The agent: identity, ledger, admission and the table of running executions.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard};

use shoal_executors::ExecutorRegistry;
use shoal_store::{ComputeStore, LocalExecution, LocalState, StoreError};
use shoal_transport::{ExecutionReport, Frame, Message, PROTOCOL};
use shoal_types::node::{BuildVersionInfo, go_arch};
use shoal_types::{
    ComputeNodeInfo, ComputeStateType, Execution, NetworkType, NodeId, NodeInfo, NodeType,
    Resources,
};
use tokio::sync::mpsc::UnboundedSender;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::config::ComputeConfig;
use crate::logs::LogHub;

/// The store plus the current link session, under one lock so that replayed and new reports
/// reach the link in sequence order.
pub(crate) struct Ledger {
    pub store: ComputeStore,
    pub session: Option<UnboundedSender<Frame>>,
}

pub(crate) struct AgentInner {
    pub cfg: ComputeConfig,
    pub node_id: String,
    pub executors: ExecutorRegistry,
    pub capacity: Resources,
    pub hub: LogHub,
    /// The one HTTP client for input downloads.
    pub http: reqwest::Client,
    ledger: Mutex<Ledger>,
    /// Cancellation tokens and reserved resources of executions that have not ended.
    pub running: Mutex<HashMap<String, (CancellationToken, Resources)>>,
}

/// A running compute agent.
pub struct Agent {
    inner: Arc<AgentInner>,
    shutdown: CancellationToken,
    link: JoinHandle<()>,
}

/// Why an agent could not start.
#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    /// Its store could not be opened.
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl Agent {
    /// Opens the agent's store, settles executions interrupted by a previous crash, and starts
    /// dialling the orchestrator in the background.
    pub async fn start(
        cfg: ComputeConfig,
        executors: ExecutorRegistry,
    ) -> Result<Agent, AgentError> {
        let store = if cfg.in_memory_store {
            ComputeStore::open_in_memory()?
        } else {
            ComputeStore::open(&cfg.data_dir)?
        };
        let node_id = match (&cfg.node_id, store.meta("node_id")?) {
            (Some(id), _) => id.clone(),
            (None, Some(id)) => id,
            (None, None) => NodeId::generate().to_string(),
        };
        store.set_meta("node_id", &node_id)?;
        let capacity = cfg
            .capacity
            .unwrap_or_else(|| crate::capacity::measure(&cfg.data_dir));
        let inner = Arc::new(AgentInner {
            cfg,
            node_id,
            executors,
            capacity,
            hub: LogHub::default(),
            http: reqwest::Client::builder()
                .connect_timeout(std::time::Duration::from_secs(10))
                .build()
                .unwrap_or_default(),
            ledger: Mutex::new(Ledger {
                store,
                session: None,
            }),
            running: Mutex::new(HashMap::new()),
        });
        inner.settle_interrupted()?;
        let shutdown = CancellationToken::new();
        let link = tokio::spawn(crate::link::run(inner.clone(), shutdown.clone()));
        Ok(Agent {
            inner,
            shutdown,
            link,
        })
    }

    /// This node's id.
    pub fn node_id(&self) -> &str {
        &self.inner.node_id
    }

    /// What this node tells the orchestrator about itself.
    pub fn node_info(&self) -> NodeInfo {
        self.inner.node_info()
    }

    /// Stops the link and cancels running executions.
    pub async fn shutdown(self) {
        self.shutdown.cancel();
        for (token, _) in self
            .inner
            .running
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .values()
        {
            token.cancel();
        }
        let _ = self.link.await;
    }
}

impl AgentInner {
    pub fn ledger(&self) -> MutexGuard<'_, Ledger> {
        self.ledger.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn exec_dir(&self, execution_id: &str) -> PathBuf {
        self.cfg
            .data_dir
            .join("compute")
            .join("executions")
            .join(execution_id)
    }

    /// Where the `local` publisher keeps result archives.
    pub fn local_results_dir(&self) -> PathBuf {
        self.cfg
            .data_dir
            .join("compute")
            .join("results")
            .join("local-publisher")
    }

    pub fn node_info(&self) -> NodeInfo {
        let mut labels = self.cfg.labels.clone();
        labels
            .entry("os_type".into())
            .or_insert_with(|| std::env::consts::OS.into());
        labels
            .entry("os_arch".into())
            .or_insert_with(|| go_arch().into());
        if let Ok(h) = hostname::get() {
            labels
                .entry("hostname".into())
                .or_insert_with(|| h.to_string_lossy().into_owned());
        }
        labels
            .entry("name".into())
            .or_insert_with(|| self.node_id.clone());
        let used = self.used();
        NodeInfo {
            node_id: self.node_id.clone(),
            node_type: NodeType::Compute,
            labels,
            supported_protocols: vec![PROTOCOL.into()],
            compute_node_info: ComputeNodeInfo {
                execution_engines: self.executors.engines(),
                publishers: crate::publish::SUPPORTED
                    .iter()
                    .map(|s| s.to_string())
                    .collect(),
                allow_listed_local_paths: self
                    .cfg
                    .allowed_paths
                    .iter()
                    .map(|a| a.to_string())
                    .collect(),
                storage_sources: crate::inputs::SUPPORTED
                    .iter()
                    .map(|s| s.to_string())
                    .collect(),
                max_capacity: self.capacity,
                available_capacity: self.capacity.saturating_sub(&used),
                max_job_requirements: self.capacity,
                running_executions: self.running.lock().unwrap_or_else(|p| p.into_inner()).len()
                    as u32,
                unavailable_engines: self.executors.unavailable().clone(),
                ..Default::default()
            },
            version: BuildVersionInfo::current(),
        }
    }

    pub fn used(&self) -> Resources {
        self.running
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .values()
            .fold(Resources::default(), |acc, (_, r)| acc.add(r))
    }

    /// Stores an execution's new local state together with the report announcing it, then
    /// sends the report if the link is up (else it waits in the outbox).
    pub fn record(
        &self,
        local: &LocalExecution,
        report: ExecutionReport,
    ) -> Result<(), StoreError> {
        let mut ledger = self.ledger();
        let Ledger { store, session } = &mut *ledger;
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

    /// An execution interrupted by a crash or restart of this agent cannot be resumed: it is
    /// reported failed (retryable), so the orchestrator decides whether to run it again.
    fn settle_interrupted(&self) -> Result<(), StoreError> {
        let live = self.ledger().store.live_executions()?;
        for mut local in live {
            local.state = LocalState::Failed;
            let message = format!(
                "node {} restarted while the execution was running",
                self.node_id
            );
            let report = report(&local.execution, ComputeStateType::Failed, &message, true);
            self.record(&local, report)?;
        }
        Ok(())
    }

    /// Applies one durable message from the orchestrator, exactly once.
    pub fn on_message(self: &Arc<Self>, seq: u64, msg: Message) -> Result<(), StoreError> {
        let mut ledger = self.ledger();
        let Ledger { store, session } = &mut *ledger;
        let tx = store.begin()?;
        let fresh = tx.mark_applied(shoal_store::ORCHESTRATOR_PEER, seq)?;
        let mut sends = Vec::new();
        let mut start = None;
        if fresh {
            match msg {
                Message::Run { execution } => {
                    if tx.local_execution(execution.id.as_str())?.is_none() {
                        let (state, report) = self.admit(&execution);
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
                Message::Cancel { execution_id, .. } => {
                    if let Some((token, _)) = self
                        .running
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .get(&execution_id)
                    {
                        token.cancel();
                    }
                }
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
        drop(ledger);
        if let Some(local) = start {
            let inner = self.clone();
            tokio::spawn(async move { crate::runner::run(inner, local).await });
        }
        Ok(())
    }

    /// Decides whether this node takes an execution; reserves its resources if so.
    fn admit(&self, execution: &Execution) -> (LocalState, ExecutionReport) {
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
        let Some(executor) = self.executors.get(&engine.kind) else {
            return reject(format!(
                "node {} does not support {}, only {}",
                self.node_id,
                engine.kind,
                self.executors.engines().join(", ")
            ));
        };
        let network = job.task().network.kind;
        if self.cfg.reject_networked_jobs && network != NetworkType::None {
            return reject(format!(
                "node {} refuses networked jobs (reject networked jobs is set) and the task asks for network {network:?}; set the task's Network.Type to None (shoal docker run --network none) or run it on another node",
                self.node_id
            ));
        }
        if let Err(e) = executor.validate(engine) {
            let r = report(execution, ComputeStateType::Failed, &e.to_string(), false);
            return (LocalState::Failed, r);
        }
        // Data locality: a local input this node cannot serve sends the work elsewhere.
        for input in &job.task().input_sources {
            if (input.source.is("local") || input.source.is("localDirectory"))
                && let Err(e) = crate::inputs::local::stage(input, &self.cfg.allowed_paths)
            {
                return reject(format!("node {} lacks the data: {e}", self.node_id));
            }
        }
        let want = execution
            .allocated_resources
            .tasks
            .values()
            .fold(Resources::default(), |a, r| a.add(r));
        let free = self.capacity.saturating_sub(&self.used());
        if let Some((dim, need, have)) = want.shortfall(&free) {
            return reject(format!(
                "node {} is busy: job needs {need} {dim}, {have} free",
                self.node_id
            ));
        }
        self.hub.open(execution.id.as_str());
        self.running
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(execution.id.to_string(), (CancellationToken::new(), want));
        (
            LocalState::Accepted,
            report(execution, ComputeStateType::BidAccepted, "accepted", false),
        )
    }

    /// Acknowledged reports can be forgotten.
    pub fn on_ack(&self, seq: u64) -> Result<(), StoreError> {
        let mut ledger = self.ledger();
        let tx = ledger.store.begin()?;
        tx.outbox_ack(shoal_store::ORCHESTRATOR_PEER, seq)?;
        tx.commit()
    }
}

/// A report about an execution.
pub(crate) fn report(
    e: &Execution,
    state: ComputeStateType,
    message: &str,
    retryable: bool,
) -> ExecutionReport {
    ExecutionReport {
        execution_id: e.id.to_string(),
        job_id: e.job_id.to_string(),
        state,
        message: message.to_string(),
        retryable,
        run_output: None,
        published: None,
    }
}
