//! Executions: one attempt to run a job's task on one node.
//!
//! Bacalhau serialises execution states as integers (v1.5+ numbering), and its clients rely on
//! that, so [`ComputeStateType`] and [`DesiredStateType`] do too.
//!
//! ```text
//!  orchestrator view of ComputeState
//!
//!   New ──► BidAccepted ──► Running ──► Completed      (exit code in RunOutput, any value)
//!    │           │             │ └────► Failed         (engine error, OOM, timeout, node lost)
//!    │           │             └──────► Cancelled      (stopped by user or scheduler)
//!    └──► AskForBidRejected            (node refused it at admission; placed elsewhere)
//! ```

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::ids::{ExecutionId, JobId, NodeId};
use crate::job::Job;
use crate::resources::Resources;
use crate::time::UnixNanos;

macro_rules! int_enum {
    ($(#[$doc:meta])* $name:ident { $($(#[$vdoc:meta])* $variant:ident = $n:literal),* $(,)? }) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
        pub enum $name {
            #[default]
            $($(#[$vdoc])* $variant = $n),*
        }

        impl $name {
            /// The integer used on the wire.
            pub fn code(self) -> u8 {
                self as u8
            }

            /// The state for a wire integer.
            pub fn from_code(n: u64) -> Option<Self> {
                match n {
                    $($n => Some($name::$variant),)*
                    _ => None,
                }
            }

            /// The name shown in tables.
            pub fn as_str(self) -> &'static str {
                match self {
                    $($name::$variant => stringify!($variant),)*
                }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl Serialize for $name {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_u8(self.code())
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                // Accept the integer (Bacalhau's JSON), a numeric string (the Python
                // client's enums) or the name (YAML written by hand).
                let v = serde_json::Value::deserialize(d)?;
                let parsed = match &v {
                    serde_json::Value::Number(n) => n.as_u64().and_then(Self::from_code),
                    serde_json::Value::String(s) => s
                        .parse::<u64>()
                        .ok()
                        .and_then(Self::from_code)
                        .or_else(|| [$($name::$variant),*].into_iter().find(|x| x.as_str().eq_ignore_ascii_case(s))),
                    _ => None,
                };
                parsed.ok_or_else(|| serde::de::Error::custom(format!("invalid {} {v}", stringify!($name))))
            }
        }
    };
}

int_enum!(
    /// Where an execution is, as the compute node reports it.
    ComputeStateType {
        /// Not set.
        Undefined = 0,
        /// Created by the scheduler, not yet acknowledged by the node.
        New = 1,
        /// Offered to the node for a bid (unused: Shoal places directly).
        AskForBid = 2,
        /// The node accepted the offer (unused: Shoal places directly).
        AskForBidAccepted = 3,
        /// The node refused the execution at admission.
        AskForBidRejected = 4,
        /// The node accepted the execution and is preparing it.
        BidAccepted = 5,
        /// The task is running.
        Running = 6,
        /// Results are being published.
        Publishing = 7,
        /// The scheduler withdrew the execution before it started.
        BidRejected = 8,
        /// The task ran to completion (any exit code).
        Completed = 9,
        /// The task could not run or was killed by a limit.
        Failed = 10,
        /// Stopped on request.
        Cancelled = 11,
    }
);

impl ComputeStateType {
    /// Whether the execution will not change any more.
    pub fn is_terminal(self) -> bool {
        matches!(
            self,
            ComputeStateType::AskForBidRejected
                | ComputeStateType::BidRejected
                | ComputeStateType::Completed
                | ComputeStateType::Failed
                | ComputeStateType::Cancelled
        )
    }

    /// Whether the execution was thrown away without producing a result.
    pub fn is_discarded(self) -> bool {
        matches!(
            self,
            ComputeStateType::AskForBidRejected
                | ComputeStateType::BidRejected
                | ComputeStateType::Failed
                | ComputeStateType::Cancelled
        )
    }
}

int_enum!(
    /// What the orchestrator wants the execution to be.
    DesiredStateType {
        /// Waiting for approval.
        Pending = 0,
        /// Should run.
        Running = 1,
        /// Should stop (or has stopped).
        Stopped = 2,
    }
);

/// A state with an explanation.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ExecutionState<T> {
    /// The state.
    pub state_type: T,
    /// Why.
    #[serde(default)]
    pub message: String,
    /// Structured details; `Retryable` = `true` marks a failure that may succeed elsewhere.
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub details: std::collections::BTreeMap<String, String>,
}

impl<T> ExecutionState<T> {
    /// A state with a message.
    pub fn new(state_type: T, message: impl Into<String>) -> Self {
        ExecutionState {
            state_type,
            message: message.into(),
            details: Default::default(),
        }
    }

    /// Whether the failure was marked as worth retrying on another node.
    pub fn is_retryable(&self) -> bool {
        self.details.get("Retryable").is_some_and(|v| v == "true")
    }
}

/// What a finished task produced, in Bacalhau's (oddly cased) JSON shape.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct RunOutput {
    /// Start of stdout (truncated, see `StdoutTruncated`).
    #[serde(rename = "Stdout", default)]
    pub stdout: String,
    /// Whether `stdout` was cut.
    #[serde(rename = "StdoutTruncated", default)]
    pub stdout_truncated: bool,
    /// Start of stderr.
    #[serde(rename = "stderr", default)]
    pub stderr: String,
    /// Whether `stderr` was cut.
    #[serde(rename = "StderrTruncated", default)]
    pub stderr_truncated: bool,
    /// The task's exit code.
    #[serde(rename = "ExitCode", default)]
    pub exit_code: i32,
    /// Set when the engine failed rather than the task.
    #[serde(rename = "ErrorMsg", default)]
    pub error_msg: String,
    /// The engine's structured answer, in full (Shoal extension; the `query` engine's rows).
    #[serde(rename = "Answer", default, skip_serializing_if = "Option::is_none")]
    pub answer: Option<Box<crate::Answer>>,
}

/// One attempt to run a job's task on one node.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Execution {
    /// `e-<uuid>`.
    #[serde(rename = "ID")]
    pub id: ExecutionId,
    /// Namespace of the job.
    #[serde(default)]
    pub namespace: String,
    /// The evaluation that created it (kept for compatibility).
    #[serde(rename = "EvalID", default)]
    pub eval_id: String,
    /// Unused, kept for compatibility.
    #[serde(default)]
    pub name: String,
    /// The node it runs on.
    #[serde(rename = "NodeID")]
    pub node_id: NodeId,
    /// The job.
    #[serde(rename = "JobID")]
    pub job_id: JobId,
    /// The full job, sent to the node; omitted in API listings.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub job: Option<Box<Job>>,
    /// The job version it runs.
    #[serde(default)]
    pub job_version: u64,
    /// Resources reserved on the node.
    #[serde(default)]
    pub allocated_resources: AllocatedResources,
    /// What the orchestrator wants.
    pub desired_state: ExecutionState<DesiredStateType>,
    /// What the node reports.
    pub compute_state: ExecutionState<ComputeStateType>,
    /// Where the results were published.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub published_result: Option<crate::job::SpecConfig>,
    /// The task's output.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub run_output: Option<RunOutput>,
    /// The execution this one replaces.
    #[serde(default)]
    pub previous_execution: String,
    /// The execution that replaced this one.
    #[serde(default)]
    pub next_execution: String,
    /// Unused, kept for compatibility.
    #[serde(rename = "FollowupEvalID", default)]
    pub followup_eval_id: String,
    /// Partition index for batch jobs.
    #[serde(default)]
    pub partition_index: u32,
    /// Incremented on every change.
    #[serde(default)]
    pub revision: u64,
    /// Creation time.
    #[serde(default)]
    pub create_time: UnixNanos,
    /// Last change.
    #[serde(default)]
    pub modify_time: UnixNanos,
}

