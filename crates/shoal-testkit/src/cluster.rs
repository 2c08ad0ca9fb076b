//! An orchestrator, its REST API and N compute agents in one process.
//!
//! Every agent dials the orchestrator over a real WebSocket on loopback (through its own
//! [`LinkProxy`] when asked), with its own data dir, node id and labels: the code path of a
//! fleet of machines, on one. An agent costs a few tokio tasks, a SQLite ledger (three open
//! files, or none with [`ClusterConfig::in_memory_stores`]) and a socket at each end, and about
//! half a megabyte: thousands of noop agents fit in a benchmark process (mind `ulimit -n`).
//! With [`ClusterConfig::in_memory_links`] the agents reach the orchestrator over in-memory
//! links instead: the same protocol on another carrier.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use shoal_client::Client;
use shoal_compute::{Agent, ComputeConfig};
use shoal_executors::ExecutorRegistry;
use shoal_orchestrator::{Orchestrator, OrchestratorConfig};
use shoal_types::{ConnectionStatus, Job, NodeState, Resources};
use tokio_util::sync::CancellationToken;

use crate::proxy::LinkProxy;
use shoal_transport::{Dialer, Link, LinkError};

/// Builds the executors of agent `i`.
pub type ExecutorsFn = Arc<dyn Fn(usize) -> ExecutorRegistry + Send + Sync>;
/// Builds the labels of agent `i`.
pub type LabelsFn = Arc<dyn Fn(usize) -> BTreeMap<String, String> + Send + Sync>;

/// How to build a [`Cluster`].
#[derive(Clone)]
pub struct ClusterConfig {
    /// How many compute agents to start.
    pub agents: usize,
    /// Where state lives; `None` uses a temporary directory removed with the cluster.
    pub data_dir: Option<PathBuf>,
    /// Orchestrator: a node silent this long is marked disconnected.
    pub disconnect_timeout: Duration,
    /// Orchestrator: how long a disconnected node's work is left alone before re-placement.
    pub node_lost_grace: Duration,
    /// Agents: heartbeat period (keep it well under `disconnect_timeout`).
    pub heartbeat_interval: Duration,
    /// Agents: the capacity each one offers (fixed, so placement does not depend on the host).
    pub capacity: Resources,
    /// Agents: labels of agent `i` (an `agent=i` label is always added).
    pub labels: LabelsFn,
    /// Agents: executors of agent `i`.
    pub executors: ExecutorsFn,
    /// Put a [`LinkProxy`] between every agent and the orchestrator.
    pub link_proxies: bool,
    /// Put a [`LinkProxy`] in front of these agents only (for large fleets where only a few
    /// links are partitioned).
    pub proxied_agents: std::collections::BTreeSet<usize>,
    /// Join token the orchestrator requires and the agents present.
    pub join_token: Option<String>,
    /// Agents keep their ledgers in memory (no files): for large simulated fleets. A restarted
    /// agent then forgets its executions, like a node whose disk was wiped.
    pub in_memory_stores: bool,
    /// Agents reach the orchestrator over in-memory links ([`shoal_transport::pair`]) instead
    /// of WebSockets; link proxies do not apply.
    pub in_memory_links: bool,
}

impl ClusterConfig {
    /// `agents` agents with the default engines, 4 CPUs and 8 GiB each, a 30 s disconnect
    /// timeout and a 5 minute node-lost grace (the orchestrator's defaults).
    pub fn new(agents: usize) -> Self {
        let defaults = OrchestratorConfig::new("");
        ClusterConfig {
            agents,
            data_dir: None,
            disconnect_timeout: defaults.disconnect_timeout,
            node_lost_grace: Duration::from_nanos(defaults.scheduler.node_lost_grace as u64),
            heartbeat_interval: Duration::from_secs(5),
            capacity: Resources {
                cpu: 4.0,
                memory: 8 << 30,
                disk: 100 << 30,
                gpu: 0,
            },
            labels: Arc::new(|_| BTreeMap::new()),
            executors: default_executors(),
            link_proxies: false,
            proxied_agents: Default::default(),
            join_token: None,
            in_memory_stores: false,
            in_memory_links: false,
        }
    }

