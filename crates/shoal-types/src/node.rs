//! Nodes: what a compute node says about itself and what the orchestrator knows of it.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};

use crate::resources::Resources;

/// Orchestrator or compute.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub enum NodeType {
    /// An orchestrator (Bacalhau calls it requester).
    Requester,
    /// A compute node.
    #[default]
    Compute,
}

/// Whether a node may receive work.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum Membership {
    /// Waiting for an operator's approval.
    Pending,
    /// May receive work.
    #[default]
    Approved,
    /// Refused by an operator.
    Rejected,
}

impl fmt::Display for Membership {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Membership::Pending => "PENDING",
            Membership::Approved => "APPROVED",
            Membership::Rejected => "REJECTED",
        })
    }
}

/// Whether the node's link is up.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum ConnectionStatus {
    /// Link up, heartbeats arriving.
    Connected,
    /// Link down or heartbeats missing.
    #[default]
    Disconnected,
}

impl fmt::Display for ConnectionStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ConnectionStatus::Connected => "CONNECTED",
            ConnectionStatus::Disconnected => "DISCONNECTED",
        })
    }
}

/// Compute-specific node information.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ComputeNodeInfo {
    /// Engines the node can run (`wasm`, `docker`, ...).
    #[serde(default)]
    pub execution_engines: Vec<String>,
    /// Publishers the node supports.
    #[serde(default)]
    pub publishers: Vec<String>,
    /// Input source types the node supports.
    #[serde(default)]
    pub storage_sources: Vec<String>,
    /// Total capacity offered to jobs.
    #[serde(default)]
    pub max_capacity: Resources,
    /// Capacity used by queued executions.
    #[serde(rename = "QueueCapacity", default)]
    pub queue_used_capacity: Resources,
    /// Capacity currently free.
    #[serde(default)]
    pub available_capacity: Resources,
    /// Largest job the node accepts.
    #[serde(default)]
    pub max_job_requirements: Resources,
    /// Executions running now.
    #[serde(default)]
    pub running_executions: u32,
    /// Executions waiting for capacity.
    #[serde(default)]
    pub enqueued_executions: u32,
    /// Why engines the node knows of are unavailable (engine → reason).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub unavailable_engines: BTreeMap<String, String>,
    /// What the node's policy lets engines do, in a few words (engine → `disabled`,
    /// `allowlist 3 rules`): a Shoal extension, so that `node describe` answers "may I run
    /// host commands here" before anyone tries.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub engine_policies: BTreeMap<String, String>,
    /// Host paths the node lets jobs mount with `local` inputs (`/path:ro` or `/path:rw`), so
    /// that jobs reading local data are placed only where that data may be read.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub allow_listed_local_paths: Vec<String>,
    /// Advertised address (unused: nodes dial out).
    #[serde(rename = "address", default)]
    pub address: String,
}

/// Build information, in Bacalhau's shape.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct BuildVersionInfo {
    /// Major version.
    pub major: String,
    /// Minor version.
    pub minor: String,
    /// Full version (`v0.1.0`).
    pub git_version: String,
    /// Commit, when known.
    pub git_commit: String,
    /// Build date, when known.
    pub build_date: String,
    /// Operating system.
    #[serde(rename = "GOOS")]
    pub goos: String,
    /// Architecture.
    #[serde(rename = "GOARCH")]
    pub goarch: String,
}

impl BuildVersionInfo {
    /// The version of this build of Shoal.
    pub fn current() -> Self {
        let version = env!("CARGO_PKG_VERSION");
        let mut parts = version.split('.');
        BuildVersionInfo {
            major: parts.next().unwrap_or("0").to_string(),
            minor: parts.next().unwrap_or("0").to_string(),
            git_version: format!("v{version}"),
            git_commit: String::new(),
            build_date: String::new(),
            goos: std::env::consts::OS.to_string(),
            goarch: go_arch().to_string(),
        }
    }
}

/// The architecture name as Go (and so Bacalhau's `os_arch` label) spells it.
pub fn go_arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        other => other,
    }
}

/// What a node says about itself.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct NodeInfo {
    /// The node's id.
    #[serde(rename = "NodeID")]
    pub node_id: String,
    /// Orchestrator or compute.
    #[serde(default)]
    pub node_type: NodeType,
    /// Labels used by job constraints.
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    /// Protocols spoken (`shoal/v1`).
    #[serde(default)]
    pub supported_protocols: Vec<String>,
    /// Compute details.
    #[serde(default)]
    pub compute_node_info: ComputeNodeInfo,
    /// Build version.
    #[serde(rename = "BacalhauVersion", default)]
    pub version: BuildVersionInfo,
}

/// The link's state as the orchestrator sees it.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ConnectionState {
    /// Connected or not.
    pub status: ConnectionStatus,
    /// Last heartbeat, RFC 3339.
    #[serde(default)]
    pub last_heartbeat: String,
    /// Last message sequence applied from the node.
    #[serde(default)]
    pub last_compute_seq_num: u64,
    /// Last message sequence the node applied from the orchestrator.
    #[serde(default)]
    pub last_orchestrator_seq_num: u64,
    /// When the current connection began, RFC 3339.
    #[serde(default)]
    pub connected_since: String,
    /// When the node was last lost, RFC 3339.
    #[serde(default)]
    pub disconnected_since: String,
    /// Why the last connection ended.
    #[serde(default)]
    pub last_error: String,
}

/// Everything the orchestrator knows about a node.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct NodeState {
    /// What the node said about itself.
    pub info: NodeInfo,
    /// Approval state.
    pub membership: Membership,
    /// Connection status (duplicated from `ConnectionState.Status` as Bacalhau does).
    pub connection: ConnectionStatus,
    /// Link details.
    #[serde(default)]
    pub connection_state: ConnectionState,
    /// Labels set from the control plane (`shoal node label`), kept across reconnects and laid
    /// over the labels the node presents; already included in `info.labels`. A Shoal extension.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub operator_labels: BTreeMap<String, String>,
    /// An operator cordoned the node (`shoal node cordon`): it gets no new work, and what runs
    /// there keeps running. A Shoal extension.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub cordoned: bool,
    /// An operator drained the node (`shoal node drain`): cordoned, and its batch and service
    /// work is placed elsewhere; daemon and ops work stays. Cleared by `node uncordon`.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub drained: bool,
}

impl NodeState {
    /// Whether the scheduler may place work here.
    pub fn is_schedulable(&self) -> bool {
        self.info.node_type == NodeType::Compute
            && self.membership == Membership::Approved
            && self.connection == ConnectionStatus::Connected
            && !self.cordoned
    }
}