/// Resources reserved for an execution, per task.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct AllocatedResources {
    /// Task name to resources.
    #[serde(default)]
    pub tasks: std::collections::BTreeMap<String, Resources>,
}

impl Execution {
    /// Whether the execution will not change any more.
    pub fn is_terminal(&self) -> bool {
        self.compute_state.state_type.is_terminal()
    }

    /// The exit code, when the task ran to completion.
    pub fn exit_code(&self) -> Option<i32> {
        match self.compute_state.state_type {
            ComputeStateType::Completed => self.run_output.as_ref().map(|o| o.exit_code),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn states_serialise_as_bacalhau_integers() {
        assert_eq!(
            serde_json::to_string(&ComputeStateType::Completed).unwrap(),
            "9"
        );
        assert_eq!(
            serde_json::to_string(&DesiredStateType::Stopped).unwrap(),
            "2"
        );
    }

    #[test]
    fn states_read_integers_numeric_strings_and_names() {
        let from = |s: &str| serde_json::from_str::<ComputeStateType>(s).unwrap();
        assert_eq!(from("10"), ComputeStateType::Failed);
        assert_eq!(from("\"10\""), ComputeStateType::Failed);
        assert_eq!(from("\"cancelled\""), ComputeStateType::Cancelled);
        assert!(serde_json::from_str::<ComputeStateType>("42").is_err());
    }
}
