//! One execution from create to remove.
//!
//! ```text
//!  create ──> attach ──> start ──> running ──┬─ exits ─────────────> drain output ─> inspect ─> Ok(Exit)
//!                                            │                                     (OOMKilled ─> OutOfMemory)
//!                                            ├─ time limit passes ─> stop (1 s) ─> drain output ─> Timeout
//!                                            └─ cancel fires ──────> stop (1 s) ─> drain output ─> Cancelled
//!                        then, once the agent has recorded the end: clean_up ─> remove
//! ```
//!
//! On every path the run returns with the container stopped and its logs drained, and leaves
//! its removal to [`Executor::clean_up`](crate::Executor::clean_up). If the future itself is
//! dropped half-way, a guard removes the container in the background; a crash of the whole
//! agent leaves it to `cleanup_orphans` at the next start.
//!
//! Daemon calls of an execution that ends by itself, in order: `GET /images/{name}/json` (only
//! when [`Executor::prepare`](crate::Executor::prepare) has not checked the image for this
//! execution), `POST /containers/create`, `POST .../attach` (the output stream, as
//! `docker run` attaches), `POST .../start`, `POST .../wait` while the output streams,
//! `GET .../json` (exit code and OOM flag), then in `clean_up` `DELETE ...?force&v`.
//! `bench/docker.sh`, as a direct client of the Engine API, makes the same calls except that
//! it reads the output once with `GET .../logs` after the wait; the test
//! `prepared_execution_makes_the_same_daemon_calls_as_a_direct_client` pins them. Each phase's
//! time is logged at debug level (`docker execution phase done`).

use std::time::{Duration, Instant};

use bollard::Docker;
use bollard::container::{AttachContainerResults, LogOutput};
use bollard::errors::Error as BollardError;
use bollard::models::{ContainerCreateBody, ContainerState};
use bollard::query_parameters::{
    AttachContainerOptionsBuilder, CreateContainerOptionsBuilder, RemoveContainerOptionsBuilder,
    StopContainerOptionsBuilder, WaitContainerOptions,
};
use futures::StreamExt;
use shoal_types::resources::format_bytes;
use tokio_util::sync::CancellationToken;
use tracing::{Instrument, debug, info_span, warn};

use super::container::{container_body, container_name, result_dirs};
use super::daemon::{Daemon, daemon_message, daemon_status};
use super::params::DockerParams;
use super::{DockerExecutor, image};
use crate::{ExecutionRequest, ExecutorError, Exit, LogSink, Stream};

/// Grace period between SIGTERM and SIGKILL when an execution is stopped, as Bacalhau does.
const STOP_GRACE_S: i32 = 1;
/// How long logs may keep flowing after the container ended before they are cut off.
const LOG_DRAIN_LIMIT: Duration = Duration::from_secs(30);

/// How the container stopped running, before its state is read.
enum Ending {
    Exited,
    TimedOut(Duration),
    Cancelled,
}

/// Runs one execution; see the module docs for the paths it takes.
pub(super) async fn execute(
    executor: DockerExecutor,
    request: ExecutionRequest,
    logs: LogSink,
    cancel: CancellationToken,
) -> Result<Exit, ExecutorError> {
    let span = info_span!(
        "docker_execution",
        job_id = %request.job_id,
        execution_id = %request.execution_id,
        image = tracing::field::Empty,
    );
    async move {
        // Taken first, so that no way out of this function leaves the execution in the set.
        let prepared = executor.take_prepared(&request.execution_id);
        let params = DockerParams::parse(&request.engine)?;
        tracing::Span::current().record("image", params.image.as_str());
        let body = container_body(&request, &params, executor.node_id.as_deref())?;
        if cancel.is_cancelled() {
            return Err(ExecutorError::Cancelled);
        }
        let mut laps = Laps::start();
        let daemon = executor.daemon().await?;
        let ensure_image = || async {
            let progress = |line: String| tracing::info!(target: "shoal::docker::pull", "{line}");
            tokio::select! {
                ready = image::ensure_image(&daemon, &params.image, &progress) => ready,
                () = cancel.cancelled() => Err(ExecutorError::Cancelled),
            }
        };
        if !prepared {
            ensure_image().await?;
            laps.lap("image");
        }
        for (dir, _) in result_dirs(&request)? {
            tokio::fs::create_dir_all(&dir).await.map_err(|e| {
                ExecutorError::transient(format!(
                    "results folder {} could not be created: {e}; check the node's data dir is writable",
                    dir.display()
                ))
            })?;
        }

        let name = container_name(&request.execution_id);
        let mut created = create(&daemon.docker, &name, &body).await;
        if prepared && created.as_ref().is_err_and(image::is_missing) {
            // Removed from the node since Preparing checked it: fetch it as an unprepared run
            // would, so that the error (if any) is the one about the image.
            ensure_image().await?;
            created = create(&daemon.docker, &name, &body).await;
        }
        let id = created
            .map_err(|e| refused(&format!("container {name} could not be created"), &e))?;
        laps.lap("create");
        let mut guard = RemoveGuard { docker: daemon.docker.clone(), id: Some(id.clone()) };
        let outcome = supervise(&daemon, &id, &request, &logs, &cancel, &mut laps).await;
        guard.id = None;
        executor.ended(&request.execution_id, id);
        outcome
    }
    .instrument(span)
    .await
}

