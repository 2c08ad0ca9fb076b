//! Execution engines.
//!
//! Every engine implements [`Executor`]: given a fully prepared [`ExecutionRequest`] (inputs
//! already staged on the host, results folder created, environment built), it runs the task,
//! streams its output lines to a [`LogSink`] while it runs, honours cancellation and its time
//! limit, and returns how the task ended. Admission, bidding, input staging and publishing live
//! in the compute agent, not here: an engine only runs things.
//!
//! Errors are classified so that the orchestrator can decide what to do without parsing text:
//! a [`ExecutorError::User`] error will repeat on any node and is never retried, a
//! [`ExecutorError::Transient`] one may succeed elsewhere.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use futures::future::BoxFuture;
use shoal_types::{JobType, Network, Resources, ResultPath, SpecConfig};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

#[cfg(feature = "analytics")]
pub mod analytics;
#[cfg(feature = "docker")]
pub mod docker;
#[cfg(feature = "exec")]
pub mod exec;
pub mod noop;
#[cfg(any(feature = "docker", feature = "wasm", feature = "exec"))]
mod params;
#[cfg(feature = "query")]
pub mod query;
#[cfg(feature = "wasm")]
pub mod wasm;

/// Which output stream a log line came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Stream {
    /// Standard output.
    Stdout,
    /// Standard error.
    Stderr,
}

/// A chunk of output, usually one line including its trailing newline.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogChunk {
    /// Where it came from.
    pub stream: Stream,
    /// The bytes, lossily decoded as UTF-8.
    pub text: String,
}

/// Where an engine sends output as it is produced.
///
/// The compute agent owns the receiving end: it appends every chunk to the execution's log
/// file (so logs survive the run) and fans it out to live followers. An engine that produces
/// structured data (the `query` engine's rows) also hands it over here with
/// [`LogSink::answer`]; the agent sends it whole in the execution's report.
#[derive(Debug, Clone)]
pub struct LogSink {
    tx: mpsc::UnboundedSender<LogChunk>,
    answer: AnswerSlot,
}

/// Where the agent picks up an engine's structured answer after the run (see
/// [`LogSink::answer`]).
#[derive(Debug, Clone, Default)]
pub struct AnswerSlot(Arc<std::sync::Mutex<Option<shoal_types::Answer>>>);

impl AnswerSlot {
    /// Takes the answer the engine left, if any.
    pub fn take(&self) -> Option<shoal_types::Answer> {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).take()
    }
}

impl LogSink {
    /// A sink and the receiver that drains it.
    pub fn channel() -> (LogSink, mpsc::UnboundedReceiver<LogChunk>) {
        let (tx, rx) = mpsc::unbounded_channel();
        (
            LogSink {
                tx,
                answer: AnswerSlot::default(),
            },
            rx,
        )
    }

    /// Sends text; a closed receiver is ignored (nobody is listening any more).
    pub fn write(&self, stream: Stream, text: impl Into<String>) {
        let _ = self.tx.send(LogChunk {
            stream,
            text: text.into(),
        });
    }

    /// Leaves the execution's structured answer for the agent, replacing an earlier one.
    /// The engine is responsible for bounding it (its row and size limits).
    pub fn answer(&self, answer: shoal_types::Answer) {
        *self.answer.0.lock().unwrap_or_else(|p| p.into_inner()) = Some(answer);
    }

    /// The slot the agent reads the answer from once the engine returned.
    pub fn answer_slot(&self) -> AnswerSlot {
        self.answer.clone()
    }
}

/// An input already staged on the host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PreparedInput {
    /// File or directory on the host.
    pub host_path: PathBuf,
    /// Path inside the task.
    pub target: String,
    /// Whether the task may write to it.
    pub read_write: bool,
}

/// Everything an engine needs to run one execution.
#[derive(Debug, Clone)]
pub struct ExecutionRequest {
    /// The job id.
    pub job_id: String,
    /// The execution id.
    pub execution_id: String,
    /// The job type.
    pub job_type: JobType,
    /// The engine spec (`Type` and `Params` as the user wrote them).
    pub engine: SpecConfig,
    /// Environment: task env plus `BACALHAU_*`/`SHOAL_*` system variables.
    pub env: BTreeMap<String, String>,
    /// Staged inputs.
    pub inputs: Vec<PreparedInput>,
    /// Host folder under which each result path gets a subfolder named after it.
    pub results_dir: PathBuf,
    /// Result paths requested by the task.
    pub result_paths: Vec<ResultPath>,
    /// Resource limits to enforce (zero means no limit in that dimension).
    pub resources: Resources,
    /// Network settings.
    pub network: Network,
    /// Run-time limit, if any.
    pub timeout: Option<Duration>,
}

/// How a task ended when the engine did its job (any exit code).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Exit {
    /// The task's exit code.
    pub code: i32,
}

/// Why an engine could not bring a task to an exit code.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ExecutorError {
    /// The spec is wrong (bad params, missing module, image not found): retrying will not help.
    #[error("{message}")]
    User {
        /// What went wrong, naming the object.
        message: String,
    },
    /// The task hit its memory limit.
    #[error("out of memory: limit {limit}")]
    OutOfMemory {
        /// The limit, formatted for people.
        limit: String,
    },
    /// The task ran past its time limit and was killed.
    #[error("execution timed out after {0:?}")]
    Timeout(Duration),
    /// The execution was cancelled.
    #[error("execution cancelled")]
    Cancelled,
    /// The engine failed in a way that may not repeat elsewhere (daemon down, IO error).
    #[error("{message}")]
    Transient {
        /// What went wrong.
        message: String,
    },
}

