//! The `noop` engine: completes at once with exit code 0. Used by Bacalhau's devstack fixtures
//! (`testdata/jobs/noop.yaml`) and by simulated fleets in benchmarks.

use futures::future::BoxFuture;
use shoal_types::SpecConfig;
use tokio_util::sync::CancellationToken;

use crate::{ExecutionRequest, Executor, ExecutorError, Exit, LogSink};

/// Runs nothing and succeeds.
#[derive(Debug, Default, Clone, Copy)]
pub struct NoopExecutor;

impl Executor for NoopExecutor {
    fn engine(&self) -> &'static str {
        "noop"
    }

    fn validate(&self, _engine: &SpecConfig) -> Result<(), ExecutorError> {
        Ok(())
    }

    fn run(
        &self,
        _request: ExecutionRequest,
        _logs: LogSink,
        cancel: CancellationToken,
    ) -> BoxFuture<'static, Result<Exit, ExecutorError>> {
        Box::pin(async move {
            if cancel.is_cancelled() {
                return Err(ExecutorError::Cancelled);
            }
            Ok(Exit { code: 0 })
        })
    }
}
