//! Orchestrator settings.

use std::path::PathBuf;
use std::time::Duration;

use shoal_scheduler::SchedulerConfig;

/// How the orchestrator behaves.
#[derive(Debug, Clone)]
pub struct OrchestratorConfig {
    /// Where state lives (`<data_dir>/orchestrator/state.db`).
    pub data_dir: PathBuf,
    /// The id this orchestrator reports in job metadata.
    pub node_id: String,
    /// A node whose heartbeats stop for this long is marked disconnected. The default is three
    /// heartbeat intervals of an agent with default settings (5 s); a closed link is noticed at
    /// once.
    pub disconnect_timeout: Duration,
    /// A shared token every compute node may present (the `--token` shorthand); `None` with
    /// `require_join_token` off accepts every node (devstack only).
    pub join_token: Option<String>,
    /// New nodes must present a join token (`shoal node token create`) or the shared token;
    /// enrolled nodes their node key.
    pub require_join_token: bool,
    /// New nodes wait for `node approve` before they get work.
    pub require_approval: bool,
    /// Scheduler tunables.
    pub scheduler: SchedulerConfig,
}

impl OrchestratorConfig {
    /// Defaults for a data dir.
    pub fn new(data_dir: impl Into<PathBuf>) -> Self {
        OrchestratorConfig {
            data_dir: data_dir.into(),
            node_id: "orchestrator".into(),
            disconnect_timeout: Duration::from_secs(15),
            join_token: None,
            require_join_token: false,
            require_approval: false,
            scheduler: SchedulerConfig::default(),
        }
    }
}
