//! Evaluating a job: run the scheduler on the current state and apply its plan.

use std::collections::HashMap;

use shoal_scheduler::{Plan, SchedulerInput, schedule};
use shoal_store::Tx;
use shoal_transport::Message;
use shoal_types::execution::AllocatedResources;
use shoal_types::{
    ComputeStateType, DesiredStateType, Execution, ExecutionId, ExecutionState, Job, NodeId,
};

use crate::engine::{EngineState, Outgoing, allocated, event, history, now};
use crate::error::OrchestratorError;
use crate::handle::Placement;
use crate::nodes::Outbound;

/// Re-evaluates one job and applies the resulting plan in `tx`.
pub(crate) fn evaluate(
    tx: &Tx<'_>,
    st: &mut EngineState,
    out: &mut Outgoing,
    job_id: &str,
) -> Result<(), OrchestratorError> {
    let Some(job) = st.active.job(tx, job_id)?.cloned() else {
        st.active.forget(job_id);
        return Ok(());
    };
    st.active.load(tx, job_id)?;
    let executions = st.active.list(job_id);
    let views = st.views.get(&st.nodes);
    let t = now();
    let plan = schedule(SchedulerInput {
        job: &job,
        executions,
        nodes: views,
        now: t,
        config: &st.cfg.scheduler,
    });
    let ends = plan
        .job_state
        .as_ref()
        .map_or(job.state.state_type, |s| s.state_type)
        .is_terminal();
    apply(tx, st, out, job, plan)?;
    if ends && st.active.list(job_id).iter().all(Execution::is_terminal) {
        // Only jobs with work in flight are kept: a settled job whose executions have all
        // ended is evaluated again only by a late report.
        st.active.forget(job_id);
    }
    Ok(())
}

/// Writes an execution and keeps the engine's copy of its job's executions in step.
pub(crate) fn put_execution(
    tx: &Tx<'_>,
    st: &mut EngineState,
    e: &Execution,
) -> Result<(), OrchestratorError> {
    tx.put_execution(e)?;
    st.active.put(e);
    Ok(())
}

/// Writes a job and keeps the engine's copy in step.
pub(crate) fn put_job(
    tx: &Tx<'_>,
    st: &mut EngineState,
    job: &Job,
) -> Result<(), OrchestratorError> {
    tx.put_job(job)?;
    st.active.put_job(job);
    Ok(())
}

/// The jobs being evaluated and their executions, kept between evaluations so that a job with
/// 10,000 executions (a fleet-wide query) is not read back and decoded from SQLite after every
/// batch of reports, and a report does not decode its job again. Write-through: every job and
/// execution the engine writes goes through [`put_job`] and [`put_execution`]; the engine
/// clears it when a transaction fails, since what it holds may then be ahead of the store.
#[derive(Debug, Default)]
pub(crate) struct ActiveJobs {
    jobs: HashMap<String, JobExecs>,
    specs: HashMap<String, Job>,
}

#[derive(Debug, Default)]
struct JobExecs {
    list: Vec<Execution>,
    at: HashMap<String, usize>,
}

impl ActiveJobs {
    /// Drops everything (after a failed transaction).
    pub fn clear(&mut self) {
        self.jobs.clear();
        self.specs.clear();
    }

    /// Drops one job and its executions.
    pub fn forget(&mut self, job_id: &str) {
        self.jobs.remove(job_id);
        self.specs.remove(job_id);
    }

    /// A job as stored, read once and then kept until it is forgotten.
    pub fn job(&mut self, tx: &Tx<'_>, job_id: &str) -> Result<Option<&Job>, OrchestratorError> {
        if !self.specs.contains_key(job_id) {
            match tx.read().job(job_id)? {
                Some(job) => self.specs.insert(job_id.to_string(), job),
                None => return Ok(None),
            };
        }
        Ok(self.specs.get(job_id))
    }

    fn put_job(&mut self, job: &Job) {
        self.specs.insert(job.id.clone(), job.clone());
    }

    fn load(&mut self, tx: &Tx<'_>, job_id: &str) -> Result<(), OrchestratorError> {
        if !self.jobs.contains_key(job_id) {
            let list = tx.read().executions(job_id)?;
            let at = list
                .iter()
                .enumerate()
                .map(|(i, e)| (e.id.to_string(), i))
                .collect();
            self.jobs.insert(job_id.to_string(), JobExecs { list, at });
        }
        Ok(())
    }

    fn list(&self, job_id: &str) -> &[Execution] {
        self.jobs.get(job_id).map_or(&[], |j| j.list.as_slice())
    }

    /// One execution, if its job's executions are loaded.
    pub fn execution(&self, job_id: &str, execution_id: &str) -> Option<&Execution> {
        let j = self.jobs.get(job_id)?;
        j.at.get(execution_id).map(|&i| &j.list[i])
    }

    fn put(&mut self, e: &Execution) {
        let Some(j) = self.jobs.get_mut(e.job_id.as_str()) else {
            return;
        };
        match j.at.get(e.id.as_str()) {
            Some(&i) => j.list[i] = e.clone(),
            None => {
                j.at.insert(e.id.to_string(), j.list.len());
                j.list.push(e.clone());
            }
        }
    }
}