    /// Sets the labels of agent `i`.
    pub fn labels(
        mut self,
        f: impl Fn(usize) -> BTreeMap<String, String> + Send + Sync + 'static,
    ) -> Self {
        self.labels = Arc::new(f);
        self
    }

    /// Sets the executors of agent `i`.
    pub fn executors(
        mut self,
        f: impl Fn(usize) -> ExecutorRegistry + Send + Sync + 'static,
    ) -> Self {
        self.executors = Arc::new(f);
        self
    }

    /// Only the noop engine on every agent: the cheapest agent, for simulated fleets.
    pub fn noop_only(self) -> Self {
        self.executors(|_| {
            let mut r = ExecutorRegistry::new();
            r.register(Arc::new(shoal_executors::noop::NoopExecutor));
            r
        })
    }

    /// Only a noop engine whose executions run until cancelled ([`crate::HoldExecutor`]): long
    /// running daemon and service work without a process, for simulated fleets.
    pub fn held_noop(self) -> Self {
        self.executors(|_| {
            let mut r = ExecutorRegistry::new();
            r.register(Arc::new(crate::hold::HoldExecutor));
            r
        })
    }

    /// Agents keep their ledgers in memory: three fewer open files and no disk writes per
    /// agent, for fleets of thousands in one process.
    pub fn in_memory_stores(mut self) -> Self {
        self.in_memory_stores = true;
        self
    }

    /// Agents dial over in-memory links: the link protocol without sockets (see
    /// [`ClusterConfig::in_memory_links`]).
    pub fn in_memory_links(mut self) -> Self {
        self.in_memory_links = true;
        self
    }

    /// Puts a [`LinkProxy`] in front of the orchestrator for every agent.
    pub fn with_link_proxies(mut self) -> Self {
        self.link_proxies = true;
        self
    }

    /// Puts a [`LinkProxy`] in front of agent `i` only.
    pub fn with_link_proxy_for(mut self, i: usize) -> Self {
        self.proxied_agents.insert(i);
        self
    }

    /// Sets the agents' heartbeat interval (keep it well under the disconnect timeout).
    pub fn heartbeat_interval(mut self, d: Duration) -> Self {
        self.heartbeat_interval = d;
        self
    }

    /// Sets the orchestrator's disconnect timeout and a heartbeat a fifth of it.
    pub fn disconnect_timeout(mut self, d: Duration) -> Self {
        self.disconnect_timeout = d;
        self.heartbeat_interval = d / 5;
        self
    }

    /// Sets the orchestrator's node-lost grace.
    pub fn node_lost_grace(mut self, d: Duration) -> Self {
        self.node_lost_grace = d;
        self
    }

    /// Keeps state in `dir` instead of a temporary directory.
    pub fn data_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.data_dir = Some(dir.into());
        self
    }
}

/// noop, plus wasm when the `wasm` feature is on. One wasm engine (and its epoch thread) is
/// shared by every agent of every cluster built from this config.
fn default_executors() -> ExecutorsFn {
    #[cfg(feature = "wasm")]
    let wasm = shoal_executors::wasm::WasmExecutor::new()
        .map_err(|e| tracing::warn!(error = %e, "wasm engine unavailable in the test cluster"))
        .ok();
    Arc::new(move |_| {
        let mut r = ExecutorRegistry::new();
        r.register(Arc::new(shoal_executors::noop::NoopExecutor));
        #[cfg(feature = "wasm")]
        if let Some(w) = &wasm {
            r.register(Arc::new(w.clone()));
        }
        r
    })
}

/// Why the cluster could not do what was asked.
#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    /// A part failed to start.
    #[error("test cluster: cannot start {what}: {message}")]
    Start {
        /// Which part.
        what: String,
        /// Why.
        message: String,
    },
    /// A wait ran out of time.
    #[error("test cluster: timed out after {after:?} waiting for {what}; last seen: {last}")]
    Timeout {
        /// What was awaited.
        what: String,
        /// How long it waited.
        after: Duration,
        /// The last state observed, to explain the failure.
        last: String,
    },
    /// An agent index is out of range or in the wrong state.
    #[error("test cluster: agent {index}: {message}")]
    Agent {
        /// The agent.
        index: usize,
        /// What is wrong.
        message: String,
    },
}

