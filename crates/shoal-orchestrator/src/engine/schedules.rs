//! Scheduled jobs: a job with a `Schedule` is a parent that never runs anywhere itself; each
//! due tick makes a child job `<name>@<tick>` (the same spec without `Schedule`).
//!
//! The decision is `shoal_scheduler::cron::plan_ticks` (pure); this file applies it. The
//! children, the parent's history and the schedule's marks (`handled_through`, next tick) are
//! written in the evaluation's one transaction, so a restart neither runs a tick twice nor
//! loses one (nomad#11052, #14505). The engine's timer for the parent is the plan's
//! `next_wake`; after a restart the evaluation of every active job at start-up picks the
//! parents up, and ticks due while the orchestrator was down follow `CatchUp`.

use shoal_scheduler::cron::{TickAction, TickInput, plan_ticks};
use shoal_store::{ScheduleMarks, Tx};
use shoal_types::schedule::{PARENT_META, TICK_META, child_name, tick_name};
use shoal_types::time::{UnixNanos, rfc3339};
use shoal_types::{Job, JobState, JobStateType};

use super::jobs::{stop, submit};
use crate::clock::{event, history, now};
use crate::command::SubmitOptions;
use crate::error::{BadRequest, Conflict, OrchestratorError};
use crate::state::{EngineState, Outgoing, write_job};

/// The history topic of every schedule event on the parent.
const TOPIC: &str = "Schedule";

/// Evaluates a scheduled job: runs and skips its due ticks, sets its timer and its state.
pub(crate) fn evaluate_parent(
    tx: &Tx<'_>,
    st: &mut EngineState,
    out: &mut Outgoing,
    job: Job,
) -> Result<(), OrchestratorError> {
    let Some(schedule) = job.schedule.clone() else {
        return Ok(());
    };
    let t = now();
    let marks = tx.read().schedule_marks(&job.id)?;
    if job.state.state_type.is_terminal() {
        return stopped(tx, st, &job, marks);
    }
    let clock = match schedule.clock() {
        Ok(c) => c,
        Err(why) => {
            // Validation refuses such a job at submission; a stored one (an older tz database)
            // fails rather than being retried on every evaluation.
            let mut failed = job;
            failed.state = JobState::new(JobStateType::Failed, format!("Schedule: {why}"));
            failed.revision += 1;
            failed.modify_time = t;
            write_job(tx, st, &failed)?;
            return Ok(());
        }
    };
    // A new version starts afresh from the moment it was stored: no tick of the old spec is
    // caught up with the new one.
    let current = marks.filter(|m| m.version == job.version);
    let handled_through = current.map_or(job.modify_time, |m| m.handled_through);
    let running = tx.read().running_children(&job.id)?;
    let plan = plan_ticks(TickInput {
        schedule: &schedule,
        clock: &clock,
        handled_through,
        up_since: st.started,
        running: !running.is_empty(),
        now: t,
    });
    let mut last_tick = current.and_then(|m| m.last_tick);
    for action in &plan.actions {
        match *action {
            TickAction::Run { tick, catch_up } => {
                spawn(tx, st, out, &job, tick, catch_up)?;
                last_tick = Some(tick);
            }
            TickAction::Replace { tick, catch_up } => {
                for child in tx.read().running_children(&job.id)? {
                    let why = format!(
                        "replaced by the run for {} (Overlap: replace)",
                        tick_name(tick)
                    );
                    stop(tx, st, out, &child, &why)?;
                }
                spawn(tx, st, out, &job, tick, catch_up)?;
                last_tick = Some(tick);
            }
            TickAction::Skip(ref s) => {
                last_tick = last_tick.max(Some(s.last));
                let ev = event(TOPIC, s.to_string()).with("Tick", tick_name(s.last));
                tx.append_history(history(&job, None, ev))?;
            }
        }
    }
    tx.put_schedule_marks(
        &job.id,
        &ScheduleMarks {
            version: job.version,
            handled_through: plan.handled_through,
            next_tick: plan.next_wake,
            last_tick,
        },
    )?;
    if let Some(at) = plan.next_wake {
        st.timers.insert((at, job.id.clone()));
    }
    let message = match plan.next_wake {
        _ if schedule.suspend => {
            "scheduled: suspended (Suspend: true); update the job with Suspend: false to resume"
                .to_string()
        }
        Some(at) => format!("scheduled: next run {}", clock.local(at)),
        None => "scheduled: the cron pattern matches no later time".to_string(),
    };
    let mut state = JobState::new(JobStateType::Running, message);
    if let Some(at) = plan.next_wake.filter(|_| !schedule.suspend) {
        state.details.insert("NextRun".into(), rfc3339(at));
    }
    if let Some(tick) = last_tick {
        state.details.insert("LastTick".into(), rfc3339(tick));
    }
    let parent = st.active.job(tx, &job.id)?.cloned().unwrap_or(job);
    if parent.state != state {
        let mut parent = parent;
        parent.state = state;
        parent.revision += 1;
        parent.modify_time = t;
        write_job(tx, st, &parent)?;
    }
    Ok(())
}

