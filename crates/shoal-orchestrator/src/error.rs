//! Errors the orchestrator returns to API callers, and the reasons it refuses a node.
//!
//! [`OrchestratorError`] has one variant per Bacalhau error code (the API maps each to its
//! HTTP status); inside each is an enum that names the object and the cause, and whose message
//! says what to do about it.

use shoal_store::StoreError;
use shoal_types::JobStateType;
use shoal_types::spec::{FieldError, SpecError};

/// Why an orchestrator request failed. Each variant maps to one Bacalhau error code.
#[derive(Debug, thiserror::Error)]
pub enum OrchestratorError {
    /// No job (or node, or execution, or query) matches what was asked for.
    #[error(transparent)]
    NotFound(#[from] NotFound),
    /// The request is invalid; the message says how to fix it.
    #[error(transparent)]
    BadRequest(#[from] BadRequest),
    /// The request conflicts with the object's state (e.g. stopping a completed job).
    #[error(transparent)]
    Conflict(#[from] Conflict),
    /// The orchestrator cannot serve the request now (node away, shutting down).
    #[error(transparent)]
    Unavailable(#[from] Unavailable),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// What was asked for does not exist (HTTP 404).
#[derive(Debug, thiserror::Error)]
pub enum NotFound {
    /// No job has this id, unique id prefix or name.
    #[error("job {key} not found; `shoal job list` shows the jobs this orchestrator knows")]
    Job {
        /// The id, prefix or name asked for.
        key: String,
    },
    /// The job was deleted between being looked up and reaching the engine.
    #[error("job {job_id} not found")]
    JobGone {
        /// The job's id.
        job_id: String,
    },
    /// No node has this id or unique id prefix.
    #[error("node {key} not found; `shoal node list` shows known nodes")]
    Node {
        /// The id or prefix asked for.
        key: String,
    },
    /// No join token has this id.
    #[error("join token {id} not found; `shoal node token list` shows the join tokens")]
    JoinToken {
        /// The id asked for.
        id: String,
    },
    /// The job has no execution whose id starts with this.
    #[error(
        "execution {execution_id} not found in job {job}; `shoal job executions {job}` lists them"
    )]
    Execution {
        /// The execution id or prefix asked for.
        execution_id: String,
        /// The job, as the caller named it.
        job: String,
    },
    /// Logs were asked for a job that has not run anywhere yet.
    #[error(
        "job {job} has no executions yet, so it has no logs; it may still be queued (see `shoal job describe {job}`)"
    )]
    NoExecutions {
        /// The job, as the caller named it.
        job: String,
    },
    /// The execution's results were not published with the `local` publisher.
    #[error(
        "execution {execution_id} of job {job} has no result kept on its node; only the local publisher (-p local) keeps results there"
    )]
    NoLocalResult {
        /// The execution.
        execution_id: String,
        /// The job, as the caller named it.
        job: String,
    },
    /// The node holding an execution's results could not send the archive; `reason` is the
    /// node's own account.
    #[error("{reason}")]
    ArchiveRefused {
        /// The node.
        node_id: String,
        /// Why, in the node's words.
        reason: String,
    },
    /// The node holding an execution's results ended the download without an archive or a
    /// reason.
    #[error("node {node_id} sent no result archive")]
    NoArchive {
        /// The node.
        node_id: String,
    },
    /// No live or recently finished query has this id.
    #[error(
        "query {id} not found: queries are kept for {kept_minutes} minutes after they end; ask again with `shoal query`"
    )]
    Query {
        /// The query id asked for.
        id: String,
        /// How long finished queries are kept.
        kept_minutes: u64,
    },
}

