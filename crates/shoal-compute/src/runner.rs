//! Running one admitted execution: inputs, engine, logs, outcome.

use std::sync::Arc;
use std::time::Duration;

use shoal_executors::{ExecutionRequest, Executor, ExecutorError, LogSink, Progress};
use shoal_store::{LocalExecution, LocalState};
use shoal_transport::ExecutionReport;
use shoal_types::{ComputeStateType, Resources, RunOutput};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use crate::env::task_env;
use crate::inputs::{self, InputContext};
use crate::ledger::Ledger;
use crate::lifecycle::report;
use crate::logs;
use crate::node::NodeContext;
use crate::publish::{self, PublishContext, PublishError};

/// Runs an execution to its end and records the outcome. Never panics on task failure: every
/// way an execution can end becomes a report.
pub(crate) async fn run(node: Arc<NodeContext>, ledger: Arc<Ledger>, mut local: LocalExecution) {
    let id = local.execution.id.to_string();
    let span =
        tracing::info_span!("execution", execution_id = %id, job_id = %local.execution.job_id);
    async {
        let (state, report) = execute(&node, &ledger, &local).await;
        local.state = state;
        if let Err(e) = ledger.record(&local, report) {
            tracing::error!(error = %e, "could not record the end of an execution; it will be reported failed after a restart");
        }
        node.hub.close(&id);
        // After the end is on its way to the orchestrator, and before the execution's
        // resources are free again: a removed container holds none.
        let engine = local.execution.job.as_deref().map(|j| &j.task().engine.kind);
        if let Some(executor) = engine.and_then(|kind| node.executors.get(kind)) {
            executor.clean_up(&id).await;
        }
        node.running.release(&id);
    }
    .instrument(span)
    .await
}

async fn execute(
    node: &NodeContext,
    ledger: &Ledger,
    local: &LocalExecution,
) -> (LocalState, shoal_transport::ExecutionReport) {
    let e = &local.execution;
    let job = e
        .job
        .as_deref()
        .expect("admitted executions carry their job");
    let task = job.task();
    let cancel = match node.running.token(e.id.as_str()) {
        Some(token) => token,
        None => {
            return (
                LocalState::Cancelled,
                report(
                    e,
                    ComputeStateType::Cancelled,
                    "cancelled before it started",
                    false,
                ),
            );
        }
    };
    // Nothing is created here: inputs, engines and the log drain each make the folders they
    // write to, when they write.
    let exec_dir = node.exec_dir(e.id.as_str());
    let results_dir = exec_dir.join("results");
    let cx = InputContext {
        staging: exec_dir.join("inputs"),
        allowed: node.cfg.allowed_paths.clone(),
        policy: node.cfg.transfer.clone(),
        http: node.http.clone(),
        pause: Default::default(),
    };
    let staged = tokio::select! {
        r = inputs::prepare(&task.input_sources, &cx) => r,
        _ = cancel.cancelled() => {
            return (
                LocalState::Cancelled,
                report(e, ComputeStateType::Cancelled, "execution cancelled while staging inputs", false),
            );
        }
    };
    let prepared = match staged {
        Ok(p) => p,
        Err(err) => {
            tracing::info!(error = %err, "inputs could not be staged");
            return (
                LocalState::Failed,
                report(
                    e,
                    ComputeStateType::Failed,
                    &err.to_string(),
                    err.retryable(),
                ),
            );
        }
    };
    let Some(executor) = node.executors.get(&task.engine.kind) else {
        let msg = format!("engine {} disappeared from this node", task.engine.kind);
        return (
            LocalState::Failed,
            report(e, ComputeStateType::Failed, &msg, true),
        );
    };
    let timeouts = task.timeouts;
    let limit = if timeouts.execution_timeout > 0 {
        timeouts.execution_timeout
    } else {
        timeouts.total_timeout
    };
    let request = ExecutionRequest {
        job_id: job.id.clone(),
        execution_id: e.id.to_string(),
        job_type: job.job_type,
        engine: task.engine.clone(),
        env: task_env(job, e),
        inputs: prepared,
        results_dir: results_dir.clone(),
        result_paths: task.result_paths.clone(),
        resources: e
            .allocated_resources
            .tasks
            .values()
            .fold(Resources::default(), |a, r| a.add(r)),
        network: task.network.clone(),
        timeout: (limit > 0).then(|| Duration::from_secs(limit)),
    };
    if let Err(ended) = prepare(node, ledger, local, executor.as_ref(), &request, &cancel).await {
        return ended;
    }
    let running = LocalExecution {
        execution: e.clone(),
        state: LocalState::Running,
    };
    if let Err(err) = ledger.record(&running, report(e, ComputeStateType::Running, "", false)) {
        tracing::warn!(error = %err, "could not record the start of an execution");
    }
    let (sink, rx) = LogSink::channel();
    let answer = sink.answer_slot();
    let live = node.hub.open(e.id.as_str());
    let drain = {
        let (exec_dir, results_dir) = (exec_dir.clone(), results_dir.clone());
        tokio::spawn(async move { logs::drain(rx, &exec_dir, &results_dir, live).await })
    };
    let outcome = executor.run(request, sink, cancel).await;
    let (captured, unkept) = match drain.await {
        Ok(Ok(c)) => (c, None),
        Ok(Err(err)) => {
            tracing::warn!(error = %err, "logs could not be written");
            let msg = format!(
                "the output of execution {} could not be kept in {} on node {}: {err}; check that the node's data dir is writable and has space",
                e.id,
                results_dir.display(),
                node.node_id
            );
            (Default::default(), Some(msg))
        }
        Err(_) => (Default::default(), None),
    };
    let mut output = RunOutput {
        stdout: captured.stdout,
        stdout_truncated: captured.stdout_truncated,
        stderr: captured.stderr,
        stderr_truncated: captured.stderr_truncated,
        exit_code: 0,
        error_msg: String::new(),
        answer: None,
    };
    match outcome {
        // A run whose output was lost must not pass for a complete one.
        Ok(exit) if let Some(msg) = unkept => {
            output.exit_code = exit.code;
            output.error_msg = msg.clone();
            let mut r = report(e, ComputeStateType::Failed, &msg, true);
            r.run_output = Some(output);
            (LocalState::Failed, r)
        }
        Ok(exit) => {
            output.exit_code = exit.code;
            output.answer = answer.take().map(Box::new);
            let _ = tokio::fs::write(results_dir.join("exitCode"), exit.code.to_string()).await;
            let publisher = task.publisher.as_ref();
            if publisher.is_some_and(|p| !p.kind.trim().is_empty() && !p.is("noop")) {
                let publishing =
                    report(e, ComputeStateType::Publishing, "publishing results", false);
                if let Err(err) = ledger.record(&running, publishing) {
                    tracing::warn!(error = %err, "could not record the publishing phase");
                }
            }
            let cx = PublishContext {
                node_id: &node.node_id,
                job_id: &job.id,
                execution_id: e.id.as_str(),
                results_dir: &results_dir,
                local_dir: node.local_results_dir(),
                policy: &node.cfg.transfer,
            };
            match publish::publish(publisher, &cx).await {
                Ok(published) => {
                    let mut r = report(e, ComputeStateType::Completed, "", false);
                    r.run_output = Some(output);
                    r.published = published;
                    (LocalState::Completed, r)
                }
                Err(err) => {
                    tracing::warn!(error = %err, "results could not be published");
                    let retryable = matches!(err, PublishError::Transient(_));
                    output.error_msg = err.to_string();
                    let mut r = report(e, ComputeStateType::Failed, &err.to_string(), retryable);
                    r.run_output = Some(output);
                    (LocalState::Failed, r)
                }
            }
        }
        Err(ExecutorError::Cancelled) => (
            LocalState::Cancelled,
            report(e, ComputeStateType::Cancelled, "execution cancelled", false),
        ),
        Err(err) => {
            output.error_msg = err.to_string();
            output.exit_code = -1;
            let mut r = report(
                e,
                ComputeStateType::Failed,
                &err.to_string(),
                err.is_retryable(),
            );
            r.run_output = Some(output);
            (LocalState::Failed, r)
        }
    }
}