impl ExecutorError {
    /// Builds a user error.
    pub fn user(message: impl Into<String>) -> Self {
        ExecutorError::User {
            message: message.into(),
        }
    }

    /// Builds a transient error.
    pub fn transient(message: impl Into<String>) -> Self {
        ExecutorError::Transient {
            message: message.into(),
        }
    }

    /// Whether running the same execution on another node might succeed.
    pub fn is_retryable(&self) -> bool {
        matches!(self, ExecutorError::Transient { .. })
    }
}

/// Receives progress lines of an executor's preparation (`pulling image x: 3/5 layers`).
pub type Progress = Arc<dyn Fn(String) + Send + Sync>;

/// A way of running tasks.
pub trait Executor: Send + Sync + 'static {
    /// The engine type this executor runs (`wasm`, `docker`, ...), lowercase.
    fn engine(&self) -> &'static str;

    /// Checks the engine params without running anything, so that bad specs fail at admission
    /// with a message naming the parameter.
    fn validate(&self, engine: &SpecConfig) -> Result<(), ExecutorError>;

    /// Checks a spec that [`validate`](Self::validate) accepted against this node's own policy
    /// for the engine (the `exec` allowlist and users). A refusal holds on this node only,
    /// another node may allow the same spec, so the agent declines the execution instead of
    /// failing it; the message says what the node refuses and how an operator would allow it.
    /// Engines without a node policy keep the default, which allows everything.
    fn check_policy(&self, engine: &SpecConfig) -> Result<(), String> {
        let _ = engine;
        Ok(())
    }

    /// Gets what the task needs on this node before it can start (a container image), sending
    /// progress lines to `progress` as it goes. The agent calls this in the execution's
    /// `Preparing` phase, before [`run`](Self::run), under the node's preparation time limit
    /// (separate from the run-time limit); the future may be dropped when that limit passes or
    /// the execution is cancelled. Engines with nothing to fetch keep the default, which does
    /// nothing.
    fn prepare(
        &self,
        request: &ExecutionRequest,
        progress: Progress,
    ) -> BoxFuture<'static, Result<(), ExecutorError>> {
        let _ = (request, progress);
        Box::pin(async { Ok(()) })
    }

    /// Runs the task to its end, streaming output to `logs`. Returns when the task exits, its
    /// time limit passes (`Timeout`) or `cancel` fires (`Cancelled`); in every case nothing the
    /// engine started is left running, but what it leaves on the node (a stopped container)
    /// stays until [`clean_up`](Self::clean_up).
    fn run(
        &self,
        request: ExecutionRequest,
        logs: LogSink,
        cancel: CancellationToken,
    ) -> BoxFuture<'static, Result<Exit, ExecutorError>>;

    /// Removes what a run of `execution_id` left on the node. The agent calls it after it has
    /// recorded the execution's end, so that removing a container is not part of the time a
    /// user waits for the result. Engines that leave nothing keep the default, which does
    /// nothing.
    fn clean_up(&self, execution_id: &str) -> BoxFuture<'static, ()> {
        let _ = execution_id;
        Box::pin(async {})
    }

    /// Answers a live fleet query (`Frame::Query`: no execution, no files) with `sql`
    /// within this node's limits, lowered by `max_rows` and `timeout`; `None` when the
    /// engine answers none (only `query` and `analytics` do). `Err` holds the message to
    /// show for this node.
    fn live_answer(
        &self,
        sql: String,
        max_rows: Option<u64>,
        timeout: std::time::Duration,
    ) -> Option<BoxFuture<'static, Result<shoal_types::Answer, String>>> {
        let _ = (sql, max_rows, timeout);
        None
    }
}

/// The executors a node offers, by engine name, and why the engines it knows of but does not
/// offer are unavailable.
#[derive(Clone, Default)]
pub struct ExecutorRegistry {
    executors: BTreeMap<&'static str, Arc<dyn Executor>>,
    unavailable: BTreeMap<String, String>,
    policies: BTreeMap<String, String>,
}

impl ExecutorRegistry {
    /// An empty registry.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds an executor under its engine name.
    pub fn register(&mut self, executor: Arc<dyn Executor>) -> &mut Self {
        self.executors.insert(executor.engine(), executor);
        self
    }

    /// The executor for an engine type, case-insensitively.
    pub fn get(&self, engine: &str) -> Option<Arc<dyn Executor>> {
        self.executors
            .get(engine.to_ascii_lowercase().as_str())
            .cloned()
    }

    /// Engine names, sorted.
    pub fn engines(&self) -> Vec<String> {
        self.executors.keys().map(|s| s.to_string()).collect()
    }

    /// Records that `engine` is not offered and why (`docker daemon at ... does not answer`), so
    /// that the node can tell operators and the scheduler can tell users.
    pub fn mark_unavailable(&mut self, engine: &str, reason: impl Into<String>) -> &mut Self {
        self.unavailable
            .insert(engine.to_ascii_lowercase(), reason.into());
        self
    }

    /// Engines known but not offered, with the reason for each.
    pub fn unavailable(&self) -> &BTreeMap<String, String> {
        &self.unavailable
    }

    /// Records, in a few words, what the node's policy lets `engine` do (`allowlist 3 rules`,
    /// `disabled`), for the node to advertise so that operators see it in `node describe`.
    pub fn describe_policy(&mut self, engine: &str, words: impl Into<String>) -> &mut Self {
        self.policies
            .insert(engine.to_ascii_lowercase(), words.into());
        self
    }

    /// What the node's policy lets each engine that has one do, by engine name.
    pub fn policies(&self) -> &BTreeMap<String, String> {
        &self.policies
    }
}