fn start_err(what: impl Into<String>, e: impl std::fmt::Display) -> ClusterError {
    ClusterError::Start {
        what: what.into(),
        message: e.to_string(),
    }
}

struct AgentSlot {
    config: ComputeConfig,
    executors: ExecutorRegistry,
    proxy: Option<LinkProxy>,
    /// The carrier when it is not the agent's own WebSocket.
    dialer: Option<Arc<dyn Dialer>>,
    agent: Option<Agent>,
}

impl AgentSlot {
    async fn start(&self) -> Result<Agent, shoal_compute::AgentError> {
        match &self.dialer {
            Some(d) => {
                Agent::start_with(self.config.clone(), self.executors.clone(), d.clone()).await
            }
            None => Agent::start(self.config.clone(), self.executors.clone()).await,
        }
    }
}

/// Opens each agent link as an in-memory pair whose far end the orchestrator serves directly.
struct MemoryDialer(Orchestrator);

impl Dialer for MemoryDialer {
    fn dial(&self) -> futures::future::BoxFuture<'_, Result<Box<dyn Link>, LinkError>> {
        let (agent_end, orchestrator_end) = shoal_transport::pair();
        tokio::spawn(shoal_orchestrator::serve_link(
            self.0.clone(),
            orchestrator_end,
        ));
        Box::pin(async move { Ok(Box::new(agent_end) as Box<dyn Link>) })
    }
}

/// A running in-process cluster. Dropping it stops the API and leaves agents to the runtime;
/// [`Cluster::shutdown`] stops everything in order.
pub struct Cluster {
    orchestrator: Orchestrator,
    api_addr: SocketAddr,
    client: Client,
    agents: Vec<AgentSlot>,
    config: ClusterConfig,
    api_shutdown: CancellationToken,
    data_dir: PathBuf,
    _temp: Option<tempfile::TempDir>,
    /// How long the wait helpers wait.
    pub wait_limit: Duration,
}

impl Cluster {
    /// Starts the orchestrator and its API on an ephemeral 127.0.0.1 port, then the agents.
    /// It does not wait for the agents to connect: see [`Cluster::wait_for_nodes`].
    pub async fn start(cfg: ClusterConfig) -> Result<Cluster, ClusterError> {
        let (temp, data_dir) = match &cfg.data_dir {
            Some(d) => (None, d.clone()),
            None => {
                let t = tempfile::Builder::new()
                    .prefix("shoal-testkit-")
                    .tempdir()
                    .map_err(|e| start_err("a temporary data dir", e))?;
                let p = t.path().to_path_buf();
                (Some(t), p)
            }
        };
        let mut ocfg = OrchestratorConfig::new(data_dir.join("orchestrator-node"));
        ocfg.disconnect_timeout = cfg.disconnect_timeout;
        ocfg.scheduler.node_lost_grace = cfg.node_lost_grace.as_nanos() as i64;
        ocfg.join_token = cfg.join_token.clone();
        let orchestrator =
            Orchestrator::start(ocfg).map_err(|e| start_err("the orchestrator", e))?;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .map_err(|e| start_err("the API listener", e))?;
        let api_addr = listener
            .local_addr()
            .map_err(|e| start_err("the API listener", e))?;
        let api_shutdown = CancellationToken::new();
        let app = shoal_api::router(orchestrator.clone(), shoal_api::Security::open());
        let stop = api_shutdown.clone();
        tokio::spawn(async move {
            if let Err(e) = shoal_api::serve(listener, app, stop.cancelled_owned()).await {
                tracing::error!(error = %e, "test cluster API stopped");
            }
        });
        let mut cluster = Cluster {
            client: Client::new("127.0.0.1", api_addr.port()),
            orchestrator,
            api_addr,
            agents: Vec::with_capacity(cfg.agents),
            config: cfg.clone(),
            api_shutdown,
            data_dir,
            _temp: temp,
            wait_limit: Duration::from_secs(30),
        };
        for i in 0..cfg.agents {
            cluster.add_agent(&cfg, i).await?;
        }
        Ok(cluster)
    }

