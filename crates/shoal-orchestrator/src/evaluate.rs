//! Evaluating a job: run the scheduler on the current state and apply its plan.

use std::collections::BTreeMap;

use shoal_scheduler::{Plan, SchedulerInput, schedule};
use shoal_store::Tx;
use shoal_transport::{Frame, Message};
use shoal_types::execution::AllocatedResources;
use shoal_types::{
    ComputeStateType, DesiredStateType, Execution, ExecutionId, ExecutionState, Job, NodeId,
};

use crate::engine::{EngineState, Outgoing, allocated, event, history, now};
use crate::error::OrchestratorError;
use crate::handle::Placement;
use crate::query::HubEvent;

/// Re-evaluates one job and applies the resulting plan in `tx`.
pub(crate) fn evaluate(
    tx: &Tx<'_>,
    st: &mut EngineState,
    out: &mut Outgoing,
    job_id: &str,
) -> Result<(), OrchestratorError> {
    let Some(job) = tx.read().job(job_id)? else {
        return Ok(());
    };
    let executions = tx.read().executions(job_id)?;
    let views: Vec<_> = st.nodes.values().map(|n| n.view()).collect();
    let t = now();
    let plan = schedule(SchedulerInput {
        job: &job,
        executions: &executions,
        nodes: &views,
        now: t,
        config: &st.cfg.scheduler,
    });
    apply(tx, st, out, job, executions, plan)
}

fn apply(
    tx: &Tx<'_>,
    st: &mut EngineState,
    out: &mut Outgoing,
    mut job: Job,
    executions: Vec<Execution>,
    plan: Plan,
) -> Result<(), OrchestratorError> {
    let t = now();
    let by_id: BTreeMap<&str, &Execution> = executions.iter().map(|e| (e.id.as_str(), e)).collect();

    for update in &plan.updates {
        let Some(current) = by_id.get(update.execution_id.as_str()) else {
            continue;
        };
        let mut e = (*current).clone();
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
        tx.put_execution(&e)?;
        let settled_here = update.compute.is_some_and(|c| c.is_terminal());
        if settled_here && let Some(n) = st.nodes.get_mut(e.node_id.as_str()) {
            n.allocated.remove(e.id.as_str());
        }
        if settled_here && !was_terminal {
            out.query_event(&st.queries, &job.id, || {
                HubEvent::Settled(Box::new(e.clone()))
            });
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
        tx.put_job(&job)?;
        if state.state_type.is_terminal() {
            out.query_event(&st.queries, &job.id, || HubEvent::Finished);
        }
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
        tx.put_execution(&e)?;
        if let Some(n) = st.nodes.get_mut(new.node_id.as_str()) {
            n.allocated.insert(e.id.to_string(), allocated(&e));
        }
        let mut with_job = e.clone();
        with_job.job = Some(Box::new(job.clone()));
        send_durable(
            tx,
            out,
            new.node_id.as_str(),
            Message::Run {
                execution: Box::new(with_job),
            },
        )?;
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
    let seq = tx.outbox_push(node_id, &body)?;
    out.push(node_id, Frame::Msg { seq, msg });
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
