//! `shoal serve`: orchestrator, compute node, or both.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use clap::Args;
use shoal_compute::{Agent, AllowedPath, ComputeConfig};
use shoal_executors::ExecutorRegistry;
use shoal_orchestrator::{Orchestrator, OrchestratorConfig};

use crate::endpoint::Endpoint;

/// `serve` arguments.
#[derive(Args, Debug)]
pub struct ServeArgs {
    /// Run the orchestrator (REST API, scheduler, node manager).
    #[arg(long)]
    pub orchestrator: bool,
    /// Run a compute node.
    #[arg(long)]
    pub compute: bool,
    /// Orchestrator a compute node dials (`ws://host:port` or `http://host:port`).
    #[arg(long, value_delimiter = ',')]
    pub orchestrators: Vec<String>,
    /// Node labels `key=value,...` used by job constraints.
    #[arg(long, value_delimiter = ',')]
    pub labels: Vec<String>,
    /// Join token: required by an orchestrator from its nodes, presented by a compute node.
    /// An orchestrator without one generates one and keeps it in its data dir.
    #[arg(long, env = "SHOAL_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// New nodes wait for `shoal node approve` before they get work.
    #[arg(long)]
    pub require_approval: bool,
    /// Host path jobs may mount with `local` inputs: `/path`, `/path:ro` or `/path:rw` (repeatable).
    #[arg(long = "allow-path")]
    pub allow_paths: Vec<String>,
    /// Node id for a compute node (default: generated once and kept in the data dir).
    #[arg(long)]
    pub name: Option<String>,
    /// Compute node: refuse jobs that ask for a network (task `Network.Type` other than
    /// `None`); `job describe` shows the refusal.
    #[arg(long)]
    pub reject_networked_jobs: bool,
    /// Compute node: seconds an execution may spend preparing (pulling its image) before it
    /// fails; separate from the job's run-time limit.
    #[arg(long, default_value_t = shoal_compute::DEFAULT_PREPARE_TIMEOUT.as_secs())]
    pub prepare_timeout: u64,
    /// Orchestrator: a node whose heartbeats stop for this long is marked disconnected
    /// (`30s`, `2m`, ...).
    #[arg(long, value_parser = humantime::parse_duration, default_value = "15s")]
    pub disconnect_timeout: Duration,
    /// Orchestrator: how long a disconnected node's batch and service work is left alone
    /// before it is placed elsewhere (the node may come back and finish it).
    #[arg(long, value_parser = humantime::parse_duration, default_value = "5m")]
    pub node_lost_grace: Duration,
    /// Compute node: how often it sends a heartbeat (keep it well under the orchestrator's
    /// --disconnect-timeout).
    #[arg(long, value_parser = humantime::parse_duration, default_value = "5s")]
    pub heartbeat_interval: Duration,
}

/// Parses `k=v` labels, naming the bad one.
pub fn parse_labels(items: &[String]) -> anyhow::Result<BTreeMap<String, String>> {
    items
        .iter()
        .filter(|s| !s.is_empty())
        .map(|s| {
            let (k, v) = s
                .split_once('=')
                .with_context(|| format!("label {s:?} must be key=value"))?;
            Ok((k.trim().to_string(), v.trim().to_string()))
        })
        .collect()
}

/// The engines a compute node offers: noop and wasm always; docker when its daemon answers;
/// query (host tables) when built in.
pub async fn executors(node_id: &str) -> ExecutorRegistry {
    let mut registry = ExecutorRegistry::new();
    registry.register(Arc::new(shoal_executors::noop::NoopExecutor));
    #[cfg(feature = "wasm")]
    match shoal_executors::wasm::WasmExecutor::new() {
        Ok(w) => {
            registry.register(Arc::new(w));
        }
        Err(e) => {
            tracing::warn!(error = %e, "wasm engine unavailable");
            registry.mark_unavailable("wasm", e.to_string());
        }
    }
    #[cfg(feature = "docker")]
    match shoal_executors::docker::DockerExecutor::connect() {
        Ok(d) => {
            let d = d.with_node_id(node_id);
            match d.probe().await {
                Ok(_) => {
                    if let Err(e) = d.cleanup_orphans(&Default::default()).await {
                        tracing::warn!(error = %e, "could not clean up containers left by an earlier run");
                    }
                    registry.register(Arc::new(d));
                }
                Err(e) => {
                    tracing::info!(reason = %e, "docker engine unavailable");
                    registry.mark_unavailable("docker", e);
                }
            }
        }
        Err(e) => {
            tracing::info!(reason = %e, "docker engine unavailable");
            registry.mark_unavailable("docker", e.to_string());
        }
    }
    #[cfg(feature = "query")]
    registry.register(Arc::new(shoal_executors::query::QueryExecutor::default()));
    let _ = node_id;
    registry
}

