//! Job history: the ordered, per-job record of what happened and why.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// Whether an entry is about the job or one of its executions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum HistoryType {
    /// About the job as a whole.
    JobLevel,
    /// About one execution.
    ExecutionLevel,
}

/// Something that happened, with a topic and structured details.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Event {
    /// Human-readable message.
    pub message: String,
    /// Topic, e.g. `Submission`, `Scheduling`, `Execution`.
    #[serde(default)]
    pub topic: String,
    /// RFC 3339 time.
    #[serde(default)]
    pub timestamp: String,
    /// Well-known keys: `IsError`, `Hint`, `Retryable`, `FailsExecution`, `NewState`, `NodeID`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub details: BTreeMap<String, String>,
}

impl Event {
    /// An event with a topic and message, stamped with `timestamp`.
    pub fn new(topic: &str, message: impl Into<String>, timestamp: String) -> Self {
        Event {
            message: message.into(),
            topic: topic.to_string(),
            timestamp,
            details: BTreeMap::new(),
        }
    }

    /// Adds a detail.
    pub fn with(mut self, key: &str, value: impl Into<String>) -> Self {
        self.details.insert(key.to_string(), value.into());
        self
    }

    /// Whether the event reports an error.
    pub fn is_error(&self) -> bool {
        self.details.get("IsError").is_some_and(|v| v == "true")
    }
}

/// One history entry.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct JobHistory {
    /// Per-job monotonic sequence number.
    pub seq_num: u64,
    /// Job or execution level.
    #[serde(rename = "Type")]
    pub kind: HistoryType,
    /// The job.
    #[serde(rename = "JobID")]
    pub job_id: String,
    /// The job version at the time.
    #[serde(default)]
    pub job_version: u64,
    /// The execution, for execution-level entries.
    #[serde(
        rename = "ExecutionID",
        default,
        skip_serializing_if = "String::is_empty"
    )]
    pub execution_id: String,
    /// What happened.
    pub event: Event,
    /// RFC 3339 time.
    pub time: String,
}
