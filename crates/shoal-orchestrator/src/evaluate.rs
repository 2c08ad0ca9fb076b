//! Evaluating a job: run the scheduler on the current state and apply its plan.

use shoal_scheduler::{Plan, SchedulerInput, schedule};
use shoal_store::Tx;
use shoal_transport::{Message, ledger};
use shoal_types::execution::AllocatedResources;
use shoal_types::{
    ComputeStateType, DesiredStateType, Execution, ExecutionId, ExecutionState, Job, NodeId,
};

use crate::clock::{event, history, now};
use crate::command::Placement;
use crate::error::OrchestratorError;
use crate::nodes::allocated;
use crate::state::{EngineState, Outgoing, write_execution, write_job};

/// Re-evaluates one job and applies the resulting plan in `tx`.
pub(crate) fn evaluate(
    tx: &Tx<'_>,
    st: &mut EngineState,
    out: &mut Outgoing,
    job_id: &str,
) -> Result<(), OrchestratorError> {
    let started = std::time::Instant::now();
    let r = evaluate_job(tx, st, out, job_id);
    st.metrics.plan.observe(started.elapsed());
    r
}

/// [`evaluate`] without the timing.
fn evaluate_job(
    tx: &Tx<'_>,
    st: &mut EngineState,
    out: &mut Outgoing,
    job_id: &str,
) -> Result<(), OrchestratorError> {
    let Some(job) = st.active.job(tx, job_id)?.cloned() else {
        st.active.forget(job_id);
        return Ok(());
    };
    if job.schedule.is_some() {
        // A scheduled job never runs itself: its ticks make child jobs.
        return crate::engine::schedules::evaluate_parent(tx, st, out, job);
    }
    st.active.load(tx, job_id)?;
    let executions = st.active.list(job_id);
    let rollout = match job.rollout {
        Some(_) => tx.read().rollout(job_id)?,
        None => None,
    };
    let views = st.views.get(&st.nodes);
    let t = now();
    let plan = schedule(SchedulerInput {
        job: &job,
        executions,
        nodes: views,
        now: t,
        config: &st.cfg.scheduler,
        rollout: rollout.as_ref(),
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

/// Re-evaluates every active job (after a change that may affect any of them: a node's
/// membership or labels, a timer for all jobs).
pub(crate) fn evaluate_active(
    tx: &Tx<'_>,
    st: &mut EngineState,
    out: &mut Outgoing,
) -> Result<(), OrchestratorError> {
    for job_id in tx.read().active_job_ids()? {
        evaluate(tx, st, out, &job_id)?;
    }
    Ok(())
}

/// Applies a scheduler plan: execution updates (with durable `Cancel`s), the job's new state,
/// new executions (with durable `Run`s), events, placement reasons and the next timer.
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
        write_execution(tx, st, &e)?;
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
        write_job(tx, st, &job)?;
    }

    for new in &plan.new_executions {
        // A rollout's revert runs an earlier version, as it was submitted.
        let earlier = match new.job_version {
            Some(v) if v != job.version => match tx.read().job_version(&job.id, v)? {
                Some(spec) => Some(spec),
                None => {
                    let text = format!(
                        "cannot put version {v} back on node {}: that version was not kept (submitted before this orchestrator kept versions)",
                        new.node_id
                    );
                    let ev = event("Rollout", text).with("IsError", "true");
                    tx.append_history(history(&job, None, ev))?;
                    continue;
                }
            },
            _ => None,
        };
        let spec = earlier.as_ref().unwrap_or(&job);
        let mut e = new_execution(
            spec,
            &new.node_id,
            new.partition_index,
            new.previous_execution.as_ref(),
            &new.resources,
            t,
        );
        if let Some(why) = &new.unreachable {
            // Settled before it was sent: the node was away when the rollout reached it.
            e.desired_state = ExecutionState::new(DesiredStateType::Stopped, why.clone());
            e.compute_state = ExecutionState::new(ComputeStateType::Failed, why.clone());
            e.compute_state
                .details
                .insert("Unreachable".into(), "true".into());
            write_execution(tx, st, &e)?;
            continue;
        }
        write_execution(tx, st, &e)?;
        if let Some(n) = st.nodes.get_mut(new.node_id.as_str()) {
            n.allocated.insert(e.id.to_string(), allocated(&e));
            st.views.refresh(&st.nodes, new.node_id.as_str());
        }
        send_stored(tx, out, new.node_id.as_str(), Message::run_json(&e, spec))?;
    }

    if let Some(state) = &plan.rollout {
        tx.put_rollout(&job.id, state)?;
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
    out.push(node_id, ledger::push_json(tx, node_id, body)?);
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