/// Creates the container; a leftover of the same name (an earlier attempt of this execution
/// whose agent died) is removed first.
async fn create(
    docker: &Docker,
    name: &str,
    body: &ContainerCreateBody,
) -> Result<String, BollardError> {
    let options = || CreateContainerOptionsBuilder::default().name(name).build();
    let created = match docker.create_container(Some(options()), body.clone()).await {
        Err(e) if daemon_status(&e) == Some(409) => {
            warn!(
                container = name,
                "removing a leftover container of the same name"
            );
            remove(docker, name).await;
            docker.create_container(Some(options()), body.clone()).await
        }
        other => other,
    };
    created.map(|c| c.id)
}

/// Classifies a daemon refusal: 400 and 404 are about the spec (bad mount, unknown image,
/// missing executable) and will repeat anywhere; the rest may be this daemon's trouble.
fn refused(what: &str, e: &BollardError) -> ExecutorError {
    let message = daemon_message(e);
    match daemon_status(e) {
        Some(400 | 404) => ExecutorError::user(format!(
            "{what}: {message}; check the job's Image, Entrypoint, Parameters and paths"
        )),
        _ => ExecutorError::transient(format!("{what}: {message}")),
    }
}

/// Starts the container, follows its logs and waits for it to end.
async fn supervise(
    daemon: &Daemon,
    id: &str,
    request: &ExecutionRequest,
    logs: &LogSink,
    cancel: &CancellationToken,
    laps: &mut Laps,
) -> Result<Exit, ExecutorError> {
    let docker = &daemon.docker;
    // Attached before the start, as `docker run` does: the stream carries everything the
    // container writes and ends as it exits. A followed `logs` stream ends only once the
    // daemon's log reader notices the end, 7 ms later on Docker 20.10: half of what Shoal
    // added to a trivial container job.
    let options = AttachContainerOptionsBuilder::default()
        .stdout(true)
        .stderr(true)
        .stream(true)
        .build();
    let attached = docker
        .attach_container(id, Some(options))
        .await
        .map_err(|e| refused(&format!("could not attach to container {id}"), &e))?;
    laps.lap("attach");
    let pump = tokio::spawn(pump_output(attached, id.to_string(), logs.clone()));
    if let Err(e) = docker.start_container(id, None).await {
        pump.abort();
        return Err(refused(
            &format!(
                "container for execution {} could not start",
                request.execution_id
            ),
            &e,
        ));
    }
    laps.lap("start");

    let timeout = async {
        match request.timeout {
            Some(limit) => {
                tokio::time::sleep(limit).await;
                limit
            }
            None => std::future::pending().await,
        }
    };
    let mut wait = docker.wait_container(id, None::<WaitContainerOptions>);
    let ending = tokio::select! {
        waited = wait.next() => match waited {
            // A non-zero exit arrives as an error from bollard; the state read below is what counts.
            None | Some(Ok(_)) | Some(Err(BollardError::DockerContainerWaitError { .. })) => Ending::Exited,
            Some(Err(e)) => {
                let error = ExecutorError::transient(format!(
                    "lost track of container {id} on docker daemon {}: {}", daemon.info.host, daemon_message(&e)
                ));
                stop(docker, id).await;
                drain(pump).await;
                return Err(error);
            }
        },
        limit = timeout => Ending::TimedOut(limit),
        () = cancel.cancelled() => Ending::Cancelled,
    };
    drop(wait);
    laps.lap("wait");

    match ending {
        Ending::TimedOut(limit) => {
            stop(docker, id).await;
            drain(pump).await;
            Err(ExecutorError::Timeout(limit))
        }
        Ending::Cancelled => {
            stop(docker, id).await;
            drain(pump).await;
            Err(ExecutorError::Cancelled)
        }
        Ending::Exited => {
            drain(pump).await;
            laps.lap("logs");
            let state = final_state(docker, id).await?;
            laps.lap("inspect");
            // The daemon can record the exit before the kernel's OOM notice, and Docker 20.10
            // on cgroup v2 can miss the notice altogether (seen under load, even after a second
            // of re-reading); a SIGKILL exit under a memory limit that Shoal did not send is
            // then the limit's doing, and must not pass for a completed run with exit code 137.
            let killed_at_limit = state.exit_code == Some(137) && request.resources.memory > 0;
            if state.oom_killed == Some(true) || killed_at_limit {
                let limit = match request.resources.memory {
                    0 => "none set (the node ran out of memory)".to_string(),
                    bytes => format_bytes(bytes),
                };
                return Err(ExecutorError::OutOfMemory { limit });
            }
            let code = state.exit_code.unwrap_or(-1);
            Ok(Exit {
                code: i32::try_from(code).unwrap_or(-1),
            })
        }
    }
}

