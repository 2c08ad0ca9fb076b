//! The orchestrator's public handle: what the REST API and the tests call.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc;

use std::time::Duration;

use shoal_store::SharedReader;
use shoal_store::{JobFilter, OrchestratorStore, StoreError};
use shoal_transport::{Frame, Outbound};
use shoal_types::enrolment::{JoinToken, JoinTokenRequest, NewJoinToken};
use shoal_types::schedule::ScheduleStatus;
use shoal_types::{ComputeStateType, Execution, Job, JobHistory, NodeState};
use tokio::sync::oneshot;

use crate::command::{Command, JobDetails, Placement, SubmitOptions, SubmitOutcome};
use crate::config::OrchestratorConfig;
use crate::engine::Engine;
use crate::error::{BadRequest, NotFound, OrchestratorError, Unavailable};
use crate::logs::{LogRegistry, LogStream};
use crate::metrics::{Exposition, Metrics};
use crate::nodes::{Links, Session};
use crate::query::{
    KEEP_FINISHED, LiveQueries, QueryRequest, QueryStream, query_job, timeout_secs,
};
use crate::results::{ResultEvent, ResultRegistry, ResultStream};
use crate::samples::FleetSamples;

/// How many of a scheduled job's latest runs `job describe` gets.
const SCHEDULE_RUNS_SHOWN: usize = 10;

/// How long a result download waits for the node to start sending the archive.
const RESULT_START_WAIT: Duration = Duration::from_secs(30);

/// A running orchestrator. Cheap to clone.
#[derive(Clone)]
pub struct Orchestrator {
    inner: Arc<Inner>,
}

struct Inner {
    commands: mpsc::Sender<Command>,
    reader: SharedReader,
    links: Links,
    logs: LogRegistry,
    queries: LiveQueries,
    results: ResultRegistry,
    samples: FleetSamples,
    sessions: AtomicU64,
    metrics: Arc<Metrics>,
    config: OrchestratorConfig,
}

impl Orchestrator {
    /// Opens the store and starts the engine thread.
    pub fn start(config: OrchestratorConfig) -> Result<Orchestrator, OrchestratorError> {
        let store = OrchestratorStore::open(&config.data_dir)?;
        let reader = store.reader()?;
        let links = Links::default();
        let logs = LogRegistry::default();
        let queries = LiveQueries::default();
        let metrics = Arc::new(Metrics::default());
        let engine = Engine::new(
            store,
            config.clone(),
            links.clone(),
            logs.clone(),
            queries.clone(),
            metrics.clone(),
        )?;
        let (tx, rx) = mpsc::channel();
        std::thread::Builder::new()
            .name("shoal-engine".into())
            .spawn(move || engine.run(rx))
            .map_err(Unavailable::EngineThread)?;
        Ok(Orchestrator {
            inner: Arc::new(Inner {
                commands: tx,
                reader,
                links,
                logs,
                queries,
                results: ResultRegistry::default(),
                samples: FleetSamples::default(),
                sessions: AtomicU64::new(0),
                metrics,
                config,
            }),
        })
    }

    /// The configuration it runs with.
    pub fn config(&self) -> &OrchestratorConfig {
        &self.inner.config
    }

    pub(crate) fn send(&self, cmd: Command) -> Result<(), OrchestratorError> {
        self.inner
            .commands
            .send(cmd)
            .map_err(|_| Unavailable::ShuttingDown.into())
    }

    pub(crate) async fn ask<T>(
        &self,
        make: impl FnOnce(oneshot::Sender<Result<T, OrchestratorError>>) -> Command,
    ) -> Result<T, OrchestratorError> {
        let (tx, rx) = oneshot::channel();
        self.send(make(tx))?;
        rx.await.map_err(|_| Unavailable::EngineStopped)?
    }

    async fn read<T: Send + 'static>(
        &self,
        f: impl FnOnce(shoal_store::Reader<'_>) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, OrchestratorError> {
        let inner = self.inner.clone();
        tokio::task::spawn_blocking(move || inner.reader.with(f))
            .await
            .map_err(Unavailable::Read)?
            .map_err(OrchestratorError::from)
    }

    /// Submits a validated job; returns its id and its state after the first placement.
    ///
    /// A job whose `Name` is already taken in its namespace updates that job (Bacalhau v1.8
    /// semantics): a new version replaces the old version's executions.
    pub async fn submit(&self, job: Job) -> Result<SubmitOutcome, OrchestratorError> {
        self.submit_with(job, SubmitOptions::default()).await
    }