    async fn add_agent(&mut self, cfg: &ClusterConfig, i: usize) -> Result<(), ClusterError> {
        let proxy = if cfg.link_proxies || cfg.proxied_agents.contains(&i) {
            Some(
                LinkProxy::start(self.api_addr)
                    .await
                    .map_err(|e| start_err(format!("the link proxy of agent {i}"), e))?,
            )
        } else {
            None
        };
        let dial = proxy.as_ref().map_or(self.api_addr, |p| p.addr());
        let mut c = ComputeConfig::new(
            self.data_dir.join(format!("agent-{i}")),
            format!("ws://{dial}"),
        );
        c.node_id = Some(node_id(i));
        c.labels = (cfg.labels)(i);
        c.labels.insert("agent".into(), i.to_string());
        c.capacity = Some(cfg.capacity);
        c.heartbeat_interval = cfg.heartbeat_interval;
        c.token = cfg.join_token.clone();
        c.in_memory_store = cfg.in_memory_stores;
        let executors = (cfg.executors)(i);
        let dialer: Option<Arc<dyn Dialer>> = cfg
            .in_memory_links
            .then(|| Arc::new(MemoryDialer(self.orchestrator.clone())) as Arc<dyn Dialer>);
        let slot = AgentSlot {
            config: c,
            executors,
            proxy,
            dialer,
            agent: None,
        };
        let agent = slot
            .start()
            .await
            .map_err(|e| start_err(format!("agent {i}"), e))?;
        self.agents.push(AgentSlot {
            agent: Some(agent),
            ..slot
        });
        Ok(())
    }

    /// Starts one more agent, built like the others (its index is the agent count before the
    /// call), as a node joining a running fleet. Returns its index.
    pub async fn join_agent(&mut self) -> Result<usize, ClusterError> {
        let i = self.agents.len();
        let cfg = self.config.clone();
        self.add_agent(&cfg, i).await?;
        Ok(i)
    }

    /// Replaces the operator labels agent `i` will present the next time it starts (the
    /// `agent=i` label is kept). The agent must be stopped: labels travel in the handshake.
    pub fn set_agent_labels(
        &mut self,
        i: usize,
        labels: BTreeMap<String, String>,
    ) -> Result<(), ClusterError> {
        let slot = self.slot(i)?;
        if slot.agent.is_some() {
            return Err(ClusterError::Agent {
                index: i,
                message: "running; stop it before changing its labels".into(),
            });
        }
        slot.config.labels = labels;
        slot.config.labels.insert("agent".into(), i.to_string());
        Ok(())
    }

    /// The orchestrator handle (direct calls, no HTTP).
    pub fn orchestrator(&self) -> &Orchestrator {
        &self.orchestrator
    }

    /// A REST client for the API.
    pub fn client(&self) -> &Client {
        &self.client
    }

    /// The API's address.
    pub fn api_addr(&self) -> SocketAddr {
        self.api_addr
    }

    /// Where the cluster keeps its state.
    pub fn data_dir(&self) -> &Path {
        &self.data_dir
    }

    /// How many agents the cluster has (running or stopped).
    pub fn agent_count(&self) -> usize {
        self.agents.len()
    }

    /// The node id of agent `i`.
    pub fn node_id(&self, i: usize) -> String {
        node_id(i)
    }

    /// The node ids of all agents, in index order.
    pub fn node_ids(&self) -> Vec<String> {
        (0..self.agents.len()).map(node_id).collect()
    }

    /// The link proxy of agent `i` (only with [`ClusterConfig::with_link_proxies`] or
    /// [`ClusterConfig::with_link_proxy_for`]).
    pub fn proxy(&self, i: usize) -> Option<&LinkProxy> {
        self.agents.get(i).and_then(|a| a.proxy.as_ref())
    }

    fn slot(&mut self, i: usize) -> Result<&mut AgentSlot, ClusterError> {
        let n = self.agents.len();
        self.agents.get_mut(i).ok_or(ClusterError::Agent {
            index: i,
            message: format!("no such agent; the cluster has {n}"),
        })
    }

    /// Stops agent `i` the way an operator does: its link closes and its running executions
    /// are cancelled. Its data dir and id are kept for [`Cluster::start_agent`].
    pub async fn stop_agent(&mut self, i: usize) -> Result<(), ClusterError> {
        let agent = self.slot(i)?.agent.take().ok_or(ClusterError::Agent {
            index: i,
            message: "already stopped".into(),
        })?;
        agent.shutdown().await;
        Ok(())
    }

