//! Shoal's domain model.
//!
//! Everything here is plain data plus pure functions: typed ids, the job language (Bacalhau's
//! `Job`/`Task`/`SpecConfig` JSON shapes), executions, history events and node state. The wire
//! format is Bacalhau's v1 JSON so that its job files, REST API users and SDK work unchanged;
//! inside Shoal the same structs are used, with typed helpers for the parts that need meaning
//! (resources, selectors, engine kinds).

pub mod answer;
pub mod enrolment;
pub mod execution;
pub mod fleet;
pub mod history;
pub mod ids;
pub mod job;
pub mod node;
pub mod resources;
pub mod rollout;
pub mod schedule;
pub mod selector;
pub mod spec;
pub mod template;
pub mod time;

pub use answer::Answer;
pub use execution::{ComputeStateType, DesiredStateType, Execution, ExecutionState, RunOutput};
pub use fleet::HostSample;
pub use history::{Event, HistoryType, JobHistory};
pub use ids::{ExecutionId, IdError, JobId, NodeId};
pub use job::{
    InputSource, Job, JobState, JobStateType, JobType, LabelSelectorRequirement, Network,
    NetworkType, Port, ResourcesConfig, ResultPath, SpecConfig, Task, Timeouts,
};
pub use node::{
    ComputeNodeInfo, ConnectionState, ConnectionStatus, Membership, NodeInfo, NodeState, NodeType,
};
pub use resources::Resources;
pub use rollout::{Amount, Health, HealthType, OnFailure, Rollout, RolloutMode, UnreachablePolicy};
pub use schedule::{CatchUp, Overlap, Schedule};