    /// [`Orchestrator::submit`] with options (`force` reruns an unchanged spec).
    pub async fn submit_with(
        &self,
        job: Job,
        options: SubmitOptions,
    ) -> Result<SubmitOutcome, OrchestratorError> {
        self.ask(|reply| Command::Submit {
            job: Box::new(job),
            options,
            reply,
        })
        .await
    }

    /// Stops a job (by id, unique id prefix or name).
    pub async fn stop(&self, key: &str, reason: &str) -> Result<Job, OrchestratorError> {
        let job = self.job(key).await?;
        let (job_id, reason) = (job.id.clone(), reason.to_string());
        self.ask(|reply| Command::Stop {
            job_id,
            reason,
            reply,
        })
        .await?;
        self.job(&job.id).await
    }

    /// Promotes a job whose rollout waits after its canaries: the rest of the nodes follow.
    pub async fn promote(&self, key: &str) -> Result<Job, OrchestratorError> {
        let job = self.job(key).await?;
        let job_id = job.id.clone();
        self.ask(|reply| Command::Promote { job_id, reply }).await?;
        self.job(&job.id).await
    }

    /// Finds a job by id, unique id prefix or name.
    pub async fn job(&self, key: &str) -> Result<Job, OrchestratorError> {
        let k = key.to_string();
        let found = self
            .read(move |r| match r.job(&k)? {
                Some(j) => Ok(vec![j]),
                None => r.jobs_matching(&k, 10),
            })
            .await?;
        match found.len() {
            1 => Ok(found.into_iter().next().expect("one job")),
            0 => Err(NotFound::Job {
                key: key.to_string(),
            }
            .into()),
            _ => Err(BadRequest::AmbiguousJob {
                key: key.to_string(),
                matches: found.into_iter().map(|j| j.id).collect(),
            }
            .into()),
        }
    }

    /// A job with its executions, history and placement reasons.
    pub async fn job_details(&self, key: &str) -> Result<JobDetails, OrchestratorError> {
        self.job_details_with(key, true, true).await
    }

    /// [`Orchestrator::job_details`], reading the history and the executions only when asked
    /// (left empty otherwise): a client polling a fleet-wide job's state must not make the
    /// orchestrator decode thousands of history rows every few milliseconds.
    pub async fn job_details_with(
        &self,
        key: &str,
        with_history: bool,
        with_executions: bool,
    ) -> Result<JobDetails, OrchestratorError> {
        let job = self.job(key).await?;
        let id = job.id.clone();
        let scheduled = job.schedule.is_some();
        let (executions, history, placement, rollout, schedule) = self
            .read(move |r| {
                let schedule = if scheduled {
                    let marks = r.schedule_marks(&id)?;
                    Some(ScheduleStatus {
                        next_run: marks.and_then(|m| m.next_tick),
                        last_tick: marks.and_then(|m| m.last_tick),
                        runs: r.schedule_runs(&id, SCHEDULE_RUNS_SHOWN)?,
                    })
                } else {
                    None
                };
                Ok((
                    if with_executions {
                        r.executions(&id)?
                    } else {
                        Vec::new()
                    },
                    if with_history {
                        r.history(&id, 0)?
                    } else {
                        Vec::new()
                    },
                    r.placement(&id)?,
                    r.rollout(&id)?,
                    schedule,
                ))
            })
            .await?;
        let placement = serde_json::from_str::<Vec<Placement>>(&placement).unwrap_or_default();
        let rollout = rollout.filter(|r| job.rollout.is_some() && r.job_version == job.version);
        Ok(JobDetails {
            job,
            executions,
            history,
            placement,
            rollout,
            schedule,
        })
    }

    /// Runs a scheduled job once now, outside its schedule (Nomad's `periodic force`);
    /// answers the child job's id. The schedule's own ticks are not moved.
    pub async fn run_now(&self, key: &str) -> Result<String, OrchestratorError> {
        let job_id = self.job(key).await?.id;
        self.ask(|reply| Command::RunNow { job_id, reply }).await
    }

    /// A page of jobs.
    pub async fn list_jobs(&self, filter: JobFilter) -> Result<Vec<Job>, OrchestratorError> {
        self.read(move |r| r.jobs(&filter)).await
    }

    /// A job's executions.
    pub async fn executions(&self, key: &str) -> Result<Vec<Execution>, OrchestratorError> {
        let id = self.job(key).await?.id;
        self.read(move |r| r.executions(&id)).await
    }

    /// A job's history after a sequence number.
    pub async fn history(
        &self,
        key: &str,
        after: u64,
    ) -> Result<Vec<JobHistory>, OrchestratorError> {
        let id = self.job(key).await?.id;
        self.read(move |r| r.history(&id, after)).await
    }

