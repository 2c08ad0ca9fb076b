//! The plan under construction and the working view it is built against.
//!
//! Reconcilers never edit a [`Plan`] directly: they go through [`Planner`], which applies each
//! decision to its own copy of the executions and to its capacity ledger at once. So a step that
//! runs later in the same call (a reconciler after the lost-node settlement, the third partition
//! after the first two) sees the cluster as it will be once the plan is applied.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use shoal_types::rollout::RolloutState;
use shoal_types::time::{UnixNanos, rfc3339};
use shoal_types::{
    ComputeStateType, DesiredStateType, Event, Execution, ExecutionId, Job, JobState, JobStateType,
    NodeId, Resources,
};

use crate::feasibility::Rejection;
use crate::{
    ExecutionUpdate, NewExecution, NodeRejection, NodeView, Plan, SchedulerConfig, SchedulerInput,
};

/// Message prefix of the `Scheduling` event written for each new execution; [`Planner::fail`]
/// uses it to withdraw those events together with the executions.
const PLACED_EVENT: &str = "Requested execution on ";

/// One call's worth of decisions about one job.
///
/// The planner borrows the job's executions and copies only those it changes: a fleet-wide job
/// has 10,000 of them and is evaluated after every batch of reports, so a full copy per call
/// made the orchestrator's cost grow with the square of the fleet.
pub(crate) struct Planner<'a> {
    /// The job, as stored.
    pub job: &'a Job,
    /// The nodes, sorted by id so that every loop over them is deterministic (and so that a
    /// node is found by binary search).
    pub nodes: Vec<&'a NodeView>,
    /// The time the plan is made for.
    pub now: UnixNanos,
    /// Tunables.
    pub config: &'a SchedulerConfig,
    /// The stored rollout state of the current job version, if any.
    pub rollout: Option<&'a RolloutState>,
    /// Every execution (all versions), as the caller passed them.
    executions: &'a [Execution],
    /// This plan's changed copies, by position in `executions`; empty until the first change.
    changed: Vec<Option<Box<Execution>>>,
    /// Where each execution sits in `executions`, by id; built on the first change.
    execution_at: HashMap<&'a str, usize>,
    /// Positions of the current version's executions per partition, oldest first: a job of
    /// 1,000 partitions would otherwise scan every execution once per partition.
    partitions: HashMap<u32, Vec<usize>>,
    /// The task's requested resources with defaults filled in, or why they cannot be read.
    request: Result<Resources, String>,
    /// Free capacity per node (by position in `nodes`), minus what this plan has placed there.
    free: Vec<Resources>,
    /// Live executions of the current version per node (by position in `nodes`), including
    /// the ones placed here.
    load: Vec<u32>,
    rejections: BTreeMap<NodeId, NodeRejection>,
    chosen: BTreeSet<NodeId>,
    plan: Plan,
}

impl<'a> Planner<'a> {
    pub fn new(input: SchedulerInput<'a>) -> Self {
        let mut nodes: Vec<&NodeView> = input.nodes.iter().collect();
        // The orchestrator passes its views sorted already; checking is cheaper than sorting.
        if !nodes.is_sorted_by(|a, b| a.state.info.node_id <= b.state.info.node_id) {
            nodes.sort_by(|a, b| a.state.info.node_id.cmp(&b.state.info.node_id));
        }
        let free = nodes.iter().map(|n| n.free).collect();
        let mut partitions: HashMap<u32, Vec<usize>> = HashMap::new();
        for (i, e) in input.executions.iter().enumerate() {
            if e.job_version >= input.job.version {
                partitions.entry(e.partition_index).or_default().push(i);
            }
        }
        let oldest_first = |&a: &usize, &b: &usize| {
            let (a, b) = (&input.executions[a], &input.executions[b]);
            a.create_time
                .cmp(&b.create_time)
                .then_with(|| a.id.cmp(&b.id))
        };
        for at in partitions.values_mut() {
            if !at.is_sorted_by(|a, b| oldest_first(a, b).is_le()) {
                at.sort_by(oldest_first);
            }
        }
        let load = vec![0; nodes.len()];
        let mut planner = Planner {
            job: input.job,
            nodes,
            now: input.now,
            config: input.config,
            rollout: input.rollout.filter(|r| r.job_version == input.job.version),
            executions: input.executions,
            changed: Vec::new(),
            execution_at: HashMap::new(),
            partitions,
            request: requested_resources(input.job, &input.config.default_resources),
            free,
            load,
            rejections: BTreeMap::new(),
            chosen: BTreeSet::new(),
            plan: Plan::default(),
        };
        let live: Vec<usize> = planner
            .current()
            .filter(|e| !e.is_terminal())
            .filter_map(|e| planner.node_index(e.node_id.as_str()))
            .collect();
        for at in live {
            planner.load[at] += 1;
        }
        planner
    }