fn apply(
    tx: &Tx<'_>,
    st: &mut EngineState,
    out: &mut Outgoing,
    mut job: Job,
    plan: Plan,
) -> Result<(), OrchestratorError> {
    let t = now();
    for update in &plan.updates {
        let Some(mut e) = st
            .active
            .execution(&job.id, update.execution_id.as_str())
            .cloned()
        else {
            continue;
        };
        let was_terminal = e.is_terminal();
        e.desired_state = ExecutionState::new(update.desired, update.message.clone());
        if let Some(state) = update.compute {
            e.compute_state = ExecutionState::new(state, update.message.clone());
            if update.retryable {
                e.compute_state
                    .details
                    .insert("Retryable".into(), "true".into());
            }
        }
        e.revision += 1;
        e.modify_time = t;
        put_execution(tx, st, &e)?;
        let settled_here = update.compute.is_some_and(|c| c.is_terminal());
        if settled_here && let Some(n) = st.nodes.get_mut(e.node_id.as_str()) {
            n.allocated.remove(e.id.as_str());
            st.views.refresh(&st.nodes, e.node_id.as_str());
        }
        if update.desired == DesiredStateType::Stopped && !was_terminal {
            // Tell the node even when the orchestrator settled the state itself: a node that
            // comes back must not keep running work that was given up on.
            let msg = Message::Cancel {
                execution_id: e.id.to_string(),
                reason: update.message.clone(),
            };
            send_durable(tx, out, e.node_id.as_str(), msg)?;
            let ev = event("Execution", update.message.clone()).with("NodeID", e.node_id.as_str());
            tx.append_history(history(&job, Some(e.id.as_str()), ev))?;
        }
    }

    // The scheduler's plan carries the `State Update` event that explains a state change.
    if let Some(state) = &plan.job_state {
        job.state = state.clone();
        job.revision += 1;
        job.modify_time = t;
        put_job(tx, st, &job)?;
    }

    for new in &plan.new_executions {
        let e = new_execution(
            &job,
            &new.node_id,
            new.partition_index,
            new.previous_execution.as_ref(),
            &new.resources,
            t,
        );
        put_execution(tx, st, &e)?;
        if let Some(n) = st.nodes.get_mut(new.node_id.as_str()) {
            n.allocated.insert(e.id.to_string(), allocated(&e));
            st.views.refresh(&st.nodes, new.node_id.as_str());
        }
        send_stored(tx, out, new.node_id.as_str(), Message::run_json(&e, &job))?;
    }

    for ev in &plan.events {
        tx.append_history(history(&job, None, ev.clone()))?;
    }

    if !plan.rejections.is_empty() {
        let placement: Vec<Placement> = plan
            .rejections
            .iter()
            .map(|r| Placement {
                node_id: r.node_id.to_string(),
                reason: r.reason.clone(),
                transient: r.transient,
            })
            .collect();
        tx.set_placement(
            &job.id,
            &serde_json::to_string(&placement).unwrap_or_else(|_| "[]".into()),
        )?;
    }

    if let Some(at) = plan.retry_at {
        st.timers.insert((at, job.id.clone()));
    }
    Ok(())
}

fn send_durable(
    tx: &Tx<'_>,
    out: &mut Outgoing,
    node_id: &str,
    msg: Message,
) -> Result<(), OrchestratorError> {
    let body = serde_json::to_string(&msg).expect("messages always serialise");
    send_stored(tx, out, node_id, body)
}

/// Puts a serialised message in the node's outbox and sends it as stored once the transaction
/// commits: serialised once, on the engine's thread, and not encoded again by the link.
fn send_stored(
    tx: &Tx<'_>,
    out: &mut Outgoing,
    node_id: &str,
    body: String,
) -> Result<(), OrchestratorError> {
    let seq = tx.outbox_push(node_id, &body)?;
    out.push(node_id, Outbound::Stored { seq, body });
    Ok(())
}

fn new_execution(
    job: &Job,
    node: &NodeId,
    partition_index: u32,
    previous: Option<&ExecutionId>,
    resources: &shoal_types::Resources,
    t: i64,
) -> Execution {
    let task = job
        .tasks
        .first()
        .map(|t| t.name.clone())
        .unwrap_or_else(|| "main".into());
    Execution {
        id: ExecutionId::generate(),
        namespace: job.namespace.clone(),
        eval_id: String::new(),
        name: String::new(),
        node_id: node.clone(),
        job_id: job.job_id(),
        job: None,
        job_version: job.version,
        allocated_resources: AllocatedResources {
            tasks: [(task, *resources)].into(),
        },
        desired_state: ExecutionState::new(DesiredStateType::Running, ""),
        compute_state: ExecutionState::new(ComputeStateType::New, ""),
        published_result: None,
        run_output: None,
        previous_execution: previous.map(|p| p.to_string()).unwrap_or_default(),
        next_execution: String::new(),
        followup_eval_id: String::new(),
        partition_index,
        revision: 1,
        create_time: t,
        modify_time: t,
    }
}