/// The request is invalid (HTTP 400); the message says how to fix it.
#[derive(Debug, thiserror::Error)]
pub enum BadRequest {
    /// More than one job's id starts with this prefix.
    #[error("job {key} is ambiguous: it matches {}; give more of the id", .matches.join(", "))]
    AmbiguousJob {
        /// The prefix asked for.
        key: String,
        /// The ids of (some of) the jobs it matches.
        matches: Vec<String>,
    },
    /// More than one node's id starts with this prefix.
    #[error("node {key} is ambiguous; give more of the id")]
    AmbiguousNode {
        /// The prefix asked for.
        key: String,
    },
    /// More than one of the job's executions has an id starting with this prefix.
    #[error("execution {execution_id} is ambiguous in job {job}; give more of the id")]
    AmbiguousExecution {
        /// The prefix asked for.
        execution_id: String,
        /// The job, as the caller named it.
        job: String,
    },
    /// A job asks for a part of a rollout this orchestrator does not carry out yet.
    #[error(
        "job {name:?}: its Rollout block is valid, but this orchestrator does not carry out {what} yet, and will not start every node at once instead; change the Rollout block or remove it"
    )]
    RolloutNotCarriedOut {
        /// The job's name.
        name: String,
        /// What is not carried out, with what to use instead.
        what: String,
    },
    /// `shoal job promote` for a job that is not waiting for promotion.
    #[error("job {job_id} is not waiting for promotion: {why}")]
    NotAwaitingPromotion {
        /// The job.
        job_id: String,
        /// Where its rollout stands instead.
        why: String,
    },
    /// `run-now` was asked for a job without a `Schedule`.
    #[error(
        "job {job_id} has no Schedule, so there is nothing to run now; `shoal job run --force` runs an ordinary job again"
    )]
    NotScheduled {
        /// The job's id.
        job_id: String,
    },
    /// A node action other than approve, reject or delete.
    #[error(
        "unknown node action {action:?}; use approve, reject, cordon, drain, uncordon, revoke or delete"
    )]
    UnknownNodeAction {
        /// The action asked for.
        action: String,
    },
    /// A join token's time to live does not parse or is not positive.
    #[error("join token TTL {ttl:?} is not valid: {cause}; give a Go duration such as 1h or 30m")]
    JoinTokenTtl {
        /// What was given.
        ttl: String,
        /// Why it is wrong.
        cause: String,
    },
    /// A join token was asked for with zero uses.
    #[error(
        "a join token with 0 uses could enrol no node; give --uses 1 or more, or leave it out for any number until it expires"
    )]
    JoinTokenUses,
    /// A label to set or remove has an empty (or blank) key.
    #[error("node {node_id}: label key {key:?} is empty; use key=value to set and key- to remove")]
    EmptyLabelKey {
        /// The node.
        node_id: String,
        /// The blank key.
        key: String,
    },
    /// A fleet query without SQL.
    #[error("query is empty: send one SELECT statement in \"Query\"")]
    EmptyQuery,
    /// A fleet query naming an engine that cannot answer it.
    #[error(
        "unknown query engine {0:?}: use \"query\" (host tables, the default) or \"analytics\" (the nodes' data files)"
    )]
    QueryEngine(String),
    /// `--merge auto` on a query it cannot split exactly.
    #[error("{0}")]
    MergeSplit(String),
    /// A fleet query's constraints cannot be written as job constraints.
    #[error("bad constraints: {0}")]
    QueryConstraints(serde_json::Error),
    /// The job a fleet query stands for cannot be read.
    #[error("invalid query: {0}")]
    QuerySpec(SpecError),
    /// The job a fleet query stands for fails validation; each error names its field.
    #[error("invalid query: {}", join(.0))]
    QueryFields(Vec<FieldError>),
}

/// The request conflicts with the object's state (HTTP 409).
#[derive(Debug, thiserror::Error)]
pub enum Conflict {
    /// A node is already in the cordon state asked for.
    #[error("node {node_id} is already {}", if *.cordoned { "cordoned" } else { "uncordoned" })]
    AlreadyCordoned {
        /// The node.
        node_id: String,
        /// The state asked for.
        cordoned: bool,
    },
    /// A job was resubmitted under its name with an unchanged spec, without `force`.
    #[error(
        "job {name:?} ({job_id}) already has this spec (version {version}, {state}); nothing to update. Change the spec to update it, resubmit with --force (API: \"Force\": true) to run it again as a new version, or give the job another Name"
    )]
    SameSpec {
        /// The job's name.
        name: String,
        /// The job's id.
        job_id: String,
        /// Its current version.
        version: u64,
        /// Its current state.
        state: JobStateType,
    },
    /// `run-now` was asked for a scheduled job that was stopped.
    #[error(
        "scheduled job {job_id} is {state}, so it makes no runs; submit its job file again to schedule it anew"
    )]
    ScheduleEnded {
        /// The job's id.
        job_id: String,
        /// Its state.
        state: JobStateType,
    },
    /// `run-now` would make a child whose name a job has already (two in the same second).
    #[error(
        "a job named {name:?} exists already; run-now names runs to the second, try again in a second"
    )]
    RunExists {
        /// The child name.
        name: String,
    },
    /// A stop was asked for a job that already ended otherwise (completed or failed).
    #[error("job {job_id} is already {state} and cannot be stopped")]
    AlreadyEnded {
        /// The job's id.
        job_id: String,
        /// The state it ended in.
        state: JobStateType,
    },
    /// The node is approved already.
    #[error("node {node_id} is already approved")]
    AlreadyApproved {
        /// The node.
        node_id: String,
    },
    /// The node is rejected already.
    #[error("node {node_id} is already rejected")]
    AlreadyRejected {
        /// The node.
        node_id: String,
    },
}