    /// Every known node, with live connection state and the orchestrator's live accounting of
    /// its capacity: `AvailableCapacity` is `MaxCapacity` minus the resources reserved by
    /// non-terminal executions placed on it (the figure placement uses), and
    /// `RunningExecutions` counts those executions.
    pub async fn nodes(&self) -> Result<Vec<NodeState>, OrchestratorError> {
        let mut nodes = self.read(|r| r.nodes()).await?;
        let (reply, usage) = oneshot::channel();
        self.send(Command::Usage { reply })?;
        let usage = usage.await.map_err(|_| Unavailable::EngineStopped)?;
        for n in &mut nodes {
            if !self.inner.links.is_connected(&n.info.node_id) {
                n.connection = shoal_types::ConnectionStatus::Disconnected;
                n.connection_state.status = shoal_types::ConnectionStatus::Disconnected;
            }
            if let Some(u) = usage.get(&n.info.node_id) {
                n.info.compute_node_info.available_capacity = u.free;
                n.info.compute_node_info.running_executions = u.executions;
            }
        }
        Ok(nodes)
    }

    /// One node by id or unique id prefix.
    pub async fn node(&self, key: &str) -> Result<NodeState, OrchestratorError> {
        let nodes = self.nodes().await?;
        if let Some(n) = nodes.iter().find(|n| n.info.node_id == key) {
            return Ok(n.clone());
        }
        let found: Vec<_> = nodes
            .into_iter()
            .filter(|n| n.info.node_id.starts_with(key))
            .collect();
        match found.len() {
            1 => Ok(found.into_iter().next().expect("one node")),
            0 => Err(NotFound::Node {
                key: key.to_string(),
            }
            .into()),
            _ => Err(BadRequest::AmbiguousNode {
                key: key.to_string(),
            }
            .into()),
        }
    }

    /// What this orchestrator counts (link traffic, transactions, plans, submissions).
    pub fn metrics(&self) -> &Metrics {
        &self.inner.metrics
    }

    /// The orchestrator's metrics in Prometheus text format: its counters and histograms, and
    /// gauges read now (jobs by state, nodes by connection and approval, connected agents).
    pub async fn render_metrics(&self, out: &mut Exposition) -> Result<(), OrchestratorError> {
        self.inner.metrics.render(out);
        let jobs = self.read(|r| r.job_counts()).await?;
        out.header("shoal_jobs", "gauge", "Jobs in the store, by state.");
        for (state, n) in jobs {
            out.sample(
                "shoal_jobs",
                &[("state", &state.to_ascii_lowercase())],
                n as f64,
            );
        }
        let nodes = self.nodes().await?;
        let mut by: std::collections::BTreeMap<(String, String), u64> = Default::default();
        for n in &nodes {
            let key = (
                n.connection.to_string().to_ascii_lowercase(),
                n.membership.to_string().to_ascii_lowercase(),
            );
            *by.entry(key).or_default() += 1;
        }
        out.header(
            "shoal_nodes",
            "gauge",
            "Known compute nodes, by connection status and approval.",
        );
        for ((status, approval), n) in by {
            out.sample(
                "shoal_nodes",
                &[("status", &status), ("approval", &approval)],
                n as f64,
            );
        }
        out.gauge(
            "shoal_link_connected_agents",
            "Compute nodes with an open agent link now.",
            self.inner.links.count() as f64,
        );
        Ok(())
    }

    /// Creates a join token that lets new nodes enrol (see `shoal_types::enrolment`); the
    /// answer holds its secret, which is not stored.
    pub async fn create_join_token(
        &self,
        request: JoinTokenRequest,
    ) -> Result<NewJoinToken, OrchestratorError> {
        self.ask(|reply| Command::CreateJoinToken { request, reply })
            .await
    }

    /// Every join token, without secrets.
    pub async fn join_tokens(&self) -> Result<Vec<JoinToken>, OrchestratorError> {
        self.read(|r| r.join_tokens()).await
    }

    /// Deletes a join token; the nodes it enrolled keep their keys.
    pub async fn delete_join_token(&self, id: &str) -> Result<(), OrchestratorError> {
        let id = id.to_string();
        self.ask(|reply| Command::DeleteJoinToken { id, reply })
            .await
    }

    /// How a node enrolled, if it did.
    pub async fn node_enrolment(
        &self,
        node_id: &str,
    ) -> Result<Option<shoal_store::NodeKey>, OrchestratorError> {
        let node_id = node_id.to_string();
        self.read(move |r| r.node_key(&node_id)).await
    }