/// How often at most a progress line of the `Preparing` phase becomes a report.
const PROGRESS_EVERY: Duration = Duration::from_secs(1);

/// The `Preparing` phase: the engine fetches what the task needs (a container image) under the
/// node's preparation limit, which is separate from the run-time limit. Progress lines are sent
/// as `BidAccepted` reports (the task has not started): the first at once, then at most one per
/// [`PROGRESS_EVERY`], and the last one, so that a long pull shows in the job's history without
/// flooding it. An engine with nothing to fetch sends nothing, and this costs no report.
async fn prepare(
    node: &NodeContext,
    ledger: &Ledger,
    local: &LocalExecution,
    executor: &dyn Executor,
    request: &ExecutionRequest,
    cancel: &CancellationToken,
) -> Result<(), (LocalState, ExecutionReport)> {
    let e = &local.execution;
    let (tx, mut rx) = mpsc::unbounded_channel::<String>();
    let progress: Progress = Arc::new(move |line| {
        let _ = tx.send(line);
    });
    let send = |line: &str| {
        let r = report(
            e,
            ComputeStateType::BidAccepted,
            &format!("preparing: {line}"),
            false,
        );
        if let Err(err) = ledger.record(local, r) {
            tracing::warn!(error = %err, "could not record preparation progress");
        }
    };
    let limit = node.cfg.prepare_timeout;
    let work = executor.prepare(request, progress);
    let deadline = tokio::time::sleep(limit);
    tokio::pin!(work, deadline);
    let mut last_sent: Option<tokio::time::Instant> = None;
    let mut unsent: Option<String> = None;
    let outcome = loop {
        tokio::select! {
            done = &mut work => break Some(done),
            Some(line) = rx.recv() => {
                if last_sent.is_none_or(|t| t.elapsed() >= PROGRESS_EVERY) {
                    send(&line);
                    last_sent = Some(tokio::time::Instant::now());
                    unsent = None;
                } else {
                    unsent = Some(line);
                }
            }
            () = &mut deadline => break None,
            () = cancel.cancelled() => break Some(Err(ExecutorError::Cancelled)),
        }
    };
    while let Ok(line) = rx.try_recv() {
        unsent = Some(line);
    }
    if let Some(line) = unsent {
        send(&line);
    }
    let failed = |message: &str, retryable: bool| {
        (
            LocalState::Failed,
            report(e, ComputeStateType::Failed, message, retryable),
        )
    };
    match outcome {
        Some(Ok(())) => Ok(()),
        Some(Err(ExecutorError::Cancelled)) => Err((
            LocalState::Cancelled,
            report(
                e,
                ComputeStateType::Cancelled,
                "execution cancelled while preparing",
                false,
            ),
        )),
        Some(Err(err)) => Err(failed(
            &format!("preparing failed: {err}"),
            err.is_retryable(),
        )),
        // Another node may have the image already or a faster link: worth a retry there.
        None => Err(failed(
            &format!(
                "preparing (image pull) took longer than node {}'s limit of {}s; load the image on the node beforehand (docker load) or raise the node's --prepare-timeout",
                node.node_id,
                limit.as_secs()
            ),
            true,
        )),
    }
}
