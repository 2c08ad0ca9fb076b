//! `shoal devstack`: an orchestrator and N compute agents in one process.
//!
//! Each agent has its own data dir and labels and dials the orchestrator over a real
//! WebSocket on the API port: the same code path as a fleet of machines, on one.

use std::process::ExitCode;

use clap::Args;
use shoal_compute::{Agent, ComputeConfig};
use shoal_orchestrator::OrchestratorConfig;

use super::analytics_flags::AnalyticsFlags;
use super::exec_flags::ExecFlags;
use super::serve::{HostRootFlags, executors, ready_when_joined, start_orchestrator};
use crate::endpoint::Endpoint;

/// `devstack` arguments.
#[derive(Args, Debug)]
pub struct DevstackArgs {
    /// How many compute agents to start.
    #[arg(long, default_value_t = 3)]
    pub computes: usize,
    /// Every agent's exec policy (off unless --enable-exec).
    #[command(flatten)]
    pub exec: ExecFlags,
    /// Where every agent reads its host from (they share one machine).
    #[command(flatten)]
    pub host: HostRootFlags,
    /// Every agent's data policy for the analytics engine (off unless --data-allow).
    #[command(flatten)]
    pub data: AnalyticsFlags,
}

/// Runs devstack until interrupted.
pub async fn run(endpoint: &Endpoint, args: DevstackArgs) -> anyhow::Result<ExitCode> {
    let exec = args.exec.policy()?;
    let data_dir = endpoint.data_dir().join("devstack");
    let host = endpoint
        .api_host
        .clone()
        .unwrap_or_else(|| "127.0.0.1".into());
    let port = endpoint.port()?;
    let cfg = OrchestratorConfig::new(&data_dir);
    // Alive once every agent has joined, so a first job finds them all.
    let ready = shoal_api::Readiness::starting();
    // Devstack is one machine's sandbox: no credentials, as in Bacalhau's devstack.
    let (orch, addr) = start_orchestrator(
        &host,
        port,
        cfg,
        shoal_api::Security::open(),
        None,
        ready.clone(),
    )
    .await?;
    let url = format!("ws://127.0.0.1:{}", addr.port());
    let mut agents = Vec::new();
    for i in 0..args.computes {
        let mut cfg = ComputeConfig::new(data_dir.join(format!("node-{i}")), url.clone());
        cfg.node_id = Some(format!("n-devstack-{i}"));
        cfg.host_roots = args.host.roots();
        cfg.labels.insert("devstack-node".into(), i.to_string());
        cfg.labels
            .insert("region".into(), ["eu", "us", "ap"][i % 3].into());
        let id = cfg.node_id.clone().unwrap_or_default();
        let data = args.data.policy(&cfg.labels["region"], &i.to_string())?;
        let logs = args.host.log_dirs(&cfg.labels["region"], &i.to_string())?;
        agents.push(Agent::start(cfg, executors(&id, &exec, &data, &logs).await).await?);
    }
    tokio::spawn(ready_when_joined(
        orch,
        agents.iter().map(|a| a.node_id().to_string()).collect(),
        ready,
    ));
    let engines = agents
        .first()
        .map(|a| a.node_info().compute_node_info.execution_engines.join(", "))
        .unwrap_or_default();
    println!(
        "Devstack is up: orchestrator on http://{addr}, {} compute nodes (engines: {engines}).",
        agents.len()
    );
    println!("Web UI: http://{addr}/ui");
    println!("State lives in {}.", data_dir.display());
    println!("Try, in another terminal:");
    println!("  shoal wasm run examples/hello.wat");
    println!("  shoal job run examples/hello-wasm.yaml");
    println!("  shoal node list");
    println!("Press Ctrl+C to stop.");
    tokio::signal::ctrl_c().await?;
    for a in agents {
        a.shutdown().await;
    }
    Ok(ExitCode::SUCCESS)
}
