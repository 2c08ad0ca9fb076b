//! Ranking: which of the feasible nodes gets the next execution.
//!
//! Two scores, summed, then the node id:
//!
//! 1. **spread** — minus one per live execution of this job already on the node (placements
//!    earlier in the same plan included). It comes first and outweighs capacity, because
//!    partitions on distinct nodes survive the loss of one node and run in parallel.
//! 2. **capacity** — the share of the node's total capacity that would still be free after the
//!    placement, weighted by the dimensions the job asks for (Bacalhau's weights: cpu .4,
//!    memory .3, disk .2, gpu .1). Between 0 and 1, so it only orders nodes of equal spread.
//! 3. **node id** — breaks ties, so that the same input always yields the same plan.

use shoal_types::Resources;

/// A node's score for `request`, given its total and free capacity and this job's live
/// executions on it: higher is better.
pub(crate) fn score_of(max: &Resources, free: &Resources, load: u32, request: &Resources) -> f64 {
    -(load as f64) + capacity_share(max, free, request)
}

/// Weighted share of the node left free after placing `request`, in `0..=1`.
fn capacity_share(max: &Resources, free: &Resources, request: &Resources) -> f64 {
    let after = free.saturating_sub(request);
    let dims = [
        (0.4, request.cpu, after.cpu, max.cpu),
        (
            0.3,
            request.memory as f64,
            after.memory as f64,
            max.memory as f64,
        ),
        (0.2, request.disk as f64, after.disk as f64, max.disk as f64),
        (0.1, request.gpu as f64, after.gpu as f64, max.gpu as f64),
    ];
    // Only what the job asks for matters; a job that asks for nothing is weighed on all.
    let asks_for_something = dims
        .iter()
        .any(|&(_, want, _, max)| want > 0.0 && max > 0.0);
    let (mut total, mut weights) = (0.0, 0.0);
    for (weight, want, left, max) in dims {
        if max <= 0.0 || (asks_for_something && want <= 0.0) {
            continue;
        }
        total += weight * (left / max).clamp(0.0, 1.0);
        weights += weight;
    }
    if weights == 0.0 { 0.0 } else { total / weights }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GIB: u64 = 1 << 30;

    fn max() -> Resources {
        Resources {
            cpu: 4.0,
            memory: 8 * GIB,
            ..Default::default()
        }
    }

    /// The score of a node with `free_gib` free memory and `load` executions of the job.
    fn score(free_gib: u64, load: u32) -> f64 {
        let want = Resources {
            memory: GIB,
            ..Default::default()
        };
        let free = Resources {
            cpu: 4.0,
            memory: free_gib * GIB,
            ..Default::default()
        };
        score_of(&max(), &free, load, &want)
    }

    #[test]
    fn more_free_memory_wins_when_the_job_asks_for_memory() {
        assert!(score(6, 0) > score(2, 0));
    }

    #[test]
    fn spreading_outweighs_free_capacity() {
        assert!(score(2, 0) > score(8, 1));
    }
}
