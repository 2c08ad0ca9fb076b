//! Placement, as a pure function.
//!
//! [`schedule`] looks at one job, all of its executions and a snapshot of the nodes at a given
//! time, and returns a [`Plan`]: executions to create, executions to change, the job's new state
//! and the events that explain why. It does no IO and reads no clock, so the orchestrator can
//! call it after every change and tests can replay any situation exactly.
//!
//! ```text
//!  schedule(input)
//!    ├─ settle: executions on lost nodes → Failed (retryable)      settle.rs
//!    ├─ job terminal? → stop every live execution, done             settle.rs
//!    ├─ executions of older job versions → Stopped                  settle.rs
//!    └─ one reconciler per job type                                 batch.rs ops.rs daemon.rs service.rs
//!         └─ placement: feasibility (ordered checks) → rank         placement.rs feasibility.rs rank.rs
//!
//!  jobs with a Rollout: targets, progress, the planner's decision     rolling.rs
//!    └─ rollout::plan(input): which nodes start next                  rollout.rs
//! ```
//!
//! Vocabulary: an execution is *live* while its compute state is not terminal (even when a stop
//! was requested: it still holds its node and its partition until the node confirms). A node is
//! *lost* when it is unknown or has been disconnected for at least
//! [`SchedulerConfig::node_lost_grace`]; before that its work is left alone, because a compute
//! node keeps running while the orchestrator cannot reach it.

mod batch;
pub mod cron;
mod daemon;
mod feasibility;
mod ops;
mod placement;
mod planner;
mod rank;
mod rolling;
pub mod rollout;
mod service;
mod settle;

pub use feasibility::reach;
pub use ops::{OpsSummary, UNREACHABLE_PREFIX, is_unreachable, ops_buckets};

use shoal_types::rollout::RolloutState;
use shoal_types::time::UnixNanos;
use shoal_types::{
    ComputeStateType, DesiredStateType, Event, Execution, ExecutionId, Job, JobState, JobType,
    NodeId, NodeState, Resources,
};

/// A node as the scheduler sees it.
#[derive(Debug, Clone)]
pub struct NodeView {
    /// What the orchestrator knows (labels, engines, membership, connection).
    pub state: NodeState,
    /// Capacity free for new work, after executions already placed there.
    pub free: Resources,
    /// When the node was last seen connected (Unix nanos); used for the node-lost grace.
    pub last_seen: UnixNanos,
}

impl NodeView {
    /// The node's id.
    pub fn id(&self) -> NodeId {
        NodeId::new(self.state.info.node_id.clone())
    }
}

/// Tunables that are not part of the job spec.
#[derive(Debug, Clone)]
pub struct SchedulerConfig {
    /// Attempts per batch partition before the job fails.
    pub max_attempts: u32,
    /// How long a node may be disconnected before its batch/service work is re-placed (nanos).
    pub node_lost_grace: i64,
    /// When a job waits for capacity, how long until the next look (nanos).
    pub queue_backoff: i64,
    /// Default resources for tasks that request none: Bacalhau's job defaults, 500m CPU and
    /// 512 MB memory. (A smaller CPU share costs every container start: runc's setup runs
    /// inside the throttled cgroup, and 0.1 CPU added 30 to 50 ms to a trivial container.)
    pub default_resources: Resources,
}

impl Default for SchedulerConfig {
    fn default() -> Self {
        SchedulerConfig {
            max_attempts: 3,
            node_lost_grace: 5 * 60 * 1_000_000_000,
            queue_backoff: 1_000_000_000,
            default_resources: Resources {
                cpu: 0.5,
                memory: 512 << 20,
                disk: 0,
                gpu: 0,
            },
        }
    }
}

/// Everything [`schedule`] looks at.
#[derive(Debug, Clone, Copy)]
pub struct SchedulerInput<'a> {
    /// The job (current version).
    pub job: &'a Job,
    /// Every execution of the job, any state.
    pub executions: &'a [Execution],
    /// Every known compute node.
    pub nodes: &'a [NodeView],
    /// The current time.
    pub now: UnixNanos,
    /// Tunables.
    pub config: &'a SchedulerConfig,
    /// Where the job's rollout stands, as last planned (`None` for a job without a `Rollout`
    /// or before its first plan). A state of an older job version is ignored.
    pub rollout: Option<&'a RolloutState>,
}

