//! Batch jobs: `Count` partitions, each run to completion once.
//!
//! Each partition is in exactly one of these buckets, decided from its executions of the
//! current job version:
//!
//! ```text
//!   any Completed (any exit code)        → done         (a non-zero exit is a result, not a failure)
//!   a live execution                     → in progress  (extra live ones are stopped)
//!   latest Failed and not retryable      → job fails    (a user error never succeeds elsewhere)
//!   attempts ≥ max_attempts              → job fails
//!   otherwise                            → place a replacement, away from nodes that failed it
//! ```
//!
//! The job completes when every partition is done, and fails at `TotalTimeout`. Timeouts of
//! single executions are enforced by the compute node, not here.

use shoal_types::{ComputeStateType, Execution, ExecutionId, JobStateType};

use crate::placement::{self, WhenStuck, Work};
use crate::planner::Planner;

const SECOND: i64 = 1_000_000_000;

/// A partition's bucket.
enum Partition {
    Done {
        exit_code: i32,
        extra: Vec<ExecutionId>,
    },
    InProgress {
        extra: Vec<ExecutionId>,
    },
    Failed(String),
    Retry(Work),
}

pub(crate) fn reconcile(p: &mut Planner) {
    let total_timeout = p.job.tasks.first().map_or(0, |t| t.timeouts.total_timeout);
    if total_timeout > 0 {
        let deadline = p
            .job
            .create_time
            .saturating_add((total_timeout as i64).saturating_mul(SECOND));
        if p.now >= deadline {
            p.fail(format!("job timed out after {total_timeout}s"));
            return;
        }
        p.retry_at(deadline);
    }
    let count = p.job.count;
    stop_beyond_count(p, count);
    if count == 0 {
        p.set_state(JobStateType::Completed, "job completed");
        return;
    }

    let (mut work, mut done, mut nonzero, mut active) = (Vec::new(), 0, 0, false);
    for index in 0..count {
        match classify(p, index) {
            Partition::Done { exit_code, extra } => {
                done += 1;
                nonzero += u32::from(exit_code != 0);
                for id in extra {
                    p.stop(&id, format!("partition {index} already completed"));
                }
            }
            Partition::InProgress { extra } => {
                active = true;
                for id in extra {
                    p.stop(
                        &id,
                        format!("more executions than needed for partition {index}"),
                    );
                }
            }
            Partition::Failed(message) => {
                p.fail(message);
                return;
            }
            Partition::Retry(w) => work.push(w),
        }
    }
    if done == count {
        p.set_state(JobStateType::Completed, completion_message(count, nonzero));
        return;
    }

    let outcome = placement::place_all(p, work);
    let active = active || outcome.placed > 0;
    placement::handle_unplaced(p, &outcome, active, WhenStuck::FailIfImpossible);
    if active && p.job_state() != JobStateType::Failed {
        p.set_state(JobStateType::Running, "job running");
    }
}

fn classify(p: &Planner, index: u32) -> Partition {
    let execs = p.partition(index);
    let live: Vec<ExecutionId> = execs
        .iter()
        .filter(|e| !e.is_terminal())
        .map(|e| e.id.clone())
        .collect();
    if let Some(done) = execs
        .iter()
        .find(|e| e.compute_state.state_type == ComputeStateType::Completed)
    {
        return Partition::Done {
            exit_code: done.exit_code().unwrap_or(0),
            extra: live,
        };
    }
    if let Some((_oldest, extra)) = live.split_first() {
        return Partition::InProgress {
            extra: extra.to_vec(),
        };
    }
    let failures: Vec<&Execution> = execs.iter().copied().filter(|e| e.is_terminal()).collect();
    let Some(latest) = failures.last() else {
        return Partition::Retry(Work::fresh(index));
    };
    if latest.compute_state.state_type == ComputeStateType::Failed
        && !latest.compute_state.is_retryable()
    {
        return Partition::Failed(format!(
            "execution {} on {} failed: {}",
            latest.id,
            latest.node_id,
            error_of(latest)
        ));
    }
    let attempts = failures.len();
    if attempts >= p.config.max_attempts as usize {
        return Partition::Failed(format!(
            "partition {index} failed {attempts} times; last error: {}",
            error_of(latest)
        ));
    }
    let mut work = Work::fresh(index);
    work.previous = Some(latest.id.clone());
    for failed in &failures {
        work.avoid.insert(failed.node_id.clone());
        // A node that refused the partition at admission will refuse it again: its policy
        // (allow-lists, local capacity) is its own and does not change between attempts.
        if failed.compute_state.state_type == ComputeStateType::AskForBidRejected {
            let why = format!(
                "node refused partition {index} at admission: {}",
                error_of(failed)
            );
            work.exclude.insert(failed.node_id.clone(), why);
        }
    }
    Partition::Retry(work)
}

/// Executions of partitions the job no longer has (its count went down in an update).
fn stop_beyond_count(p: &mut Planner, count: u32) {
    let extra: Vec<(ExecutionId, u32)> = p
        .current()
        .filter(|e| e.partition_index >= count && !e.is_terminal())
        .map(|e| (e.id.clone(), e.partition_index))
        .collect();
    for (id, index) in extra {
        p.stop(
            &id,
            format!("partition {index} is beyond the job's count of {count}"),
        );
    }
}

fn completion_message(count: u32, nonzero: u32) -> String {
    if nonzero == 0 {
        "job completed".to_string()
    } else {
        format!("completed; {nonzero} of {count} partitions exited non-zero")
    }
}

/// The most useful text about why an execution ended.
pub(crate) fn error_of(e: &Execution) -> String {
    let message = e.compute_state.message.trim();
    if !message.is_empty() {
        return message.to_string();
    }
    match e.run_output.as_ref().map(|o| o.error_msg.trim()) {
        Some(msg) if !msg.is_empty() => msg.to_string(),
        _ => format!("{} without a message", e.compute_state.state_type),
    }
}
