//! What the engine can be asked to do, and the answers it gives: types only.
//!
//! The handle (`handle.rs`) and the link tasks (`link.rs`) build [`Command`]s; the engine
//! (`engine/`) consumes them. Both sides meet here, so neither has to
//! import the other.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use shoal_transport::Message;
use shoal_types::answer::QueryRequest;
use shoal_types::enrolment::{JoinTokenRequest, NewJoinToken};
use shoal_types::rollout::RolloutState;
use shoal_types::{Execution, Job, JobHistory, JobState, NodeInfo};
use tokio::sync::{Notify, oneshot};

use crate::error::{OrchestratorError, Refusal};
use crate::nodes::{Session, Usage};

/// Where the engine sends a command's answer.
pub(crate) type Reply<T> = oneshot::Sender<Result<T, OrchestratorError>>;

/// What the engine can be asked to do.
pub(crate) enum Command {
    Submit {
        job: Box<Job>,
        options: SubmitOptions,
        reply: Reply<SubmitOutcome>,
    },
    Stop {
        job_id: String,
        reason: String,
        reply: Reply<()>,
    },
    Promote {
        job_id: String,
        reply: Reply<()>,
    },
    Connect {
        info: Box<NodeInfo>,
        applied_seq: u64,
        credentials: NodeCredentials,
        session: Session,
        reply: oneshot::Sender<Result<(), Refusal>>,
    },
    Inbound {
        node_id: String,
        seq: u64,
        msg: Message,
    },
    Ack {
        node_id: String,
        seq: u64,
    },
    Heartbeat {
        node_id: String,
    },
    Disconnected {
        node_id: String,
        session_id: u64,
    },
    NodeAction {
        node_id: String,
        action: String,
        reply: Reply<()>,
    },
    NodeLabels {
        node_id: String,
        set: BTreeMap<String, String>,
        remove: Vec<String>,
        reply: Reply<()>,
    },
    /// Sends a live fleet query to the nodes it reaches (see `query/`).
    AskFleet {
        query_id: String,
        job: Box<Job>,
        request: Box<QueryRequest>,
        reply: Reply<Arc<Notify>>,
    },
    /// Runs a scheduled job once now, outside its schedule; answers the child's id.
    RunNow {
        job_id: String,
        reply: Reply<String>,
    },
    /// Creates a join token.
    CreateJoinToken {
        request: JoinTokenRequest,
        reply: Reply<NewJoinToken>,
    },
    /// Deletes a join token.
    DeleteJoinToken {
        id: String,
        reply: Reply<()>,
    },
    /// Live free capacity of every known node.
    Usage {
        reply: oneshot::Sender<HashMap<String, Usage>>,
    },
}

/// What a node presented in its `Hello` to be let in.
#[derive(Debug, Clone, Default)]
pub(crate) struct NodeCredentials {
    /// The shared token or a join token (`<id>.<secret>`).
    pub token: Option<String>,
    /// The node's own key, which binds its id once enrolled.
    pub node_key: Option<String>,
}

/// The result of a submission.
#[derive(Debug, Clone, PartialEq)]
pub struct SubmitOutcome {
    /// The job's id (an update keeps the id of the job it updates).
    pub job_id: String,
    /// Its state right after the first placement attempt (Failed when no node can run it).
    pub state: JobState,
    /// The job's version: 1 for a new job, the new version for an update.
    pub version: u64,
}

/// How a submission treats an existing job of the same name.
#[derive(Debug, Clone, Copy, Default)]
pub struct SubmitOptions {
    /// Submit a new version even when the spec is unchanged (a rerun).
    pub force: bool,
}

/// Why a node was not chosen for a job.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Placement {
    /// The node.
    #[serde(rename = "NodeID")]
    pub node_id: String,
    /// Why it was not chosen.
    pub reason: String,
    /// Whether the reason may go away by itself.
    pub transient: bool,
}

/// A job with everything `job describe` shows.
#[derive(Debug, Clone)]
pub struct JobDetails {
    /// The job.
    pub job: Job,
    /// Its executions.
    pub executions: Vec<Execution>,
    /// Its history.
    pub history: Vec<JobHistory>,
    /// Nodes not chosen and why.
    pub placement: Vec<Placement>,
    /// Where the rollout of the current version stands, for a job with a `Rollout`.
    pub rollout: Option<RolloutState>,
    /// For a scheduled job: its next and last tick and latest runs.
    pub schedule: Option<shoal_types::schedule::ScheduleStatus>,
}