/// A stopped (or otherwise ended) parent: no more ticks, said once in its history.
fn stopped(
    tx: &Tx<'_>,
    st: &mut EngineState,
    job: &Job,
    marks: Option<ScheduleMarks>,
) -> Result<(), OrchestratorError> {
    let Some(m) = marks.filter(|m| m.next_tick.is_some()) else {
        return Ok(());
    };
    tx.put_schedule_marks(
        &job.id,
        &ScheduleMarks {
            next_tick: None,
            ..m
        },
    )?;
    let running = tx.read().running_children(&job.id)?;
    let mut message = "scheduling stopped: no further runs".to_string();
    if !running.is_empty() {
        message.push_str(&format!(
            "; {} run{} still going ({}): `shoal job stop <id>` stops one",
            running.len(),
            if running.len() == 1 { "" } else { "s" },
            running.join(", ")
        ));
    }
    tx.append_history(history(job, None, event(TOPIC, message)))?;
    st.active.forget(&job.id);
    Ok(())
}

/// Makes the child job for `tick` and records it as the tick's run.
fn spawn(
    tx: &Tx<'_>,
    st: &mut EngineState,
    out: &mut Outgoing,
    parent: &Job,
    tick: UnixNanos,
    catch_up: bool,
) -> Result<Option<String>, OrchestratorError> {
    if tx.read().schedule_ran(&parent.id, tick)? {
        return Ok(None);
    }
    let name = child_name(&parent.name, tick);
    if tx.read().job_by_name(&parent.namespace, &name)?.is_some() {
        let ev = event(
            TOPIC,
            format!(
                "skipped: a job named {name} exists already (it was not made by this schedule)"
            ),
        );
        tx.append_history(history(parent, None, ev))?;
        return Ok(None);
    }
    let child_id = submit_child(tx, st, out, parent, tick, &name)?;
    let what = if catch_up {
        format!("started {name} (catching up a tick missed while the orchestrator was down)")
    } else {
        format!("started {name}")
    };
    let ev = event(TOPIC, what)
        .with("JobID", child_id.as_str())
        .with("Tick", tick_name(tick));
    tx.append_history(history(parent, None, ev))?;
    Ok(Some(child_id))
}

/// Stores and evaluates the child job for `tick`, and records it as the tick's run.
fn submit_child(
    tx: &Tx<'_>,
    st: &mut EngineState,
    out: &mut Outgoing,
    parent: &Job,
    tick: UnixNanos,
    name: &str,
) -> Result<String, OrchestratorError> {
    let mut child = parent.clone();
    child.schedule = None;
    child.name = name.to_string();
    child.meta.insert(PARENT_META.into(), parent.id.clone());
    child.meta.insert(TICK_META.into(), tick_name(tick));
    let outcome = submit(tx, st, out, child, SubmitOptions::default())?;
    st.metrics.submitted(parent.job_type);
    tx.add_schedule_run(&parent.id, tick, &outcome.job_id)?;
    Ok(outcome.job_id)
}

/// `shoal job run-now`: one child now, outside the schedule (Nomad's `periodic force`). The
/// schedule's own ticks are not moved.
pub(crate) fn run_now(
    tx: &Tx<'_>,
    st: &mut EngineState,
    out: &mut Outgoing,
    job_id: &str,
) -> Result<String, OrchestratorError> {
    let job = super::jobs::active_job(tx, st, job_id)?;
    if job.schedule.is_none() {
        return Err(BadRequest::NotScheduled { job_id: job.id }.into());
    }
    if job.state.state_type.is_terminal() {
        return Err(Conflict::ScheduleEnded {
            job_id: job.id,
            state: job.state.state_type,
        }
        .into());
    }
    let tick = now();
    let name = child_name(&job.name, tick);
    if tx.read().job_by_name(&job.namespace, &name)?.is_some() {
        return Err(Conflict::RunExists { name }.into());
    }
    let child_id = submit_child(tx, st, out, &job, tick, &name)?;
    let ev = event(TOPIC, format!("started {name} (run now)")).with("JobID", child_id.as_str());
    tx.append_history(history(&job, None, ev))?;
    Ok(child_id)
}
