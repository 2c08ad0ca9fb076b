//! A scheduler harness: a job, its executions and a cluster, advanced one plan at a time.
//!
//! [`Cluster::step`] calls `schedule`, records the plan and applies it the way the orchestrator
//! does (new executions start as Desired=Running, Compute=New), so that tests read as stories:
//! place, let a node fail the execution, step again, look at what was placed.

use std::collections::BTreeMap;

use shoal_scheduler::{NodeView, Plan, SchedulerConfig, SchedulerInput, schedule};
use shoal_types::execution::AllocatedResources;
use shoal_types::rollout::RolloutState;
use shoal_types::{
    ComputeStateType, ConnectionStatus, DesiredStateType, Execution, ExecutionId, ExecutionState,
    InputSource, Job, JobId, JobState, JobStateType, JobType, LabelSelectorRequirement, Membership,
    NodeId, NodeInfo, NodeState, Resources, RunOutput, SpecConfig, Task,
};

pub const SEC: i64 = 1_000_000_000;
pub const GIB: u64 = 1 << 30;
/// When every story starts.
pub const T0: i64 = 1_700_000_000 * SEC;

/// A connected, approved compute node with 4 cores, 8 GiB, docker and wasm.
pub fn node(id: &str) -> NodeView {
    let mut info = NodeInfo {
        node_id: id.to_string(),
        ..Default::default()
    };
    let c = &mut info.compute_node_info;
    c.execution_engines = vec!["docker".into(), "wasm".into()];
    c.publishers = vec!["local".into(), "noop".into()];
    c.storage_sources = vec!["urlDownload".into(), "inline".into()];
    c.max_capacity = Resources {
        cpu: 4.0,
        memory: 8 * GIB,
        disk: 100 * GIB,
        gpu: 0,
    };
    NodeView {
        state: NodeState {
            info,
            membership: Membership::Approved,
            connection: ConnectionStatus::Connected,
            connection_state: Default::default(),
            operator_labels: Default::default(),
            cordoned: false,
            drained: false,
        },
        free: Resources::default(),
        last_seen: T0,
    }
}

/// Builder methods for nodes.
pub trait NodeExt: Sized {
    fn engines(self, engines: &[&str]) -> Self;
    fn memory(self, bytes: u64) -> Self;
    fn label(self, key: &str, value: &str) -> Self;
    fn membership(self, m: Membership) -> Self;
    fn disconnected(self) -> Self;
    fn view(&mut self) -> &mut NodeView;
}

impl NodeExt for NodeView {
    fn engines(mut self, engines: &[&str]) -> Self {
        self.view().state.info.compute_node_info.execution_engines =
            engines.iter().map(|s| s.to_string()).collect();
        self
    }
    fn memory(mut self, bytes: u64) -> Self {
        self.view().state.info.compute_node_info.max_capacity.memory = bytes;
        self
    }
    fn label(mut self, key: &str, value: &str) -> Self {
        self.view()
            .state
            .info
            .labels
            .insert(key.into(), value.into());
        self
    }
    fn membership(mut self, m: Membership) -> Self {
        self.view().state.membership = m;
        self
    }
    fn disconnected(mut self) -> Self {
        self.view().state.connection = ConnectionStatus::Disconnected;
        self
    }
    fn view(&mut self) -> &mut NodeView {
        self
    }
}

fn job(job_type: JobType, count: u32) -> Job {
    Job {
        id: "j-test".into(),
        name: "test".into(),
        namespace: "default".into(),
        job_type,
        priority: 0,
        count,
        constraints: vec![],
        meta: BTreeMap::new(),
        labels: BTreeMap::new(),
        tasks: vec![Task {
            name: "main".into(),
            engine: SpecConfig::of("docker"),
            ..Default::default()
        }],
        rollout: None,
        schedule: None,
        state: JobState::new(JobStateType::Pending, ""),
        version: 1,
        revision: 1,
        create_time: T0,
        modify_time: T0,
    }
}

pub fn batch(count: u32) -> Job {
    job(JobType::Batch, count)
}
pub fn service(count: u32) -> Job {
    job(JobType::Service, count)
}
pub fn ops() -> Job {
    job(JobType::Ops, 0)
}
pub fn daemon() -> Job {
    job(JobType::Daemon, 0)
}

/// Builder methods for jobs.
pub trait JobExt: Sized {
    fn engine(self, kind: &str) -> Self;
    fn memory(self, quantity: &str) -> Self;
    fn constraint(self, key: &str, op: &str, values: &[&str]) -> Self;
    fn publisher(self, kind: &str) -> Self;
    fn input(self, kind: &str) -> Self;
    fn queue_timeout(self, secs: u64) -> Self;
    fn total_timeout(self, secs: u64) -> Self;
    fn task_mut(&mut self) -> &mut Task;
}