/// Binds the API and starts the orchestrator behind it; returns the handle and the address.
pub async fn start_orchestrator(
    host: &str,
    port: u16,
    cfg: OrchestratorConfig,
) -> anyhow::Result<(Orchestrator, SocketAddr)> {
    let orch = Orchestrator::start(cfg).context("cannot start the orchestrator")?;
    let listener = tokio::net::TcpListener::bind((host, port)).await.with_context(|| {
        format!("cannot listen on {host}:{port}; is another shoal already running there? choose another port with --api-port")
    })?;
    let addr = listener.local_addr()?;
    let app = shoal_api::router(orch.clone());
    tokio::spawn(async move {
        if let Err(e) = shoal_api::serve(listener, app, std::future::pending()).await {
            tracing::error!(error = %e, "API server stopped");
        }
    });
    Ok((orch, addr))
}

/// The join token: given, or generated once and kept in the data dir.
fn join_token(data_dir: &Path, given: Option<String>) -> anyhow::Result<String> {
    if let Some(t) = given {
        return Ok(t);
    }
    let path = data_dir.join("orchestrator").join("join-token");
    if let Ok(t) = std::fs::read_to_string(&path) {
        return Ok(t.trim().to_string());
    }
    std::fs::create_dir_all(path.parent().expect("has a parent"))?;
    let token = uuid::Uuid::new_v4().simple().to_string();
    std::fs::write(&path, &token).with_context(|| format!("cannot write {}", path.display()))?;
    Ok(token)
}

/// Runs `shoal serve` until interrupted.
pub async fn run(endpoint: &Endpoint, args: ServeArgs) -> anyhow::Result<ExitCode> {
    let data_dir = endpoint.data_dir();
    let run_orchestrator = args.orchestrator || !args.compute;
    let labels = parse_labels(&args.labels)?;
    let host = endpoint
        .api_host
        .clone()
        .unwrap_or_else(|| "0.0.0.0".into());
    let port = endpoint.port()?;
    let mut dial = args.orchestrators.first().cloned();
    let mut token = args.token.clone();
    if run_orchestrator {
        let t = join_token(&data_dir, token.clone())?;
        let mut cfg = OrchestratorConfig::new(&data_dir);
        cfg.join_token = Some(t.clone());
        cfg.require_approval = args.require_approval;
        cfg.disconnect_timeout = args.disconnect_timeout;
        cfg.scheduler.node_lost_grace = i64::try_from(args.node_lost_grace.as_nanos())
            .context("--node-lost-grace is too long")?;
        let (_orch, addr) = start_orchestrator(&host, port, cfg).await?;
        println!(
            "Orchestrator listening on http://{addr} (data dir {})",
            data_dir.display()
        );
        println!("To add a compute node, run on it:");
        println!(
            "  shoal serve --compute --orchestrators ws://<this-host>:{} --token {t}",
            addr.port()
        );
        dial.get_or_insert_with(|| format!("ws://127.0.0.1:{}", addr.port()));
        token = Some(t);
    }
    let _agent = if args.compute {
        let url = dial.context(
            "a compute node needs --orchestrators ws://HOST:PORT (the orchestrator it dials)",
        )?;
        let mut cfg = ComputeConfig::new(&data_dir, url.clone());
        cfg.token = token;
        cfg.labels = labels;
        cfg.node_id = args.name.clone();
        cfg.reject_networked_jobs = args.reject_networked_jobs;
        cfg.prepare_timeout = std::time::Duration::from_secs(args.prepare_timeout);
        anyhow::ensure!(
            !args.heartbeat_interval.is_zero(),
            "--heartbeat-interval must be longer than 0s (for example 5s)"
        );
        cfg.heartbeat_interval = args.heartbeat_interval;
        cfg.allowed_paths = args
            .allow_paths
            .iter()
            .map(|p| AllowedPath::parse(p))
            .collect();
        let node_id = args.name.clone().unwrap_or_default();
        let agent = Agent::start(cfg, executors(&node_id).await)
            .await
            .context("cannot start the compute agent")?;
        println!(
            "Compute node {} dialling {url} (engines: {})",
            agent.node_id(),
            agent
                .node_info()
                .compute_node_info
                .execution_engines
                .join(", ")
        );
        Some(agent)
    } else {
        None
    };
    tokio::signal::ctrl_c().await?;
    Ok(ExitCode::SUCCESS)
}
