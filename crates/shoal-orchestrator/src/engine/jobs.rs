//! Job commands: submit (a new job or a new version of a named one) and stop.

use shoal_store::Tx;
use shoal_types::rollout::{HealthType, Rollout};
use shoal_types::{Job, JobId, JobState, JobStateType, JobType};

use crate::clock::{event, history, now};
use crate::command::{SubmitOptions, SubmitOutcome};
use crate::error::{BadRequest, Conflict, NotFound, OrchestratorError};
use crate::evaluate::evaluate;
use crate::state::{EngineState, Outgoing, write_job};

/// Stores a submitted job (a name already taken makes it the next version of that job),
/// records it in the history and evaluates it.
pub(super) fn submit(
    tx: &Tx<'_>,
    st: &mut EngineState,
    out: &mut Outgoing,
    mut job: Job,
    options: SubmitOptions,
) -> Result<SubmitOutcome, OrchestratorError> {
    if let Some(rollout) = &job.rollout {
        // Refused rather than ignored: waves the user asked for must not turn into all at once.
        if let Some(what) = not_carried_out(job.job_type, rollout) {
            return Err(BadRequest::RolloutNotCarriedOut {
                name: job.name,
                what,
            }
            .into());
        }
    }
    let t = now();
    let existing = if job.name.is_empty() {
        None
    } else {
        tx.read().job_by_name(&job.namespace, &job.name)?
    };
    let submission = match existing {
        Some(old) => {
            if !options.force && same_spec(&old, &job) {
                return Err(Conflict::SameSpec {
                    name: old.name,
                    job_id: old.id,
                    version: old.version,
                    state: old.state.state_type,
                }
                .into());
            }
            job.id = old.id.clone();
            job.version = old.version + 1;
            job.revision = old.revision + 1;
            job.create_time = old.create_time;
            event("Submission", "Job updated").with("Version", job.version.to_string())
        }
        None => {
            job.id = JobId::generate().to_string();
            if job.name.is_empty() {
                job.name = job.id.clone();
            }
            job.version = 1;
            job.revision = 1;
            job.create_time = t;
            event("Submission", "Job submitted")
        }
    };
    job.state = JobState::new(JobStateType::Pending, "");
    job.modify_time = t;
    job.meta.insert(
        "bacalhau.org/orchestrator.id".into(),
        st.cfg.node_id.clone(),
    );
    write_job(tx, st, &job)?;
    if job.job_type == JobType::Daemon {
        // Only a daemon rollout reverts (to the version before it), so only daemon versions
        // are kept: batch submissions, the busy path, write the job once.
        tx.keep_job_version(&job)?;
    }
    tx.append_history(history(&job, None, submission))?;
    evaluate(tx, st, out, &job.id)?;
    let stored = st.active.job(tx, &job.id)?.unwrap_or(&job);
    Ok(SubmitOutcome {
        job_id: stored.id.clone(),
        state: stored.state.clone(),
        version: stored.version,
    })
}

/// The part of a `Rollout` this orchestrator cannot carry out yet, if any.
fn not_carried_out(job_type: JobType, rollout: &Rollout) -> Option<String> {
    if job_type == JobType::Service {
        return Some(
            "rollouts of service jobs (ops and daemon jobs roll out; for a service, submit the new version without Rollout)".into(),
        );
    }
    match (rollout.health.kind, job_type) {
        (HealthType::ExitCode, _) | (HealthType::Command, JobType::Ops) => None,
        (HealthType::Command, _) => Some(
            "Rollout.Health.Type command for daemon jobs (a daemon is healthy when it has run for MinHealthy without exiting: use Type: exit_code; command checks run after an ops job's command)".into(),
        ),
        (HealthType::Http, _) => Some(
            "Rollout.Health.Type http (use Type: command with a check the node allows, e.g. Command: /usr/bin/curl -fsS http://localhost:8080/health, on an ops job)".into(),
        ),
    }
}

/// Whether two job specs are the same for an update: system fields (id, state, version,
/// revision, times) and the orchestrator's own `bacalhau.org/` metadata are ignored.
fn same_spec(old: &Job, new: &Job) -> bool {
    fn comparable(job: &Job) -> Job {
        let mut j = job.clone();
        j.id.clear();
        j.state = JobState::new(JobStateType::Pending, "");
        j.version = 0;
        j.revision = 0;
        j.create_time = 0;
        j.modify_time = 0;
        j.meta.retain(|k, _| !k.starts_with("bacalhau.org/"));
        j
    }
    serde_json::to_value(comparable(old)).ok() == serde_json::to_value(comparable(new)).ok()
}

/// The job as the engine holds it, or `JobGone` when it is no longer stored.
pub(super) fn active_job(
    tx: &Tx<'_>,
    st: &mut EngineState,
    job_id: &str,
) -> Result<Job, OrchestratorError> {
    match st.active.job(tx, job_id)? {
        Some(job) => Ok(job.clone()),
        None => Err(NotFound::JobGone {
            job_id: job_id.to_string(),
        }
        .into()),
    }
}

/// Stops a job: a job already stopped stays as it is, one that ended otherwise is a conflict.
pub(super) fn stop(
    tx: &Tx<'_>,
    st: &mut EngineState,
    out: &mut Outgoing,
    job_id: &str,
    reason: &str,
) -> Result<(), OrchestratorError> {
    let mut job = active_job(tx, st, job_id)?;
    match job.state.state_type {
        JobStateType::Stopped => return Ok(()),
        s if s.is_terminal() => {
            return Err(Conflict::AlreadyEnded {
                job_id: job.id,
                state: s,
            }
            .into());
        }
        _ => {}
    }
    job.state = JobState::new(JobStateType::Stopped, reason);
    job.revision += 1;
    job.modify_time = now();
    write_job(tx, st, &job)?;
    let ev = event("State Update", reason).with("NewState", "Stopped");
    tx.append_history(history(&job, None, ev))?;
    evaluate(tx, st, out, job_id)
}

/// Promotes a job whose rollout awaits promotion after its canaries.
pub(super) fn promote(
    tx: &Tx<'_>,
    st: &mut EngineState,
    out: &mut Outgoing,
    job_id: &str,
) -> Result<(), OrchestratorError> {
    let job = active_job(tx, st, job_id)?;
    let not_waiting = |why: String| BadRequest::NotAwaitingPromotion {
        job_id: job.id.clone(),
        why,
    };
    if job.rollout.is_none() {
        return Err(not_waiting("it has no Rollout block".into()).into());
    }
    let Some(mut state) = tx
        .read()
        .rollout(&job.id)?
        .filter(|s| s.job_version == job.version)
    else {
        return Err(not_waiting(format!(
            "the rollout of version {} has not started",
            job.version
        ))
        .into());
    };
    if let Some(outcome) = &state.outcome {
        return Err(not_waiting(format!("its rollout is over ({outcome})")).into());
    }
    if state.promoted {
        return Err(not_waiting(format!("it was promoted already; {}", state.phase)).into());
    }
    if !state.awaiting_promotion() {
        return Err(not_waiting(format!(
            "{}; promote once its canaries have settled",
            state.phase
        ))
        .into());
    }
    state.promoted = true;
    tx.put_rollout(&job.id, &state)?;
    let ev = event("Rollout", "promoted: the rest of the nodes follow in waves");
    tx.append_history(history(&job, None, ev))?;
    evaluate(tx, st, out, &job.id)
}
