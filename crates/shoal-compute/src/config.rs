//! Compute agent settings.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use shoal_types::Resources;

use crate::host_sample::HostRoots;

/// A host path jobs may mount, and whether they may write to it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AllowedPath {
    /// The path (a file or a folder; everything below a folder is allowed).
    pub path: PathBuf,
    /// Whether jobs may mount it read-write.
    pub read_write: bool,
}

impl AllowedPath {
    /// Parses `/path`, `/path:ro` or `/path:rw` (Bacalhau's `AllowListedLocalPaths` syntax).
    pub fn parse(s: &str) -> AllowedPath {
        match s.rsplit_once(':') {
            Some((p, "rw")) => AllowedPath {
                path: p.into(),
                read_write: true,
            },
            Some((p, "ro")) => AllowedPath {
                path: p.into(),
                read_write: false,
            },
            _ => AllowedPath {
                path: s.into(),
                read_write: false,
            },
        }
    }
}

impl std::fmt::Display for AllowedPath {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mode = if self.read_write { "rw" } else { "ro" };
        write!(f, "{}:{mode}", self.path.display())
    }
}

/// Limits and retries of the node's transfers (input downloads, S3 reads and uploads).
#[derive(Debug, Clone)]
pub struct TransferPolicy {
    /// Largest input the node downloads, in bytes (per input).
    pub max_bytes: u64,
    /// Attempts per transfer, counting the first; only transient errors are retried.
    pub attempts: u32,
    /// Delay before the first retry; it doubles after each one.
    pub backoff: Duration,
    /// Time limit of one attempt.
    pub timeout: Duration,
}

impl Default for TransferPolicy {
    fn default() -> Self {
        TransferPolicy {
            max_bytes: 64 << 30,
            attempts: 4,
            backoff: Duration::from_millis(500),
            timeout: Duration::from_secs(300),
        }
    }
}

/// How a compute agent behaves.
#[derive(Debug, Clone)]
pub struct ComputeConfig {
    /// Where the agent keeps its state, logs and results.
    pub data_dir: PathBuf,
    /// The orchestrator to dial (`ws://host:port` or `http://host:port`).
    pub orchestrator: String,
    /// Join token, if the orchestrator requires one.
    pub token: Option<String>,
    /// Whom to trust when dialling a `wss://` orchestrator ([`crate::trust`]); `None` trusts
    /// the system's roots.
    pub tls: Option<std::sync::Arc<rustls::ClientConfig>>,
    /// Node id; when `None`, one is generated on first start and kept in the data dir.
    pub node_id: Option<String>,
    /// Operator labels (automatic ones are added: `os_type`, `os_arch`, `hostname`).
    pub labels: BTreeMap<String, String>,
    /// Capacity offered to jobs; `None` measures the machine.
    pub capacity: Option<Resources>,
    /// How often to send heartbeats; each carries a host sample (fleet metrics).
    pub heartbeat_interval: Duration,
    /// How often a running execution's new log lines go to the orchestrator, which keeps
    /// them for `job logs` after the node is gone; zero ships only when it ends.
    pub log_ship_interval: Duration,
    /// Where the host sample reads `/proc` and `/sys` from.
    pub host_roots: HostRoots,
    /// Host paths jobs may mount with `local`/`localDirectory` inputs.
    pub allowed_paths: Vec<AllowedPath>,
    /// Refuse at admission every job whose task asks for a network (`Network.Type` other than
    /// `None`); the refusal names this setting.
    pub reject_networked_jobs: bool,
    /// Limit on an execution's `Preparing` phase (image pull), separate from its run-time limit.
    pub prepare_timeout: Duration,
    /// Keep the ledger in memory instead of `data_dir/compute/state.db`: for simulated fleets
    /// in tests and benchmarks only, since the agent then forgets everything when it stops.
    pub in_memory_store: bool,
    /// Download limits and retries.
    pub transfer: TransferPolicy,
    /// Where `secret:NAME` env values are read from (`NAME` is a file); `None` =
    /// `<data_dir>/compute/secrets`.
    pub secrets_dir: Option<PathBuf>,
    /// Host variables jobs may read with `env:NAME` (`*` matches any run of characters).
    pub env_allow: Vec<String>,
}

/// The default [`ComputeConfig::prepare_timeout`]: generous for large images on slow links.
pub const DEFAULT_PREPARE_TIMEOUT: Duration = Duration::from_secs(600);

impl ComputeConfig {
    /// Defaults for a data dir and an orchestrator address.
    pub fn new(data_dir: impl Into<PathBuf>, orchestrator: impl Into<String>) -> Self {
        ComputeConfig {
            data_dir: data_dir.into(),
            orchestrator: orchestrator.into(),
            token: None,
            tls: None,
            node_id: None,
            labels: BTreeMap::new(),
            capacity: None,
            heartbeat_interval: Duration::from_secs(5),
            log_ship_interval: Duration::from_secs(10),
            host_roots: HostRoots::default(),
            allowed_paths: Vec::new(),
            reject_networked_jobs: false,
            prepare_timeout: DEFAULT_PREPARE_TIMEOUT,
            in_memory_store: false,
            transfer: TransferPolicy::default(),
            secrets_dir: None,
            env_allow: Vec::new(),
        }
    }

    /// The folder `secret:NAME` env values are read from.
    pub fn secrets_dir(&self) -> PathBuf {
        self.secrets_dir
            .clone()
            .unwrap_or_else(|| self.data_dir.join("compute").join("secrets"))
    }
}