    /// Starts agent `i` again on its data dir, with the same id, labels and executors.
    pub async fn start_agent(&mut self, i: usize) -> Result<(), ClusterError> {
        let slot = self.slot(i)?;
        if slot.agent.is_some() {
            return Err(ClusterError::Agent {
                index: i,
                message: "already running".into(),
            });
        }
        let agent = slot
            .start()
            .await
            .map_err(|e| start_err(format!("agent {i}"), e))?;
        slot.agent = Some(agent);
        Ok(())
    }

    /// Every node the orchestrator knows, with live connection state and free capacity.
    pub async fn nodes(&self) -> Vec<NodeState> {
        self.orchestrator.nodes().await.unwrap_or_default()
    }

    /// Waits until exactly `n` nodes are connected.
    pub async fn wait_for_nodes(&self, n: usize) -> Result<(), ClusterError> {
        self.wait_nodes(&format!("{n} connected nodes"), |nodes| {
            connected(nodes).len() == n
        })
        .await
        .map(|_| ())
    }

    /// Waits until node `node_id` has connection status `status`.
    pub async fn wait_node_status(
        &self,
        node_id: &str,
        status: ConnectionStatus,
    ) -> Result<NodeState, ClusterError> {
        let nodes = self
            .wait_nodes(&format!("node {node_id} to be {status}"), |nodes| {
                nodes
                    .iter()
                    .any(|n| n.info.node_id == node_id && n.connection == status)
            })
            .await?;
        Ok(nodes
            .into_iter()
            .find(|n| n.info.node_id == node_id)
            .expect("the predicate found it"))
    }

    /// Waits until the node table satisfies `pred`; returns the table.
    pub async fn wait_nodes(
        &self,
        what: &str,
        pred: impl Fn(&[NodeState]) -> bool,
    ) -> Result<Vec<NodeState>, ClusterError> {
        self.poll(what, || async {
            let nodes = self.nodes().await;
            if pred(&nodes) {
                Ok(nodes)
            } else {
                Err(format!("connected: {:?}", connected(&nodes)))
            }
        })
        .await
    }

    /// Waits until job `id`'s state satisfies `pred`; returns the job.
    pub async fn wait_job_state(
        &self,
        id: &str,
        pred: impl Fn(&Job) -> bool,
    ) -> Result<Job, ClusterError> {
        self.poll(&format!("job {id}"), || async {
            match self.orchestrator.job(id).await {
                Ok(job) if pred(&job) => Ok(job),
                Ok(job) => Err(format!("{} ({})", job.state.state_type, job.state.message)),
                Err(e) => Err(e.to_string()),
            }
        })
        .await
    }

    /// Polls `probe` until it answers `Ok`, or [`Cluster::wait_limit`] passes. Cluster state has
    /// no change feed yet, so waits poll the orchestrator every 20 ms.
    async fn poll<T, F, Fut>(&self, what: &str, mut probe: F) -> Result<T, ClusterError>
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = Result<T, String>>,
    {
        let deadline = tokio::time::Instant::now() + self.wait_limit;
        loop {
            match probe().await {
                Ok(v) => return Ok(v),
                Err(last) if tokio::time::Instant::now() >= deadline => {
                    return Err(ClusterError::Timeout {
                        what: what.to_string(),
                        after: self.wait_limit,
                        last,
                    });
                }
                Err(_) => tokio::time::sleep(Duration::from_millis(20)).await,
            }
        }
    }

    /// Stops every agent, then the API.
    pub async fn shutdown(mut self) {
        for slot in &mut self.agents {
            if let Some(a) = slot.agent.take() {
                a.shutdown().await;
            }
        }
        self.api_shutdown.cancel();
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        self.api_shutdown.cancel();
    }
}

fn node_id(i: usize) -> String {
    format!("n-testkit-{i}")
}

fn connected(nodes: &[NodeState]) -> Vec<&str> {
    nodes
        .iter()
        .filter(|n| n.connection == ConnectionStatus::Connected)
        .map(|n| n.info.node_id.as_str())
        .collect()
}