/// The orchestrator cannot serve the request now (HTTP 503); trying again later may work.
#[derive(Debug, thiserror::Error)]
pub enum Unavailable {
    /// The operating system refused to start the engine thread.
    #[error("cannot start the engine thread: {0}")]
    EngineThread(std::io::Error),
    /// The engine no longer takes commands: the orchestrator is stopping.
    #[error("the orchestrator is shutting down")]
    ShuttingDown,
    /// The engine stopped before it answered.
    #[error("the orchestrator engine stopped")]
    EngineStopped,
    /// A read on the shared reader's thread panicked or was cancelled.
    #[error("read failed: {0}")]
    Read(tokio::task::JoinError),
    /// Nothing of the execution's log has reached the orchestrator yet.
    #[error(
        "the orchestrator keeps no log of execution {execution_id} yet: node {node_id} ships it every --log-ship-interval (10s by default) while it runs and when it ends; try again shortly, or drop --kept to read it from the node"
    )]
    NoKeptLogs {
        /// The node.
        node_id: String,
        /// The execution.
        execution_id: String,
    },
    /// The node that ran the execution is not connected, so its logs cannot be pulled.
    #[error(
        "node {node_id} that ran execution {execution_id} is disconnected; its logs can be read when it reconnects"
    )]
    LogsNodeAway {
        /// The node.
        node_id: String,
        /// The execution.
        execution_id: String,
    },
    /// The node holding the execution's results is not connected.
    #[error(
        "node {node_id} holding the results of execution {execution_id} is disconnected; they can be downloaded when it reconnects"
    )]
    ResultsNodeAway {
        /// The node.
        node_id: String,
        /// The execution.
        execution_id: String,
    },
    /// The node's link closed before it answered a result download.
    #[error(
        "node {node_id} did not answer the request for the results of execution {execution_id}"
    )]
    ResultsUnanswered {
        /// The node.
        node_id: String,
        /// The execution.
        execution_id: String,
    },
    /// The node did not start a result download within the wait.
    #[error(
        "node {node_id} did not answer within {}s the request for the results of execution {execution_id}; try again",
        .waited.as_secs()
    )]
    ResultsTimedOut {
        /// The node.
        node_id: String,
        /// The execution.
        execution_id: String,
        /// How long the orchestrator waited.
        waited: std::time::Duration,
    },
}

/// Why a node that dialled in was refused; sent to the node as its `Refused` frame.
#[derive(Debug, thiserror::Error)]
pub(crate) enum Refusal {
    /// The orchestrator requires a join token and the node gave none.
    #[error(
        "node {node_id} refused: no join token was given; start it with --token set to the orchestrator's join token (printed by `shoal serve --orchestrator`)"
    )]
    NoToken { node_id: String },
    /// The node's join token is not the orchestrator's.
    #[error(
        "node {node_id} refused: the join token is wrong; start it with --token set to the orchestrator's join token (printed by `shoal serve --orchestrator`)"
    )]
    WrongToken { node_id: String },
    /// The join token is unknown, expired or used up.
    #[error(
        "node {node_id} refused: join token {token_id} unknown or expired; create a new one with `shoal node token create` and start the node with --token set to it"
    )]
    JoinTokenInvalid { node_id: String, token_id: String },
    /// An enrolled node presented no key or another key than the one it enrolled with.
    #[error(
        "node {node_id} refused: it is enrolled with another node key (kept in its data dir); if this machine was reinstalled, `shoal node delete {node_id}` and start it again with a join token"
    )]
    KeyMismatch { node_id: String },
    /// The node's key was revoked by an operator.
    #[error(
        "node {node_id} refused: its node key was revoked at {}; to let it back, `shoal node delete {node_id}` and start it again with a new join token",
        shoal_types::time::rfc3339(*.at)
    )]
    Revoked { node_id: String, at: i64 },
    /// A join token was presented without a node key (an agent too old to enrol).
    #[error(
        "node {node_id} refused: it presented a join token but no node key; upgrade the agent to a shoal that enrols nodes"
    )]
    NoNodeKey { node_id: String },
    /// An operator rejected the node.
    #[error(
        "node {node_id} refused: it was rejected by an operator; `shoal node approve {node_id}` lets it join"
    )]
    Rejected { node_id: String },
    /// Recording the connection failed.
    #[error(transparent)]
    Failed(#[from] OrchestratorError),
}

/// Validation errors as one line, each naming its field.
fn join(errors: &[FieldError]) -> String {
    let text: Vec<String> = errors.iter().map(|e| e.to_string()).collect();
    text.join("; ")
}
