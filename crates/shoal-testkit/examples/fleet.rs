//! Starts a simulated fleet of noop agents in one process and reports what it costs.
//!
//! `cargo run -p shoal-testkit --example fleet -- 2000 [--disk]` prints the time until every agent is
//! connected, the process's resident memory and open files, and the time of one noop batch job
//! with a partition per agent. A measuring tool, not a test: nothing here asserts timings.

use std::time::Instant;

use shoal_testkit::{Cluster, ClusterConfig};

fn proc_status(field: &str) -> String {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with(field))
                .map(|l| l[field.len()..].trim().to_string())
        })
        .unwrap_or_else(|| "?".into())
}

fn open_files() -> usize {
    std::fs::read_dir("/proc/self/fd").map_or(0, |d| d.count())
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let n: usize = std::env::args()
        .nth(1)
        .map(|s| s.parse())
        .transpose()?
        .unwrap_or(1000);
    let t = Instant::now();
    let mut cfg = ClusterConfig::new(n).noop_only();
    if !std::env::args().any(|a| a == "--disk") {
        cfg = cfg.in_memory_stores();
    }
    let mut cluster = Cluster::start(cfg).await?;
    let started = t.elapsed();
    cluster.wait_limit = std::time::Duration::from_secs(600);
    cluster.wait_for_nodes(n).await?;
    let connected = t.elapsed();
    println!(
        "{n} agents: started in {started:?}, all connected after {connected:?}; \
         RSS {}, threads {}, open files {}",
        proc_status("VmRSS:"),
        proc_status("Threads:"),
        open_files()
    );
    let job = shoal_types::spec::parse_job(&format!(
        "Type: batch\nCount: {n}\nTasks:\n  - Name: t\n    Engine: {{Type: noop}}\n    Resources: {{CPU: 100m, Memory: 1Mi}}\n"
    ))?;
    let t = Instant::now();
    let id = cluster.client().submit(&job).await?;
    let done = cluster
        .wait_job_state(&id, |j| j.state.state_type.is_terminal())
        .await?;
    println!(
        "batch job with {n} partitions: {} after {:?}",
        done.state.state_type,
        t.elapsed()
    );
    cluster.shutdown().await;
    Ok(())
}
