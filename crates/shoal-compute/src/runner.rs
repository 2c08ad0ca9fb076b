//! Running one admitted execution: inputs, engine, logs, publishing, outcome.
//!
//! Each step moves the execution through the lifecycle of `lifecycle.rs` and is stored with
//! the report announcing it ([`advance`]); however the execution ends, the end is an
//! [`Ended`], which makes the last report.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use shoal_executors::{ExecutionRequest, Executor, ExecutorError, LogSink, Progress};
use shoal_store::{LocalExecution, StoreError};
use shoal_transport::ExecutionReport;
use shoal_types::{ComputeStateType, Job, Resources, RunOutput};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use crate::env::task_env;
use crate::health::HealthCheck;
use crate::inputs::{self, InputContext};
use crate::ledger::Ledger;
use crate::lifecycle::{self, Ended, Event, report};
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
        let ended = execute(&node, &ledger, &mut local).await;
        let event = ended.event();
        let report = ended.into_report(&local.execution);
        if let Err(e) = advance(&ledger, &mut local, event, report) {
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

/// Moves the execution by `event` and stores the move with the report announcing it.
fn advance(
    ledger: &Ledger,
    local: &mut LocalExecution,
    event: Event,
    report: ExecutionReport,
) -> Result<(), StoreError> {
    lifecycle::advance(local, event);
    ledger.record(local, report)
}

/// The execution's job: admission refuses executions that arrive without one.
fn job(local: &LocalExecution) -> &Job {
    local
        .execution
        .job
        .as_deref()
        .expect("admitted executions carry their job")
}

/// An execution made ready to start: inputs staged, engine found, request written.
struct Staged {
    executor: Arc<dyn Executor>,
    request: ExecutionRequest,
    /// Secret values in the request's env, masked in the output.
    secrets: Vec<String>,
    cancel: CancellationToken,
    exec_dir: PathBuf,
}

async fn execute(node: &NodeContext, ledger: &Ledger, local: &mut LocalExecution) -> Ended {
    let Staged {
        executor,
        request,
        secrets,
        cancel,
        exec_dir,
    } = match stage(node, local).await {
        Ok(staged) => staged,
        Err(ended) => return ended,
    };
    let results_dir = request.results_dir.clone();
    let health = HealthCheck::of(job(local), &request);
    let health_cancel = cancel.clone();
    if let Err(ended) = prepare(node, ledger, local, executor.as_ref(), &request, &cancel).await {
        return ended;
    }
    let started = report(&local.execution, ComputeStateType::Running, "", false);
    if let Err(err) = advance(ledger, local, Event::Started, started) {
        tracing::warn!(error = %err, "could not record the start of an execution");
    }
    let (sink, rx) = LogSink::channel();
    let answer = sink.answer_slot();
    let live = node.hub.open(local.execution.id.as_str());
    let drain = {
        let results_dir = results_dir.clone();
        let exec_dir = exec_dir.clone();
        tokio::spawn(async move { logs::drain(rx, &exec_dir, &results_dir, live, &secrets).await })
    };
    // While the engine runs, the log goes to the orchestrator every `log_ship_interval`, so
    // it survives the node even for an execution that never ends (a daemon).
    let mut shipped = logs::Shipped::default();
    let every = node.cfg.log_ship_interval;
    let mut tick = tokio::time::interval(every.max(Duration::from_millis(10)));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tick.tick().await;
    let run = executor.run(request, sink, cancel);
    tokio::pin!(run);
    let outcome = loop {
        tokio::select! {
            outcome = &mut run => break outcome,
            _ = tick.tick(), if !every.is_zero() => {
                shipped = ship_logs(ledger, local, &exec_dir, shipped, false).await;
            }
        }
    };
    let drained = drain.await;
    ship_logs(ledger, local, &exec_dir, shipped, true).await;
    let (captured, unkept) = match drained {
        Ok(Ok(c)) => (c, None),
        Ok(Err(err)) => {
            tracing::warn!(error = %err, "logs could not be written");
            let msg = format!(
                "the output of execution {} could not be kept in {} on node {}: {err}; check that the node's data dir is writable and has space",
                local.execution.id,
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
            Ended::Failed {
                message: msg,
                retryable: true,
                output: Some(output),
            }
        }
        Ok(exit) => {
            output.exit_code = exit.code;
            if exit.code == 0
                && let Some(check) = &health
                && let Err(msg) = check.run(node, &health_cancel).await
            {
                // The command did its part, but the node is not healthy after it: the
                // rollout counts the node as failed (not retried: the next try would find
                // the same node).
                output.error_msg = msg.clone();
                return Ended::Failed {
                    message: msg,
                    retryable: false,
                    output: Some(output),
                };
            }
            output.answer = answer.take().map(Box::new);
            let _ = tokio::fs::write(results_dir.join("exitCode"), exit.code.to_string()).await;
            publish(node, ledger, local, &results_dir, output).await
        }
        Err(ExecutorError::Cancelled) => Ended::cancelled("execution cancelled"),
        Err(err) => {
            output.error_msg = err.to_string();
            output.exit_code = -1;
            Ended::Failed {
                message: err.to_string(),
                retryable: err.is_retryable(),
                output: Some(output),
            }
        }
    }
}

/// Puts the execution's log written since `shipped` in the outbox for the orchestrator to
/// keep: while it runs (`finished` false), and once more at its end, ahead of the report that
/// ends it, so `job logs` works after the node is gone. A log that cannot be read is only
/// warned about: the node still has it, and the results hold stdout and stderr. Returns how
/// far the log is shipped.
async fn ship_logs(
    ledger: &Ledger,
    local: &LocalExecution,
    exec_dir: &Path,
    shipped: logs::Shipped,
    finished: bool,
) -> logs::Shipped {
    let (execution, job, dir) = (
        local.execution.id.to_string(),
        local.execution.job_id.to_string(),
        exec_dir.to_path_buf(),
    );
    let read = tokio::task::spawn_blocking(move || {
        logs::shipment(&dir, &execution, &job, shipped, logs::MAX_SHIPPED, finished)
    })
    .await;
    let sent = match read {
        Ok(Ok((pieces, next))) => ledger
            .ship_logs(pieces)
            .map(|()| next)
            .map_err(|e| e.to_string()),
        Ok(Err(e)) => Err(e.to_string()),
        Err(e) => Err(e.to_string()),
    };
    sent.unwrap_or_else(|error| {
        tracing::warn!(execution = %local.execution.id, %error, "the execution's log stays on this node only");
        shipped
    })
}

/// Stages the inputs and writes the engine's request. Nothing is created here: inputs,
/// engines and the log drain each make the folders they write to, when they write.
async fn stage(node: &NodeContext, local: &LocalExecution) -> Result<Staged, Ended> {
    let e = &local.execution;
    let job = job(local);
    let task = job.task();
    let Some(cancel) = node.running.token(e.id.as_str()) else {
        return Err(Ended::cancelled("cancelled before it started"));
    };
    // References to what only this node has (secrets, host variables) fail before any input
    // is fetched; the same error would repeat on a retry here.
    let env = task_env(job, e, &node.cfg).map_err(|msg| Ended::failed(msg, false))?;
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
            return Err(Ended::cancelled("execution cancelled while staging inputs"));
        }
    };
    let prepared = match staged {
        Ok(p) => p,
        Err(err) => {
            tracing::info!(error = %err, "inputs could not be staged");
            return Err(Ended::failed(err.to_string(), err.retryable()));
        }
    };
    let Some(executor) = node.executors.get(&task.engine.kind) else {
        let msg = format!("engine {} disappeared from this node", task.engine.kind);
        return Err(Ended::failed(msg, true));
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
        env: env.vars,
        inputs: prepared,
        results_dir,
        result_paths: task.result_paths.clone(),
        resources: e
            .allocated_resources
            .tasks
            .values()
            .fold(Resources::default(), |a, r| a.add(r)),
        network: task.network.clone(),
        timeout: (limit > 0).then(|| Duration::from_secs(limit)),
    };
    Ok(Staged {
        executor,
        request,
        secrets: env.secrets,
        cancel,
        exec_dir,
    })
}

