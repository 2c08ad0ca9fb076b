//! The agent: opens its ledger, settles what a previous run left, starts the link, and stops.

use std::sync::Arc;

use shoal_executors::ExecutorRegistry;
use shoal_store::{ComputeStore, StoreError};
use shoal_transport::Dialer;
use shoal_types::{ComputeStateType, NodeId, NodeInfo};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::config::ComputeConfig;
use crate::ledger::Ledger;
use crate::lifecycle::{self, Event, report};
use crate::logs::LogHub;
use crate::node::{NodeContext, Running};
use crate::websocket::WebSocketDialer;

/// A running compute agent.
pub struct Agent {
    node: Arc<NodeContext>,
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
        let dialer = WebSocketDialer::new(&cfg.orchestrator, cfg.tls.clone());
        Agent::start_with(cfg, executors, Arc::new(dialer)).await
    }

    /// [`Agent::start`] over another carrier than WebSocket: `dialer` opens each link to the
    /// orchestrator (an in-memory pair in tests and simulations).
    pub async fn start_with(
        cfg: ComputeConfig,
        executors: ExecutorRegistry,
        dialer: Arc<dyn Dialer>,
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
        // The node's own key: generated once, presented at every connect (see
        // `shoal_types::enrolment`).
        let node_key = match store.meta("node_key")? {
            Some(key) => key,
            None => {
                let key = shoal_types::enrolment::random_secret();
                store.set_meta("node_key", &key)?;
                key
            }
        };
        let capacity = cfg
            .capacity
            .unwrap_or_else(|| crate::capacity::measure(&cfg.data_dir));
        let node = Arc::new(NodeContext {
            cfg,
            node_id,
            node_key,
            executors,
            capacity,
            hub: LogHub::default(),
            http: reqwest::Client::builder()
                .connect_timeout(std::time::Duration::from_secs(10))
                .build()
                .unwrap_or_default(),
            running: Running::default(),
        });
        let ledger = Arc::new(Ledger::new(store));
        settle_interrupted(&node, &ledger)?;
        let shutdown = CancellationToken::new();
        let link = tokio::spawn(crate::link::run(
            node.clone(),
            ledger,
            dialer,
            shutdown.clone(),
        ));
        Ok(Agent {
            node,
            shutdown,
            link,
        })
    }

    /// This node's id.
    pub fn node_id(&self) -> &str {
        &self.node.node_id
    }

    /// What this node tells the orchestrator about itself.
    pub fn node_info(&self) -> NodeInfo {
        self.node.describe()
    }

    /// Stops the link and cancels running executions.
    pub async fn shutdown(self) {
        self.shutdown.cancel();
        self.node.running.cancel_all();
        let _ = self.link.await;
    }
}

/// An execution interrupted by a crash or restart of this agent cannot be resumed: it is
/// reported failed (retryable), so the orchestrator decides whether to run it again.
fn settle_interrupted(node: &NodeContext, ledger: &Ledger) -> Result<(), StoreError> {
    let live = ledger.lock().store.live_executions()?;
    for mut local in live {
        lifecycle::advance(&mut local, Event::Interrupted);
        let message = format!(
            "node {} restarted while the execution was running",
            node.node_id
        );
        let report = report(&local.execution, ComputeStateType::Failed, &message, true);
        ledger.record(&local, report)?;
    }
    Ok(())
}