impl JobExt for Job {
    fn engine(mut self, kind: &str) -> Self {
        self.task_mut().engine = SpecConfig::of(kind);
        self
    }
    fn memory(mut self, quantity: &str) -> Self {
        self.task_mut().resources.memory = quantity.into();
        self
    }
    fn constraint(mut self, key: &str, op: &str, values: &[&str]) -> Self {
        self.constraints.push(LabelSelectorRequirement {
            key: key.into(),
            operator: op.into(),
            values: values.iter().map(|s| s.to_string()).collect(),
        });
        self
    }
    fn publisher(mut self, kind: &str) -> Self {
        self.task_mut().publisher = Some(SpecConfig::of(kind));
        self
    }
    fn input(mut self, kind: &str) -> Self {
        self.task_mut().input_sources.push(InputSource {
            source: SpecConfig::of(kind),
            ..Default::default()
        });
        self
    }
    fn queue_timeout(mut self, secs: u64) -> Self {
        self.task_mut().timeouts.queue_timeout = secs;
        self
    }
    fn total_timeout(mut self, secs: u64) -> Self {
        self.task_mut().timeouts.total_timeout = secs;
        self
    }
    fn task_mut(&mut self) -> &mut Task {
        &mut self.tasks[0]
    }
}

/// The orchestrator's view of one job, and the plans it has applied.
pub struct Cluster {
    pub job: Job,
    pub nodes: Vec<NodeView>,
    pub executions: Vec<Execution>,
    pub now: i64,
    pub config: SchedulerConfig,
    /// Every plan `step` applied, in order.
    pub plans: Vec<Plan>,
    /// The rollout state as the orchestrator would store it from the plans.
    pub rollout: Option<RolloutState>,
    /// Capacity used on a node by other jobs.
    elsewhere: BTreeMap<String, Resources>,
    next_execution: u32,
}

impl Cluster {
    pub fn new(job: Job, nodes: Vec<NodeView>) -> Self {
        Cluster {
            job,
            nodes,
            executions: Vec::new(),
            now: T0,
            config: SchedulerConfig::default(),
            plans: Vec::new(),
            rollout: None,
            elsewhere: BTreeMap::new(),
            next_execution: 1,
        }
    }

    /// The nodes as the scheduler sees them, with free capacity after every live execution.
    pub fn views(&self) -> Vec<NodeView> {
        let mut views = self.nodes.clone();
        for view in &mut views {
            let id = view.state.info.node_id.clone();
            let mut free = view.state.info.compute_node_info.max_capacity;
            if let Some(used) = self.elsewhere.get(&id) {
                free = free.saturating_sub(used);
            }
            for e in self
                .executions
                .iter()
                .filter(|e| e.node_id.as_str() == id && !e.is_terminal())
            {
                for r in e.allocated_resources.tasks.values() {
                    free = free.saturating_sub(r);
                }
            }
            view.free = free;
        }
        views
    }

    /// What the scheduler would do now, without applying it.
    pub fn plan(&self) -> Plan {
        let views = self.views();
        schedule(SchedulerInput {
            job: &self.job,
            executions: &self.executions,
            nodes: &views,
            now: self.now,
            config: &self.config,
            rollout: self.rollout.as_ref(),
        })
    }

    /// Schedules, applies the plan and returns it.
    pub fn step(&mut self) -> Plan {
        let plan = self.plan();
        self.apply(&plan);
        self.plans.push(plan.clone());
        plan
    }

    /// Applies a plan as the orchestrator does.
    pub fn apply(&mut self, plan: &Plan) {
        for new in &plan.new_executions {
            let id = ExecutionId::new(format!("e-{:03}", self.next_execution));
            self.next_execution += 1;
            self.executions.push(Execution {
                id,
                namespace: self.job.namespace.clone(),
                eval_id: String::new(),
                name: String::new(),
                node_id: new.node_id.clone(),
                job_id: JobId::new(self.job.id.clone()),
                job: None,
                job_version: new.job_version.unwrap_or(self.job.version),
                allocated_resources: AllocatedResources {
                    tasks: [("main".to_string(), new.resources)].into(),
                },
                desired_state: match &new.unreachable {
                    Some(why) => ExecutionState::new(DesiredStateType::Stopped, why.clone()),
                    None => ExecutionState::new(DesiredStateType::Running, ""),
                },
                compute_state: match &new.unreachable {
                    Some(why) => ExecutionState::new(ComputeStateType::Failed, why.clone()),
                    None => ExecutionState::new(ComputeStateType::New, ""),
                },
                published_result: None,
                run_output: None,
                previous_execution: new
                    .previous_execution
                    .as_ref()
                    .map(|e| e.to_string())
                    .unwrap_or_default(),
                next_execution: String::new(),
                followup_eval_id: String::new(),
                partition_index: new.partition_index,
                revision: 1,
                create_time: self.now,
                modify_time: self.now,
            });
        }
        for u in &plan.updates {
            let now = self.now;
            let e = self.execution_mut(u.execution_id.as_str());
            e.desired_state = ExecutionState::new(u.desired, u.message.clone());
            if let Some(compute) = u.compute {
                e.compute_state = ExecutionState::new(compute, u.message.clone());
                if u.retryable {
                    e.compute_state
                        .details
                        .insert("Retryable".into(), "true".into());
                }
            }
            e.modify_time = now;
        }
        if let Some(state) = &plan.job_state {
            self.job.state = state.clone();
        }
        if let Some(rollout) = &plan.rollout {
            self.rollout = Some(rollout.clone());
        }
    }