/// The task exited: its results go where its publisher says, and the execution completes.
async fn publish(
    node: &NodeContext,
    ledger: &Ledger,
    local: &mut LocalExecution,
    results_dir: &Path,
    mut output: RunOutput,
) -> Ended {
    let publishes = job(local)
        .task()
        .publisher
        .as_ref()
        .is_some_and(|p| !p.kind.trim().is_empty() && !p.is("noop"));
    if publishes {
        let publishing = report(
            &local.execution,
            ComputeStateType::Publishing,
            "publishing results",
            false,
        );
        if let Err(err) = advance(ledger, local, Event::Publishing, publishing) {
            tracing::warn!(error = %err, "could not record the publishing phase");
        }
    }
    let job = job(local);
    let cx = PublishContext {
        node_id: &node.node_id,
        job_id: &job.id,
        execution_id: local.execution.id.as_str(),
        results_dir,
        local_dir: node.local_results_dir(),
        policy: &node.cfg.transfer,
    };
    match publish::publish(job.task().publisher.as_ref(), &cx).await {
        Ok(published) => Ended::Completed { output, published },
        Err(err) => {
            tracing::warn!(error = %err, "results could not be published");
            let retryable = matches!(err, PublishError::Transient(_));
            output.error_msg = err.to_string();
            Ended::Failed {
                message: err.to_string(),
                retryable,
                output: Some(output),
            }
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
    local: &mut LocalExecution,
    executor: &dyn Executor,
    request: &ExecutionRequest,
    cancel: &CancellationToken,
) -> Result<(), Ended> {
    let (tx, mut rx) = mpsc::unbounded_channel::<String>();
    let progress: Progress = Arc::new(move |line| {
        let _ = tx.send(line);
    });
    let mut send = |line: &str| {
        let r = report(
            &local.execution,
            ComputeStateType::BidAccepted,
            &format!("preparing: {line}"),
            false,
        );
        if let Err(err) = advance(ledger, local, Event::Progress, r) {
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
    match outcome {
        Some(Ok(())) => Ok(()),
        Some(Err(ExecutorError::Cancelled)) => {
            Err(Ended::cancelled("execution cancelled while preparing"))
        }
        Some(Err(err)) => Err(Ended::failed(
            format!("preparing failed: {err}"),
            err.is_retryable(),
        )),
        // Another node may have the image already or a faster link: worth a retry there.
        None => Err(Ended::failed(
            format!(
                "preparing (image pull) took longer than node {}'s limit of {}s; load the image on the node beforehand (docker load) or raise the node's --prepare-timeout",
                node.node_id,
                limit.as_secs()
            ),
            true,
        )),
    }
}