/// An execution to create, with desired state `Running`.
#[derive(Debug, Clone, PartialEq)]
pub struct NewExecution {
    /// Where to run it.
    pub node_id: NodeId,
    /// Batch partition (0 for other types).
    pub partition_index: u32,
    /// The failed execution it replaces, if any.
    pub previous_execution: Option<ExecutionId>,
    /// Resources reserved on the node.
    pub resources: Resources,
    /// The job version to run, when it is not the job's current one (a rollout that reverts
    /// puts the previous version back).
    pub job_version: Option<u64>,
    /// Set when the execution is created already ended, as Failed with this message: a rollout
    /// reached the node while it was away, and rollouts never wait for a node. Nothing is sent
    /// to the node.
    pub unreachable: Option<String>,
}

/// A change to an existing execution.
#[derive(Debug, Clone, PartialEq)]
pub struct ExecutionUpdate {
    /// Which execution.
    pub execution_id: ExecutionId,
    /// New desired state (usually `Stopped`).
    pub desired: DesiredStateType,
    /// New compute state, when the orchestrator settles it without the node (node lost,
    /// never started): e.g. `Failed` with a retryable mark, or `BidRejected`.
    pub compute: Option<ComputeStateType>,
    /// Why, in words.
    pub message: String,
    /// Whether a failure set here may be retried elsewhere.
    pub retryable: bool,
}

/// Why a node was not chosen.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeRejection {
    /// The node.
    pub node_id: NodeId,
    /// Why, with numbers where there are any ("job needs 2 GiB memory, 1.1 GiB free").
    pub reason: String,
    /// Whether the reason may go away by itself (busy, disconnected) rather than being a
    /// property of the node (labels, engines, total capacity).
    pub transient: bool,
}

/// The nodes a live fleet query reaches ([`reach`]).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Reach {
    /// Connected nodes that can answer: the query is sent to them.
    pub connected: Vec<NodeId>,
    /// Nodes that could answer but are disconnected, with why: they count as unreachable.
    pub away: Vec<NodeRejection>,
}

/// What the orchestrator should do for one job.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Plan {
    /// Executions to create.
    pub new_executions: Vec<NewExecution>,
    /// Executions to change.
    pub updates: Vec<ExecutionUpdate>,
    /// The job's new state, when it changes.
    pub job_state: Option<JobState>,
    /// Nodes that were not chosen and why (shown by `job describe`).
    pub rejections: Vec<NodeRejection>,
    /// History events that explain the plan (job-level).
    pub events: Vec<Event>,
    /// When to look at this job again even if nothing happens (queueing, deadlines).
    pub retry_at: Option<UnixNanos>,
    /// The rollout's new state, to store, when the job has a `Rollout` and something changed.
    pub rollout: Option<RolloutState>,
}

/// Decides what to do next for one job.
///
/// Pure: the same input always gives the same plan (node ties are broken by node id). The
/// orchestrator applies the plan and calls again after the next change, or at
/// [`Plan::retry_at`]; a plan that changes nothing is empty.
pub fn schedule(input: SchedulerInput<'_>) -> Plan {
    let mut planner = planner::Planner::new(input);
    // Lost nodes first: a terminal job must still settle work that no node will ever report on.
    settle::settle_lost_nodes(&mut planner);
    if input.job.state.state_type.is_terminal() {
        settle::stop_everything(&mut planner);
        rolling::job_ended(&mut planner);
        return planner.finish();
    }
    settle::settle_drained_nodes(&mut planner);
    let held = rolling::held_nodes(&planner);
    settle::stop_old_versions(&mut planner, &held);
    settle::wake_at_grace_end(&mut planner);
    if let Err(message) = planner.request() {
        planner.fail(message);
        return planner.finish();
    }
    match input.job.job_type {
        JobType::Batch => batch::reconcile(&mut planner),
        JobType::Ops if input.job.rollout.is_some() => rolling::reconcile_ops(&mut planner),
        JobType::Ops => ops::reconcile(&mut planner),
        JobType::Daemon if input.job.rollout.is_some() => {
            rolling::reconcile_daemon(&mut planner, held)
        }
        JobType::Daemon => daemon::reconcile(&mut planner, &held),
        JobType::Service => service::reconcile(&mut planner),
    }
    planner.finish()
}