    pub fn advance(&mut self, secs: i64) {
        self.now += secs * SEC;
    }

    pub fn node_mut(&mut self, id: &str) -> &mut NodeView {
        self.nodes
            .iter_mut()
            .find(|n| n.state.info.node_id == id)
            .expect("node exists")
    }

    pub fn add_node(&mut self, n: NodeView) {
        self.nodes.push(n);
    }

    pub fn remove_node(&mut self, id: &str) {
        self.nodes.retain(|n| n.state.info.node_id != id);
    }

    /// The node's link drops now.
    pub fn disconnect(&mut self, id: &str) {
        let now = self.now;
        let n = self.node_mut(id);
        n.state.connection = ConnectionStatus::Disconnected;
        n.last_seen = now;
    }

    /// Other jobs use this much of the node.
    pub fn use_elsewhere(&mut self, id: &str, used: Resources) {
        self.elsewhere.insert(id.to_string(), used);
    }

    pub fn execution_mut(&mut self, id: &str) -> &mut Execution {
        self.executions
            .iter_mut()
            .find(|e| e.id.as_str() == id)
            .expect("execution exists")
    }

    pub fn execution(&self, id: &str) -> &Execution {
        self.executions
            .iter()
            .find(|e| e.id.as_str() == id)
            .expect("execution exists")
    }

    /// The node reports the task ran to completion with this exit code.
    pub fn complete(&mut self, id: &str, exit_code: i32) {
        let now = self.now;
        let e = self.execution_mut(id);
        e.compute_state = ExecutionState::new(ComputeStateType::Completed, "execution completed");
        e.desired_state.state_type = DesiredStateType::Stopped;
        e.run_output = Some(RunOutput {
            exit_code,
            ..Default::default()
        });
        e.modify_time = now;
    }

    /// The node reports the execution failed.
    pub fn fail(&mut self, id: &str, message: &str, retryable: bool) {
        self.end(id, ComputeStateType::Failed, message, retryable);
    }

    /// The node refused the execution at admission.
    pub fn refuse(&mut self, id: &str, message: &str) {
        self.end(id, ComputeStateType::AskForBidRejected, message, true);
    }

    /// Every node that was asked to stop an execution confirms it.
    pub fn confirm_stops(&mut self) {
        let stopping: Vec<String> = self
            .executions
            .iter()
            .filter(|e| !e.is_terminal() && e.desired_state.state_type == DesiredStateType::Stopped)
            .map(|e| e.id.to_string())
            .collect();
        for id in stopping {
            self.end(
                &id,
                ComputeStateType::Cancelled,
                "execution cancelled",
                false,
            );
        }
    }

    fn end(&mut self, id: &str, state: ComputeStateType, message: &str, retryable: bool) {
        let now = self.now;
        let e = self.execution_mut(id);
        e.compute_state = ExecutionState::new(state, message);
        if retryable {
            e.compute_state
                .details
                .insert("Retryable".into(), "true".into());
        }
        e.desired_state.state_type = DesiredStateType::Stopped;
        e.modify_time = now;
    }

    pub fn state(&self) -> JobStateType {
        self.job.state.state_type
    }

    pub fn message(&self) -> &str {
        &self.job.state.message
    }
}

/// The nodes a plan places on, in order.
pub fn placed_on(plan: &Plan) -> Vec<String> {
    plan.new_executions
        .iter()
        .map(|n| n.node_id.to_string())
        .collect()
}

/// The reason a plan gives for a node.
pub fn reason<'p>(plan: &'p Plan, node: &str) -> &'p shoal_scheduler::NodeRejection {
    plan.rejections
        .iter()
        .find(|r| r.node_id == NodeId::new(node))
        .unwrap_or_else(|| panic!("no rejection for {node} in {:#?}", plan.rejections))
}
