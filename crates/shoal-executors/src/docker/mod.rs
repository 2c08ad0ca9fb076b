//! The `docker` engine: runs each execution in a container on the node's Docker daemon.
//!
//! Parameters, mounts, limits and network follow Bacalhau's Docker executor (see
//! [`DockerParams`] and the `container` module). Images are used from the node when present
//! and pulled once otherwise, in the execution's `Preparing` phase ([`Executor::prepare`]); a
//! run that follows its own preparation does not inspect the image again, and a preparation
//! within [`IMAGE_RECHECK`] of finding the same image usable does not ask the daemon at all.
//! Output is followed live, stdout and stderr apart; the exit code comes from the container's
//! state, so a non-zero exit is an `Ok(Exit)`, and an OOM kill is
//! [`ExecutorError::OutOfMemory`]. Every container carries the
//! `shoal.managed`, `shoal.job-id` and `shoal.execution-id` labels. A run leaves its ended
//! container for [`Executor::clean_up`], which the agent calls once the execution's end is
//! recorded (removal takes the daemon several milliseconds: the user need not wait for it);
//! [`DockerExecutor::cleanup_orphans`] removes those a crashed agent left.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bollard::query_parameters::ListContainersOptionsBuilder;
use futures::future::BoxFuture;
use shoal_types::SpecConfig;
use tokio::sync::OnceCell;
use tokio_util::sync::CancellationToken;

use crate::{ExecutionRequest, Executor, ExecutorError, Exit, LogSink, Progress};

mod container;
mod daemon;
mod image;
mod lifecycle;
mod params;

pub use container::{
    LABEL_EXECUTION_ID, LABEL_JOB_ID, LABEL_MANAGED, LABEL_NODE_ID, container_name,
};
pub use daemon::DockerInfo;
pub use params::DockerParams;

use daemon::Daemon;

/// How long an image found usable is taken to still be there without asking the daemon again.
/// An image removed meanwhile costs nothing but time: the container's creation fails with
/// "No such image" and the run fetches the image as an unprepared run would.
const IMAGE_RECHECK: Duration = Duration::from_secs(30);

/// The address used when `DOCKER_HOST` is not set.
pub const DEFAULT_DOCKER_HOST: &str = "unix:///var/run/docker.sock";

/// Runs executions as containers on one Docker daemon.
///
/// Cheap to clone; clones share the connection. The daemon is first contacted on first use, so
/// an executor can be built while the daemon is down and [`probe`](Self::probe) says why.
#[derive(Debug, Clone)]
pub struct DockerExecutor {
    host: String,
    node_id: Option<String>,
    daemon: Arc<OnceCell<Daemon>>,
    /// Executions whose image [`Executor::prepare`] has found usable and whose run has not
    /// started yet: their run creates the container without inspecting the image again.
    prepared: Arc<Mutex<HashSet<String>>>,
    /// Images found usable, with when: a preparation within [`IMAGE_RECHECK`] of the last
    /// check skips the daemon call.
    usable_images: Arc<Mutex<HashMap<String, Instant>>>,
    /// Containers of executions whose run has returned, by execution id, until
    /// [`Executor::clean_up`] removes them.
    ended: Arc<Mutex<HashMap<String, String>>>,
}

impl DockerExecutor {
    /// An executor for the daemon at `DOCKER_HOST` (`unix://` or `tcp://`), or at
    /// [`DEFAULT_DOCKER_HOST`]. Does not contact the daemon; fails only on an address that
    /// cannot be used, with a message saying what to set.
    pub fn connect() -> Result<Self, ExecutorError> {
        let host = std::env::var("DOCKER_HOST")
            .ok()
            .filter(|h| !h.is_empty())
            .unwrap_or_else(|| DEFAULT_DOCKER_HOST.to_string());
        Self::with_host(&host)
    }

    /// An executor for the daemon at `host` (`unix:///var/run/docker.sock`, `tcp://10.0.0.2:2375`).
    pub fn with_host(host: &str) -> Result<Self, ExecutorError> {
        daemon::check_address(host).map_err(ExecutorError::transient)?;
        Ok(DockerExecutor {
            host: host.to_string(),
            node_id: None,
            daemon: Arc::new(OnceCell::new()),
            prepared: Arc::default(),
            usable_images: Arc::default(),
            ended: Arc::default(),
        })
    }

    /// Labels this executor's containers with `shoal.node-id=<node_id>` and limits
    /// [`cleanup_orphans`](Self::cleanup_orphans) to containers so labelled, so that several
    /// agents sharing one daemon (devstack) never remove each other's containers.
    pub fn with_node_id(mut self, node_id: impl Into<String>) -> Self {
        self.node_id = Some(node_id.into());
        self
    }

    /// Asks the daemon whether it answers, and what it runs. A node advertises the `docker`
    /// engine only when this succeeds; the error says why not and what to do.
    pub async fn probe(&self) -> Result<DockerInfo, String> {
        self.daemon_or_reason().await.map(|d| d.info.clone())
    }

