//! Service jobs: `Count` long-running replicas on the best nodes, until stopped.
//!
//! Like batch partitions, except that nothing is ever done: a replica whose execution ended,
//! however it ended (Completed included), is placed again, at the earliest `queue_backoff` after
//! it ended so that a crashing task does not spin. Replicas on lost nodes were failed by the
//! lost-node settlement and so are placed again elsewhere, with no backoff beyond the grace.

use shoal_types::{ExecutionId, JobStateType};

use crate::placement::{self, WhenStuck, Work};
use crate::planner::Planner;

pub(crate) fn reconcile(p: &mut Planner) {
    let count = p.job.count;
    let beyond: Vec<ExecutionId> = p
        .current()
        .filter(|e| e.partition_index >= count && !e.is_terminal())
        .map(|e| e.id.clone())
        .collect();
    for id in beyond {
        p.stop(&id, format!("replica is beyond the job's count of {count}"));
    }

    let (mut work, mut active) = (Vec::new(), false);
    for index in 0..count {
        let execs = p.partition(index);
        let live: Vec<ExecutionId> = execs
            .iter()
            .filter(|e| !e.is_terminal())
            .map(|e| e.id.clone())
            .collect();
        if let Some((_oldest, extra)) = live.split_first() {
            active = true;
            for id in extra {
                p.stop(
                    id,
                    format!("more executions than needed for replica {index}"),
                );
            }
            continue;
        }
        let Some(last) = execs.last() else {
            work.push(Work::fresh(index));
            continue;
        };
        let ended = last.modify_time.max(last.create_time);
        // A replica lost with its node did not crash: it may move at once.
        let lost_with_node = crate::settle::lost_reason(p, &last.node_id).is_some();
        let restart_at = ended.saturating_add(p.config.queue_backoff);
        if !lost_with_node && p.now < restart_at {
            p.retry_at(restart_at);
            continue;
        }
        let mut w = Work::fresh(index);
        w.previous = Some(last.id.clone());
        w.avoid.insert(last.node_id.clone());
        work.push(w);
    }

    let outcome = placement::place_all(p, work);
    let active = active || outcome.placed > 0;
    placement::handle_unplaced(p, &outcome, active, WhenStuck::KeepRunning);
    if active && p.job_state() != JobStateType::Failed {
        p.set_state(JobStateType::Running, "job running");
    }
}