    /// Approves, rejects, revokes or deletes a node.
    pub async fn node_action(&self, key: &str, action: &str) -> Result<(), OrchestratorError> {
        let node_id = self.node(key).await?.info.node_id;
        let action = action.to_string();
        self.ask(|reply| Command::NodeAction {
            node_id,
            action,
            reply,
        })
        .await
    }

    /// Sets (`set`) and removes (`remove`) control-plane labels of a node; daemon jobs follow
    /// at once.
    pub async fn node_labels(
        &self,
        key: &str,
        set: std::collections::BTreeMap<String, String>,
        remove: Vec<String>,
    ) -> Result<(), OrchestratorError> {
        let node_id = self.node(key).await?.info.node_id;
        self.ask(|reply| Command::NodeLabels {
            node_id,
            set,
            remove,
            reply,
        })
        .await
    }

    /// Streams the logs of one of a job's executions (the given one, or the most recently
    /// changed one that was not discarded), pulled from its node over the agent link; when
    /// the node is away or gone, or when `kept` asks for it, the copy the node shipped while
    /// the execution ran and when it ended.
    pub async fn logs(
        &self,
        key: &str,
        execution_id: Option<&str>,
        follow: bool,
        kept: bool,
    ) -> Result<LogStream, OrchestratorError> {
        let executions = self.executions(key).await?;
        let chosen = match execution_id {
            Some(id) => executions
                .iter()
                .find(|e| e.id.as_str().starts_with(id))
                .ok_or_else(|| NotFound::Execution {
                    execution_id: id.to_string(),
                    job: key.to_string(),
                })?,
            None => executions
                .iter()
                .filter(|e| {
                    !e.compute_state.state_type.is_discarded()
                        || e.compute_state.state_type == ComputeStateType::Failed
                })
                .max_by_key(|e| e.modify_time)
                .ok_or_else(|| NotFound::NoExecutions {
                    job: key.to_string(),
                })?,
        };
        let node = chosen.node_id.to_string();
        if !kept {
            let stream = self.inner.logs.open(&node, &self.inner.links);
            let req = Frame::LogRequest {
                stream_id: stream.id(),
                execution_id: chosen.id.to_string(),
                follow,
            };
            if self.inner.links.send(&node, req) {
                return Ok(LogStream::new(stream));
            }
        }
        // The node is away or gone (or the caller asked): the copy it shipped.
        let execution_id = chosen.id.to_string();
        let id = execution_id.clone();
        let pieces = self.read(move |r| r.log_pieces(&id)).await?;
        if pieces.is_empty() {
            let (node_id, execution_id) = (node, execution_id);
            return Err(if kept {
                Unavailable::NoKeptLogs {
                    node_id,
                    execution_id,
                }
            } else {
                Unavailable::LogsNodeAway {
                    node_id,
                    execution_id,
                }
            }
            .into());
        }
        Ok(LogStream::kept(crate::logs::kept_events(
            &pieces,
            &node,
            &execution_id,
        )))
    }

    pub(crate) fn new_session(&self, tx: tokio::sync::mpsc::UnboundedSender<Outbound>) -> Session {
        Session {
            id: self.inner.sessions.fetch_add(1, Ordering::Relaxed) + 1,
            tx,
        }
    }

    pub(crate) fn live_queries(&self) -> &LiveQueries {
        &self.inner.queries
    }

    pub(crate) fn log_registry(&self) -> &LogRegistry {
        &self.inner.logs
    }

    pub(crate) fn result_registry(&self) -> &ResultRegistry {
        &self.inner.results
    }

    pub(crate) fn fleet_samples(&self) -> &FleetSamples {
        &self.inner.samples
    }

    /// Fleet metrics: the latest host sample of every connected node, grouped by the node
    /// label `by` (nodes without it form the group with the empty value), with each node's own
    /// sample too when `per_node` (the busiest [`crate::samples::NODE_CAP`] nodes).
    ///
    /// Only nodes connected now count, and only samples younger than the disconnect timeout:
    /// a node that drops takes its sample with it. A label no reporting node has gives no
    /// groups and a note naming the labels there are.
    pub async fn fleet_metrics(
        &self,
        by: &str,
        per_node: bool,
    ) -> Result<shoal_types::fleet::FleetReport, OrchestratorError> {
        let nodes = self.read(|r| r.nodes()).await?;
        let labels = nodes
            .into_iter()
            .filter(|n| self.inner.links.is_connected(&n.info.node_id))
            .map(|n| (n.info.node_id, n.info.labels))
            .collect();
        let max_age = self.inner.config.disconnect_timeout.as_nanos() as i64;
        Ok(crate::samples::report(
            self.inner.samples.snapshot(),
            &labels,
            by,
            per_node,
            crate::clock::now(),
            max_age,
        ))
    }

