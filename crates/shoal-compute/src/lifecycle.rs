//! The life of an execution on this node, and the reports that announce each step.

use shoal_transport::ExecutionReport;
use shoal_types::{ComputeStateType, Execution};

/// A report about an execution.
pub(crate) fn report(
    e: &Execution,
    state: ComputeStateType,
    message: &str,
    retryable: bool,
) -> ExecutionReport {
    ExecutionReport {
        execution_id: e.id.to_string(),
        job_id: e.job_id.to_string(),
        state,
        message: message.to_string(),
        retryable,
        run_output: None,
        published: None,
    }
}