    /// Where a node sits in [`Self::nodes`].
    pub fn node_index(&self, id: &str) -> Option<usize> {
        self.nodes
            .binary_search_by(|n| n.state.info.node_id.as_str().cmp(id))
            .ok()
    }

    /// A node by id, if the orchestrator knows it.
    pub fn node(&self, id: &NodeId) -> Option<&'a NodeView> {
        self.node_index(id.as_str()).map(|i| self.nodes[i])
    }

    /// The execution at position `at`, as this plan leaves it.
    pub fn execution(&self, at: usize) -> &Execution {
        self.changed
            .get(at)
            .and_then(|c| c.as_deref())
            .unwrap_or(&self.executions[at])
    }

    /// Every execution, all versions, as this plan leaves them.
    pub fn executions(&self) -> impl Iterator<Item = &Execution> {
        (0..self.executions.len()).map(|at| self.execution(at))
    }

    /// Positions of the executions of the job's current version.
    pub fn current_positions(&self) -> impl Iterator<Item = usize> + use<'_, 'a> {
        let version = self.job.version;
        (0..self.executions.len()).filter(move |&at| self.executions[at].job_version >= version)
    }

    /// Executions of the job's current version: only these count towards the job's progress.
    pub fn current(&self) -> impl Iterator<Item = &Execution> {
        self.current_positions().map(|at| self.execution(at))
    }

    /// Executions of the current version in one partition, oldest first.
    pub fn partition(&self, index: u32) -> Vec<&Execution> {
        self.partitions
            .get(&index)
            .map(|at| at.iter().map(|&i| self.execution(i)).collect())
            .unwrap_or_default()
    }

    /// The task's requested resources (defaults filled in), or why they cannot be read.
    pub fn request(&self) -> Result<Resources, String> {
        self.request.clone()
    }

    /// The requested resources; callers run after [`schedule`](crate::schedule) has failed jobs
    /// whose resources cannot be read, so the fallback is never used.
    pub fn requested(&self) -> Resources {
        self.request.clone().unwrap_or_default()
    }

    /// A node's free capacity after this plan's placements.
    pub fn free(&self, node: &NodeId) -> Resources {
        self.node_index(node.as_str())
            .map(|at| self.free[at])
            .unwrap_or_default()
    }

    /// Live executions of this job on a node, including this plan's placements.
    pub fn load(&self, node: &NodeId) -> u32 {
        self.node_index(node.as_str()).map_or(0, |at| self.load[at])
    }

    /// The job's state as this plan leaves it.
    pub fn job_state(&self) -> JobStateType {
        self.plan
            .job_state
            .as_ref()
            .map_or(self.job.state.state_type, |s| s.state_type)
    }

    /// This plan's own copy of an execution, made on its first change.
    fn execution_mut(&mut self, id: &ExecutionId) -> Option<&mut Execution> {
        let executions = self.executions;
        if self.changed.is_empty() {
            self.changed.resize_with(executions.len(), || None);
            self.execution_at = executions
                .iter()
                .enumerate()
                .map(|(at, e)| (e.id.as_str(), at))
                .collect();
        }
        let at = *self.execution_at.get(id.as_str())?;
        Some(self.changed[at].get_or_insert_with(|| Box::new(executions[at].clone())))
    }

    /// Asks the node to stop a live execution. A no-op for executions that are terminal or
    /// already asked to stop, so repeated calls make empty plans.
    pub fn stop(&mut self, id: &ExecutionId, message: impl Into<String>) {
        let Some(exec) = self.execution_mut(id) else {
            return;
        };
        if exec.is_terminal() || exec.desired_state.state_type == DesiredStateType::Stopped {
            return;
        }
        let message = message.into();
        exec.desired_state.state_type = DesiredStateType::Stopped;
        exec.desired_state.message = message.clone();
        self.plan.updates.push(ExecutionUpdate {
            execution_id: id.clone(),
            desired: DesiredStateType::Stopped,
            compute: None,
            message,
            retryable: false,
        });
    }

    /// Marks a live execution Failed without waiting for its node (which cannot answer).
    pub fn settle_failed(&mut self, id: &ExecutionId, message: impl Into<String>, retryable: bool) {
        let Some(exec) = self.execution_mut(id) else {
            return;
        };
        if exec.is_terminal() {
            return;
        }
        let message = message.into();
        exec.desired_state.state_type = DesiredStateType::Stopped;
        exec.desired_state.message = message.clone();
        exec.compute_state.state_type = ComputeStateType::Failed;
        exec.compute_state.message = message.clone();
        if retryable {
            exec.compute_state
                .details
                .insert("Retryable".into(), "true".into());
        }
        self.plan.updates.push(ExecutionUpdate {
            execution_id: id.clone(),
            desired: DesiredStateType::Stopped,
            compute: Some(ComputeStateType::Failed),
            message,
            retryable,
        });
    }

    /// Creates an execution on a node and takes its resources from the node's free capacity.
    pub fn place(&mut self, node: NodeId, partition: u32, previous: Option<ExecutionId>) {
        self.place_with(node, partition, previous, None);
    }

    /// Creates an execution of an earlier job version on a node (a rollout's revert).
    pub fn place_version(&mut self, node: NodeId, job_version: u64) {
        self.place_with(node, 0, None, Some(job_version));
    }

    /// Records an execution that ended before it was sent: its node was away when a rollout
    /// reached it. It takes no capacity and nothing goes to the node.
    pub fn place_unreachable(&mut self, node: NodeId, message: String) {
        let event = Event::new("Scheduling", message.clone(), self.timestamp())
            .with("NodeID", node.as_str());
        self.plan.events.push(event);
        self.chosen.insert(node.clone());
        self.plan.new_executions.push(NewExecution {
            node_id: node,
            partition_index: 0,
            previous_execution: None,
            resources: Resources::default(),
            job_version: None,
            unreachable: Some(message),
        });
    }

    /// Stores the rollout's new state with the plan (only when it changed).
    pub fn set_rollout(&mut self, state: RolloutState) {
        if self.rollout != Some(&state) {
            self.plan.rollout = Some(state);
        }
    }

    fn place_with(
        &mut self,
        node: NodeId,
        partition: u32,
        previous: Option<ExecutionId>,
        job_version: Option<u64>,
    ) {
        let resources = self.requested();
        if let Some(at) = self.node_index(node.as_str()) {
            self.free[at] = self.free[at].saturating_sub(&resources);
            self.load[at] += 1;
        }
        let event = Event::new(
            "Scheduling",
            format!("{PLACED_EVENT}{node}"),
            self.timestamp(),
        )
        .with("NodeID", node.as_str())
        .with("PartitionIndex", partition.to_string());
        self.plan.events.push(event);
        self.chosen.insert(node.clone());
        self.plan.new_executions.push(NewExecution {
            node_id: node,
            partition_index: partition,
            previous_execution: previous,
            resources,
            job_version,
            unreachable: None,
        });
    }

    /// The nodes this plan creates executions on.
    pub fn placed_nodes(&self) -> Vec<NodeId> {
        self.plan
            .new_executions
            .iter()
            .map(|n| n.node_id.clone())
            .collect()
    }

    /// Whether this plan creates any execution.
    pub fn placed_any(&self) -> bool {
        !self.plan.new_executions.is_empty()
    }

    /// Whether a reason is recorded for the node already.
    pub fn has_reason(&self, node: &NodeId) -> bool {
        self.rejections.contains_key(node)
    }

    /// Records why a node was not chosen; the first reason per node is kept.
    pub fn reject(&mut self, rejection: &Rejection) {
        self.rejections
            .entry(rejection.node_id.clone())
            .or_insert_with(|| rejection.to_public());
    }

    /// Moves the job to a new state, with a `State Update` event. Setting the state it is
    /// already in does nothing: plans only carry changes.
    pub fn set_state(&mut self, state: JobStateType, message: impl Into<String>) {
        self.set_state_explained(state, message, None);
    }

    /// Like [`Self::set_state`], with a longer text for the event than for the state.
    pub fn set_state_explained(
        &mut self,
        state: JobStateType,
        message: impl Into<String>,
        explanation: Option<String>,
    ) {
        if self.job_state() == state {
            return;
        }
        let message = message.into();
        let text = explanation.unwrap_or_else(|| message.clone());
        let topic = if state == JobStateType::Queued {
            "Scheduling"
        } else {
            "State Update"
        };
        let mut event = Event::new(topic, text, self.timestamp()).with("NewState", state.as_str());
        if state == JobStateType::Failed {
            event = event.with("IsError", "true");
        }
        self.plan.events.push(event);
        self.plan.job_state = Some(JobState::new(state, message));
    }

    /// Fails the job: withdraws this plan's placements and stops every live execution.
    pub fn fail(&mut self, message: impl Into<String>) {
        self.plan.new_executions.clear();
        self.plan
            .events
            .retain(|e| !(e.topic == "Scheduling" && e.message.starts_with(PLACED_EVENT)));
        self.chosen.clear();
        self.set_state(JobStateType::Failed, message);
        self.stop_all_live("job failed");
    }

    /// Stops every live execution of every version.
    pub fn stop_all_live(&mut self, message: &str) {
        let live: Vec<ExecutionId> = self
            .executions()
            .filter(|e| !e.is_terminal())
            .map(|e| e.id.clone())
            .collect();
        for id in live {
            self.stop(&id, message);
        }
    }

    /// Adds a job-level history event to the plan.
    pub fn push_event(&mut self, event: Event) {
        self.plan.events.push(event);
    }

    /// Asks to be called again at `at` at the latest.
    pub fn retry_at(&mut self, at: UnixNanos) {
        self.plan.retry_at = Some(self.plan.retry_at.map_or(at, |t| t.min(at)));
    }

    /// The plan, with one rejection per node that was not chosen.
    pub fn finish(mut self) -> Plan {
        let chosen = &self.chosen;
        self.plan.rejections = self
            .rejections
            .into_values()
            .filter(|r| !chosen.contains(&r.node_id))
            .collect();
        self.plan
    }

    fn timestamp(&self) -> String {
        rfc3339(self.now)
    }
}

/// What one execution of the job asks for: the task's resources, with each dimension left empty
/// taken from the configured default (so a bare job still reserves something on its node).
fn requested_resources(job: &Job, defaults: &Resources) -> Result<Resources, String> {
    let Some(task) = job.tasks.first() else {
        return Err(format!("job {} has no task; add one under Tasks", job.id));
    };
    let cfg = &task.resources;
    let parsed =
        Resources::parse(cfg).map_err(|e| format!("task {:?} resources: {e}", task.name))?;
    Ok(Resources {
        cpu: if cfg.cpu.trim().is_empty() {
            defaults.cpu
        } else {
            parsed.cpu
        },
        memory: if cfg.memory.trim().is_empty() {
            defaults.memory
        } else {
            parsed.memory
        },
        disk: if cfg.disk.trim().is_empty() {
            defaults.disk
        } else {
            parsed.disk
        },
        gpu: if cfg.gpu.trim().is_empty() {
            defaults.gpu
        } else {
            parsed.gpu
        },
    })
}