/// Reads the ended container's state.
async fn final_state(docker: &Docker, id: &str) -> Result<ContainerState, ExecutorError> {
    Ok(docker
        .inspect_container(id, None)
        .await
        .map_err(|e| {
            ExecutorError::transient(format!(
                "container {id} could not be inspected: {}",
                daemon_message(&e)
            ))
        })?
        .state
        .unwrap_or_default())
}

/// Forwards the container's output to the sink until the daemon closes the attached stream,
/// which it does once the container has ended and everything it wrote has been sent.
async fn pump_output(attached: AttachContainerResults, id: String, logs: LogSink) {
    // The input half stays open with the output: the container's stdin is not attached.
    let AttachContainerResults {
        output: mut stream,
        input: _input,
    } = attached;
    while let Some(frame) = stream.next().await {
        match frame {
            Ok(LogOutput::StdOut { message }) | Ok(LogOutput::Console { message }) => {
                logs.write(Stream::Stdout, String::from_utf8_lossy(&message))
            }
            Ok(LogOutput::StdErr { message }) => {
                logs.write(Stream::Stderr, String::from_utf8_lossy(&message))
            }
            Ok(LogOutput::StdIn { .. }) => {}
            Err(e) => {
                warn!(container = %id, error = %daemon_message(&e), "log stream ended early");
                return;
            }
        }
    }
}

async fn drain(pump: tokio::task::JoinHandle<()>) {
    let abort = pump.abort_handle();
    if tokio::time::timeout(LOG_DRAIN_LIMIT, pump).await.is_err() {
        warn!("logs still flowing {LOG_DRAIN_LIMIT:?} after the container ended; cutting them off");
        abort.abort();
    }
}

async fn stop(docker: &Docker, id: &str) {
    let options = StopContainerOptionsBuilder::default()
        .t(STOP_GRACE_S)
        .build();
    // 304: already stopped; 404: already gone. Removal with force follows either way.
    if let Err(e) = docker.stop_container(id, Some(options)).await
        && !matches!(daemon_status(&e), Some(304 | 404))
    {
        warn!(container = id, error = %daemon_message(&e), "stopping the container failed");
    }
}

/// Removes a container and its anonymous volumes, killing it if it still runs.
pub(super) async fn remove(docker: &Docker, id: &str) {
    let options = RemoveContainerOptionsBuilder::default()
        .force(true)
        .v(true)
        .build();
    // 404: already gone, which is what was wanted.
    if let Err(e) = docker.remove_container(id, Some(options)).await
        && daemon_status(&e) != Some(404)
    {
        warn!(container = id, error = %daemon_message(&e), "removing the container failed; cleanup_orphans will retry at the next start");
    }
}

/// Times the phases of one execution, each logged at debug level with its own and the total
/// elapsed time, so that `SHOAL_LOG=shoal_executors=debug` shows where an execution's time goes.
struct Laps {
    start: Instant,
    last: Instant,
}

impl Laps {
    fn start() -> Self {
        let now = Instant::now();
        Laps {
            start: now,
            last: now,
        }
    }

    fn lap(&mut self, phase: &'static str) {
        let now = Instant::now();
        debug!(
            phase,
            ms = (now - self.last).as_secs_f64() * 1e3,
            total_ms = (now - self.start).as_secs_f64() * 1e3,
            "docker execution phase done"
        );
        self.last = now;
    }
}

/// Removes the container in the background if the execution's future is dropped before it
/// could remove it itself.
struct RemoveGuard {
    docker: Docker,
    id: Option<String>,
}

impl Drop for RemoveGuard {
    fn drop(&mut self) {
        let Some(id) = self.id.take() else { return };
        if let Ok(handle) = tokio::runtime::Handle::try_current() {
            let docker = self.docker.clone();
            handle.spawn(async move { remove(&docker, &id).await });
        }
    }
}
