//! The job language, in Bacalhau v1's JSON shape (`reference/bacalhau.md` §2).
//!
//! These structs serialise with Bacalhau's PascalCase keys. Reading a user's file goes through
//! [`crate::spec`], which matches keys case-insensitively and reports unknown keys with their
//! path before the values land here.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::ids::JobId;
use crate::rollout::Rollout;
use crate::schedule::Schedule;
use crate::time::UnixNanos;

/// The four kinds of job and their scheduling semantics (DESIGN.md §3).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum JobType {
    /// `Count` partitions, each run to completion once.
    Batch,
    /// Once on every node matching at submission.
    Ops,
    /// One long-running execution on every matching node, including later ones.
    Daemon,
    /// `Count` long-running executions on the best nodes.
    Service,
}

impl JobType {
    /// Every job type, in the order the docs list them.
    pub const ALL: [JobType; 4] = [
        JobType::Batch,
        JobType::Ops,
        JobType::Daemon,
        JobType::Service,
    ];

    /// The lowercase wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            JobType::Batch => "batch",
            JobType::Ops => "ops",
            JobType::Daemon => "daemon",
            JobType::Service => "service",
        }
    }

    /// Parses a wire name, case-insensitively.
    pub fn parse(s: &str) -> Option<JobType> {
        JobType::ALL
            .into_iter()
            .find(|t| t.as_str().eq_ignore_ascii_case(s))
    }

    /// Whether executions of this type run until stopped rather than to completion.
    pub fn is_long_running(self) -> bool {
        matches!(self, JobType::Daemon | JobType::Service)
    }
}

impl fmt::Display for JobType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A job: what to run, where, and how many times.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Job {
    /// Server-generated id (`j-<uuid>`).
    #[serde(rename = "ID", default)]
    pub id: String,
    /// Human name; defaults to the id.
    #[serde(default)]
    pub name: String,
    /// Namespace; defaults to `default`.
    #[serde(default)]
    pub namespace: String,
    /// `batch`, `ops`, `daemon` or `service`.
    #[serde(rename = "Type")]
    pub job_type: JobType,
    /// Higher runs earlier.
    #[serde(default)]
    pub priority: i64,
    /// Partitions (batch) or replicas (service); 0 for ops and daemon.
    #[serde(default)]
    pub count: u32,
    /// Node label selector, all requirements must hold.
    #[serde(default)]
    pub constraints: Vec<LabelSelectorRequirement>,
    /// Free-form metadata.
    #[serde(default)]
    pub meta: BTreeMap<String, String>,
    /// Job labels, for filtering job lists.
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    /// Exactly one task is supported, as in Bacalhau.
    #[serde(default)]
    pub tasks: Vec<Task>,
    /// How an ops, daemon or service job reaches its nodes a few at a time; `None` means all
    /// at once. A Shoal extension that Bacalhau ignores.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rollout: Option<Rollout>,
    /// Run again on a cron schedule (batch and ops jobs): the job becomes a parent that makes a
    /// child job per tick. A Shoal extension that Bacalhau ignores.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schedule: Option<Schedule>,
    /// Current state.
    #[serde(default)]
    pub state: JobState,
    /// Spec version: 1 on create, incremented on update.
    #[serde(default)]
    pub version: u64,
    /// Incremented on every change.
    #[serde(default)]
    pub revision: u64,
    /// Creation time, Unix nanoseconds.
    #[serde(default)]
    pub create_time: UnixNanos,
    /// Last modification, Unix nanoseconds.
    #[serde(default)]
    pub modify_time: UnixNanos,
}

impl Job {
    /// The job's id as a typed id.
    pub fn job_id(&self) -> JobId {
        JobId::new(self.id.clone())
    }

    /// The job's single task. Validation guarantees there is one.
    pub fn task(&self) -> &Task {
        &self.tasks[0]
    }
}

/// One unit of work inside a job.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Task {
    /// Task name (`main` by default).
    #[serde(default)]
    pub name: String,
    /// The engine and its parameters.
    pub engine: SpecConfig,
    /// Where results go; optional.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub publisher: Option<SpecConfig>,
    /// Environment variables for the task.
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    /// Free-form metadata.
    #[serde(default)]
    pub meta: BTreeMap<String, String>,
    /// Data staged into the task before it runs.
    #[serde(default)]
    pub input_sources: Vec<InputSource>,
    /// Paths collected as results after the run.
    #[serde(default)]
    pub result_paths: Vec<ResultPath>,
    /// Requested resources, as the user wrote them (`500m`, `1Gb`).
    #[serde(default)]
    pub resources: ResourcesConfig,
    /// Network access.
    #[serde(default)]
    pub network: Network,
    /// Time limits, in seconds.
    #[serde(default)]
    pub timeouts: Timeouts,
}

/// Bacalhau's `{Type, Params}` plugin reference.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct SpecConfig {
    /// Plugin type, compared case-insensitively.
    #[serde(rename = "Type", default)]
    pub kind: String,
    /// Plugin parameters.
    #[serde(default)]
    pub params: Map<String, Value>,
}

impl SpecConfig {
    /// A spec config with no parameters.
    pub fn of(kind: &str) -> Self {
        SpecConfig {
            kind: kind.to_string(),
            params: Map::new(),
        }
    }

    /// Whether this is of the given type, ignoring case.
    pub fn is(&self, kind: &str) -> bool {
        self.kind.eq_ignore_ascii_case(kind)
    }

