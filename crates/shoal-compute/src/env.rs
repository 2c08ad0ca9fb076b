//! The environment every task sees.

use std::collections::BTreeMap;

use shoal_types::{Execution, Job};

/// Task env plus the system variables Bacalhau defines, each with a `SHOAL_*` twin.
pub(crate) fn task_env(job: &Job, execution: &Execution) -> BTreeMap<String, String> {
    let mut env = job.task().env.clone();
    let system = [
        ("JOB_ID", job.id.clone()),
        ("EXECUTION_ID", execution.id.to_string()),
        ("JOB_TYPE", job.job_type.to_string()),
        ("PARTITION_INDEX", execution.partition_index.to_string()),
        ("PARTITION_COUNT", job.count.max(1).to_string()),
        ("NODE_ID", execution.node_id.to_string()),
    ];
    for (name, value) in system {
        env.insert(format!("BACALHAU_{name}"), value.clone());
        env.insert(format!("SHOAL_{name}"), value);
    }
    env
}