    /// [`Orchestrator::fleet_metrics`] in Prometheus text format (`/metrics/fleet`).
    pub async fn render_fleet_metrics(
        &self,
        by: &str,
        per_node: bool,
        out: &mut Exposition,
    ) -> Result<(), OrchestratorError> {
        let report = self.fleet_metrics(by, per_node).await?;
        crate::samples::render(&report, out);
        Ok(())
    }

    /// Opens the download of the archive the `local` publisher kept for one of a job's
    /// executions, pulled from its node over the agent link. Fails when the execution has no
    /// local result, its node is disconnected, or the node cannot find the archive.
    pub async fn result_archive(
        &self,
        key: &str,
        execution_id: &str,
    ) -> Result<ResultStream, OrchestratorError> {
        let executions = self.executions(key).await?;
        let mut matching = executions
            .iter()
            .filter(|e| e.id.as_str().starts_with(execution_id));
        let chosen = match (matching.next(), matching.next()) {
            (Some(e), None) => e,
            (None, _) => {
                return Err(NotFound::Execution {
                    execution_id: execution_id.to_string(),
                    job: key.to_string(),
                }
                .into());
            }
            (Some(_), Some(_)) => {
                return Err(BadRequest::AmbiguousExecution {
                    execution_id: execution_id.to_string(),
                    job: key.to_string(),
                }
                .into());
            }
        };
        if !chosen
            .published_result
            .as_ref()
            .is_some_and(|p| p.is("local"))
        {
            return Err(NotFound::NoLocalResult {
                execution_id: chosen.id.to_string(),
                job: key.to_string(),
            }
            .into());
        }
        let node = chosen.node_id.to_string();
        let open = self.inner.results.open(&node, &self.inner.links);
        let id = open.id();
        let mut stream = ResultStream::new(open, node.clone());
        let req = Frame::ResultRequest {
            stream_id: id,
            execution_id: chosen.id.to_string(),
        };
        if !self.inner.links.send(&node, req) {
            return Err(Unavailable::ResultsNodeAway {
                node_id: node,
                execution_id: chosen.id.to_string(),
            }
            .into());
        }
        let first = tokio::time::timeout(RESULT_START_WAIT, stream.next()).await;
        match first {
            Ok(Some(ResultEvent::Start { size })) => {
                stream.set_size(size);
                Ok(stream)
            }
            Ok(Some(ResultEvent::End { error })) => Err(match error {
                Some(reason) => NotFound::ArchiveRefused {
                    node_id: node,
                    reason,
                },
                None => NotFound::NoArchive { node_id: node },
            }
            .into()),
            Ok(_) => Err(Unavailable::ResultsUnanswered {
                node_id: node,
                execution_id: chosen.id.to_string(),
            }
            .into()),
            Err(_) => Err(Unavailable::ResultsTimedOut {
                node_id: node,
                execution_id: chosen.id.to_string(),
                waited: RESULT_START_WAIT,
            }
            .into()),
        }
    }
}

// Fleet queries: asked through the engine, answered straight into the query registry.
impl Orchestrator {
    /// Asks the fleet a question now; returns the query id. Answers stream through
    /// [`Self::watch_query`]; the query ends when every node asked has answered, its link
    /// closed, or the timeout passed.
    pub async fn ask_query(&self, request: &QueryRequest) -> Result<String, OrchestratorError> {
        let request = &crate::query::prepare(request)?;
        let job = query_job(request)?;
        let id = format!(
            "q-{}",
            shoal_types::JobId::generate()
                .as_str()
                .trim_start_matches("j-")
        );
        let timeout = Duration::from_secs(timeout_secs(request));
        let all_in = self
            .ask(|reply| Command::AskFleet {
                query_id: id.clone(),
                job: Box::new(job),
                request: Box::new(request.clone()),
                reply,
            })
            .await?;
        tokio::spawn(crate::query::drive(
            self.live_queries().clone(),
            id.clone(),
            all_in,
            timeout,
            self.inner.metrics.clone(),
        ));
        Ok(id)
    }

    /// Streams a query's events: the answers already in, then each as its node replies, then
    /// the coverage (and the merge stage) once the query is over.
    pub async fn watch_query(&self, id: &str) -> Result<QueryStream, OrchestratorError> {
        match self.live_queries().subscribe(id) {
            Some(s) => Ok(QueryStream::new(s)),
            None => Err(NotFound::Query {
                id: id.to_string(),
                kept_minutes: KEEP_FINISHED.as_secs() / 60,
            }
            .into()),
        }
    }
}