    /// Reads a parameter by name, ignoring the case of the key.
    pub fn param(&self, name: &str) -> Option<&Value> {
        self.params.get(name).or_else(|| {
            self.params
                .iter()
                .find(|(k, _)| k.eq_ignore_ascii_case(name))
                .map(|(_, v)| v)
        })
    }

    /// Reads a string parameter by name, ignoring the case of the key.
    pub fn str_param(&self, name: &str) -> Option<&str> {
        self.param(name).and_then(Value::as_str)
    }
}

/// An input staged before the task runs.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct InputSource {
    /// Where the data comes from.
    pub source: SpecConfig,
    /// Optional name for the input.
    #[serde(default)]
    pub alias: String,
    /// Path inside the task where the data appears.
    #[serde(default)]
    pub target: String,
}

/// A path whose contents become part of the results.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ResultPath {
    /// Name of the result folder.
    pub name: String,
    /// Absolute path inside the task.
    pub path: String,
}

/// Requested resources as strings, exactly as written in the spec.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ResourcesConfig {
    /// CPU in Kubernetes form (`500m`, `2`, `0.5`).
    #[serde(rename = "CPU", default, skip_serializing_if = "String::is_empty")]
    pub cpu: String,
    /// Memory (`512Mb`, `1Gi`).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub memory: String,
    /// Disk (`1GB`).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub disk: String,
    /// Number of GPUs.
    #[serde(rename = "GPU", default, skip_serializing_if = "String::is_empty")]
    pub gpu: String,
}

/// Network access kinds, as Bacalhau names them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub enum NetworkType {
    /// Engine default.
    #[default]
    Default,
    /// No network.
    None,
    /// Host network.
    Host,
    /// Full outbound access.
    Full,
    /// HTTP to listed domains.
    #[serde(rename = "HTTP")]
    Http,
    /// Bridge network with ports.
    Bridge,
}

impl NetworkType {
    /// Parses a network type name, case-insensitively.
    pub fn parse(s: &str) -> Option<NetworkType> {
        let all = [
            ("default", NetworkType::Default),
            ("", NetworkType::Default),
            ("none", NetworkType::None),
            ("host", NetworkType::Host),
            ("full", NetworkType::Full),
            ("http", NetworkType::Http),
            ("bridge", NetworkType::Bridge),
        ];
        all.into_iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(s))
            .map(|(_, t)| t)
    }

    /// Whether a job with this network type reaches outside its node.
    pub fn is_networked(self) -> bool {
        !matches!(self, NetworkType::None | NetworkType::Default)
    }
}

/// Network configuration of a task.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Network {
    /// The network kind.
    #[serde(rename = "Type", default)]
    pub kind: NetworkType,
    /// Allowed domains (HTTP only).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub domains: Vec<String>,
    /// Published ports (Host/Full/Bridge).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ports: Vec<Port>,
}

/// A published port.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Port {
    /// Env-var-safe name.
    pub name: String,
    /// Host port; 0 allocates one.
    #[serde(rename = "Static", default)]
    pub static_port: u16,
    /// Container port.
    #[serde(default)]
    pub target: u16,
    /// Host IP to bind.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub host_network: String,
}

/// Time limits, in whole seconds; 0 means none.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Timeouts {
    /// Limit on one execution's run time.
    #[serde(default)]
    pub execution_timeout: u64,
    /// How long the job may wait for a node.
    #[serde(default)]
    pub queue_timeout: u64,
    /// Limit on the whole job.
    #[serde(default)]
    pub total_timeout: u64,
}

/// A Kubernetes-style label selector requirement.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct LabelSelectorRequirement {
    /// Label key.
    pub key: String,
    /// `in`, `notin`, `exists`, `!`, `=`, `==`, `!=`, `gt`, `lt`.
    pub operator: String,
    /// Operand values.
    #[serde(default)]
    pub values: Vec<String>,
}

/// Job lifecycle states; serialised as names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub enum JobStateType {
    /// Not set.
    #[default]
    Undefined,
    /// Accepted, not yet placed.
    Pending,
    /// Waiting for capacity.
    Queued,
    /// At least one execution placed.
    Running,
    /// Finished successfully.
    Completed,
    /// Finished with a failure.
    Failed,
    /// Stopped by a user.
    Stopped,
}

impl JobStateType {
    /// Whether no further change will happen.
    pub fn is_terminal(self) -> bool {
        matches!(
            self,
            JobStateType::Completed | JobStateType::Failed | JobStateType::Stopped
        )
    }

    /// The name used on the wire and in tables.
    pub fn as_str(self) -> &'static str {
        match self {
            JobStateType::Undefined => "Undefined",
            JobStateType::Pending => "Pending",
            JobStateType::Queued => "Queued",
            JobStateType::Running => "Running",
            JobStateType::Completed => "Completed",
            JobStateType::Failed => "Failed",
            JobStateType::Stopped => "Stopped",
        }
    }
}

impl fmt::Display for JobStateType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A job's state with an explanation.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct JobState {
    /// The state.
    pub state_type: JobStateType,
    /// Why the job is in this state.
    #[serde(default)]
    pub message: String,
    /// Structured details (e.g. per-node placement reasons).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub details: BTreeMap<String, String>,
}

impl JobState {
    /// A state with a message and no details.
    pub fn new(state_type: JobStateType, message: impl Into<String>) -> Self {
        JobState {
            state_type,
            message: message.into(),
            details: BTreeMap::new(),
        }
    }
}
