//! What every part of the agent reads about its node: settings, identity, engines, capacity,
//! the live log channels and the table of executions that have not ended.
//!
//! The context is made once at start and shared read-only (`Arc<NodeContext>`); the two
//! tables in it that change ([`LogHub`], [`Running`]) lock themselves. It holds no store and
//! no link: those are the ledger's.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Mutex, MutexGuard};

use shoal_executors::ExecutorRegistry;
use shoal_transport::PROTOCOL;
use shoal_types::node::{BuildVersionInfo, go_arch};
use shoal_types::{ComputeNodeInfo, NodeInfo, NodeType, Resources};
use tokio_util::sync::CancellationToken;

use crate::config::ComputeConfig;
use crate::logs::LogHub;

/// The node as the agent's parts see it.
pub(crate) struct NodeContext {
    pub cfg: ComputeConfig,
    pub node_id: String,
    /// The key this node enrols with and presents at every connect.
    pub node_key: String,
    pub executors: ExecutorRegistry,
    pub capacity: Resources,
    pub hub: LogHub,
    /// The one HTTP client for input downloads.
    pub http: reqwest::Client,
    pub running: Running,
}

impl NodeContext {
    /// Where an execution's inputs, logs and results go (made lazily by what writes there).
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

    /// Capacity not reserved by executions that have not ended.
    pub fn free(&self) -> Resources {
        self.capacity.saturating_sub(&self.running.used())
    }

    /// What this node tells the orchestrator about itself (its `Hello`).
    pub fn describe(&self) -> NodeInfo {
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
                available_capacity: self.free(),
                max_job_requirements: self.capacity,
                running_executions: self.running.count() as u32,
                unavailable_engines: self.executors.unavailable().clone(),
                engine_policies: self.executors.policies().clone(),
                ..Default::default()
            },
            version: BuildVersionInfo::current(),
        }
    }
}

/// Executions admitted and not yet ended: each one's cancellation token and the resources
/// reserved for it.
#[derive(Default)]
pub(crate) struct Running(Mutex<HashMap<String, (CancellationToken, Resources)>>);

impl Running {
    fn lock(&self) -> MutexGuard<'_, HashMap<String, (CancellationToken, Resources)>> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Reserves `resources` for an admitted execution, with a fresh cancellation token.
    pub fn reserve(&self, execution_id: &str, resources: Resources) {
        self.lock().insert(
            execution_id.to_string(),
            (CancellationToken::new(), resources),
        );
    }

    /// The execution's cancellation token; `None` once it has ended (or was never admitted).
    pub fn token(&self, execution_id: &str) -> Option<CancellationToken> {
        self.lock()
            .get(execution_id)
            .map(|(token, _)| token.clone())
    }

    /// Asks the execution to stop, if it has not ended.
    pub fn cancel(&self, execution_id: &str) {
        if let Some((token, _)) = self.lock().get(execution_id) {
            token.cancel();
        }
    }

    /// Asks every execution to stop (the agent shuts down).
    pub fn cancel_all(&self) {
        for (token, _) in self.lock().values() {
            token.cancel();
        }
    }

    /// Frees the execution's resources: it has ended and what it left is cleaned up.
    pub fn release(&self, execution_id: &str) {
        self.lock().remove(execution_id);
    }

    /// How many executions have not ended.
    pub fn count(&self) -> usize {
        self.lock().len()
    }

    /// The resources reserved, in all.
    pub fn used(&self) -> Resources {
        self.lock()
            .values()
            .fold(Resources::default(), |acc, (_, r)| acc.add(r))
    }
}
