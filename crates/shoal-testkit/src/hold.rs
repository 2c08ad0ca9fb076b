//! A stand-in engine for long-running work in simulated fleets.

use std::future::Future;
use std::pin::Pin;

use shoal_executors::{ExecutionRequest, Executor, ExecutorError, Exit, LogSink};
use shoal_types::SpecConfig;
use tokio_util::sync::CancellationToken;

/// Answers to engine type `noop` but, unlike the real noop engine, keeps every execution
/// running until it is cancelled: a daemon or service task that costs no process, for
/// simulated fleets of thousands of agents ([`crate::ClusterConfig::held_noop`]).
///
/// Never put it where a user would expect the real noop engine's behaviour (complete at once).
#[derive(Debug, Default, Clone, Copy)]
pub struct HoldExecutor;

impl Executor for HoldExecutor {
    fn engine(&self) -> &'static str {
        "noop"
    }

    fn validate(&self, _engine: &SpecConfig) -> Result<(), ExecutorError> {
        Ok(())
    }

    fn run(
        &self,
        _request: ExecutionRequest,
        logs: LogSink,
        cancel: CancellationToken,
    ) -> Pin<Box<dyn Future<Output = Result<Exit, ExecutorError>> + Send + 'static>> {
        Box::pin(async move {
            // Held open like a real task's output, which ends only when the task does.
            let _output = logs;
            cancel.cancelled().await;
            Err(ExecutorError::Cancelled)
        })
    }
}