    /// Ensures the image named by `engine`'s `Image` is on the node: uses it when present,
    /// otherwise pulls it once, reporting the pull's progress lines to `progress`. Fails with a
    /// user error naming the image when it can be neither found nor pulled, and with a transient
    /// one when it is built for another platform than the daemon's. [`Executor::run`] calls this
    /// itself unless [`Executor::prepare`] did for the same execution; preparing moves the pull
    /// out of the execution's run time and into its `Preparing` phase. An image removed between
    /// the two is fetched again by the run.
    pub async fn ensure_image(
        &self,
        engine: &SpecConfig,
        progress: impl Fn(String) + Send + Sync,
    ) -> Result<(), ExecutorError> {
        let params = DockerParams::parse(engine)?;
        let daemon = self.daemon().await?;
        image::ensure_image(&daemon, &params.image, &progress).await
    }

    /// Removes every container labelled `shoal.managed=true` (and `shoal.node-id=<node>` when the
    /// executor has a node id) whose `shoal.execution-id` is not in `keep`, running or not;
    /// called by the agent at startup with the executions it still tracks. Returns the
    /// execution ids (or container ids, for containers without one) removed.
    pub async fn cleanup_orphans(
        &self,
        keep: &HashSet<String>,
    ) -> Result<Vec<String>, ExecutorError> {
        let daemon = self.daemon().await?;
        let mut labels = vec![format!("{LABEL_MANAGED}=true")];
        if let Some(node) = &self.node_id {
            labels.push(format!("{LABEL_NODE_ID}={node}"));
        }
        let filters = HashMap::from([("label", labels)]);
        let options = ListContainersOptionsBuilder::default()
            .all(true)
            .filters(&filters)
            .build();
        let containers = daemon
            .docker
            .list_containers(Some(options))
            .await
            .map_err(|e| {
                ExecutorError::transient(format!(
                    "containers on docker daemon {} could not be listed: {}",
                    self.host,
                    daemon::daemon_message(&e)
                ))
            })?;
        let mut removed = Vec::new();
        for summary in containers {
            let Some(id) = summary.id else { continue };
            let execution = summary
                .labels
                .as_ref()
                .and_then(|l| l.get(LABEL_EXECUTION_ID))
                .cloned();
            if execution.as_ref().is_some_and(|e| keep.contains(e)) {
                continue;
            }
            lifecycle::remove(&daemon.docker, &id).await;
            tracing::info!(container = %id, execution_id = ?execution, "removed orphaned container");
            removed.push(execution.unwrap_or(id));
        }
        Ok(removed)
    }

    /// The daemon connection, opened on first use; a failure is not remembered, so a daemon that
    /// comes up later is found.
    async fn daemon_or_reason(&self) -> Result<&Daemon, String> {
        self.daemon
            .get_or_try_init(|| daemon::open(&self.host))
            .await
    }

    /// Whether [`Executor::prepare`] checked this execution's image; forgets it, so that a
    /// second run of the same execution id checks again.
    fn take_prepared(&self, execution_id: &str) -> bool {
        self.prepared
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(execution_id)
    }

    /// Whether `image` was found usable less than [`IMAGE_RECHECK`] ago.
    fn recently_usable(&self, image: &str) -> bool {
        self.usable_images
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(image)
            .is_some_and(|checked| checked.elapsed() < IMAGE_RECHECK)
    }

    /// Notes the ended container of an execution for [`Executor::clean_up`].
    fn ended(&self, execution_id: &str, container_id: String) {
        self.ended
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(execution_id.to_string(), container_id);
    }

    async fn daemon(&self) -> Result<Daemon, ExecutorError> {
        self.daemon_or_reason()
            .await
            .cloned()
            .map_err(ExecutorError::transient)
    }
}

impl Executor for DockerExecutor {
    fn engine(&self) -> &'static str {
        "docker"
    }

    fn validate(&self, engine: &SpecConfig) -> Result<(), ExecutorError> {
        DockerParams::parse(engine).map(|_| ())
    }

    fn prepare(
        &self,
        request: &ExecutionRequest,
        progress: Progress,
    ) -> BoxFuture<'static, Result<(), ExecutorError>> {
        let (executor, engine) = (self.clone(), request.engine.clone());
        let execution_id = request.execution_id.clone();
        Box::pin(async move {
            let image = DockerParams::parse(&engine)?.image;
            if !executor.recently_usable(&image) {
                executor
                    .ensure_image(&engine, move |line| progress(line))
                    .await?;
                executor
                    .usable_images
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .insert(image, Instant::now());
            }
            executor
                .prepared
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .insert(execution_id);
            Ok(())
        })
    }

    fn run(
        &self,
        request: ExecutionRequest,
        logs: LogSink,
        cancel: CancellationToken,
    ) -> BoxFuture<'static, Result<Exit, ExecutorError>> {
        Box::pin(lifecycle::execute(self.clone(), request, logs, cancel))
    }

    fn clean_up(&self, execution_id: &str) -> BoxFuture<'static, ()> {
        let container = self
            .ended
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(execution_id);
        let executor = self.clone();
        Box::pin(async move {
            let Some(id) = container else { return };
            // A daemon that cannot be reached now leaves the container to cleanup_orphans.
            if let Ok(daemon) = executor.daemon().await {
                lifecycle::remove(&daemon.docker, &id).await;
            }
        })
    }
}
