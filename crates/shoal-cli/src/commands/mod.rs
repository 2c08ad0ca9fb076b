//! One module per command group.

pub mod analytics_flags;
pub mod auth;
pub mod data_flags;
pub mod demo;
pub mod devstack;
pub mod docker;
pub mod exec;
pub mod exec_flags;
pub mod job;
pub mod job_get;
pub mod key_value;
pub mod node;
pub mod node_top;
pub mod query;
pub mod rollout;
pub mod schedule_view;
pub mod serve;
pub mod wasm;

use std::process::ExitCode;
use std::time::Duration;

use clap::{ArgAction, Args};
use shoal_client::Client;
use shoal_types::{ComputeStateType, Job, JobStateType};

use crate::endpoint::Endpoint;
use crate::output::{self, Format};
use crate::wait;

/// Flags shared by every command that submits a job.
#[derive(Args, Clone, Debug)]
pub struct RunFlags {
    /// Wait for the job to finish (`--wait=false` returns right after submission).
    #[arg(long, default_value_t = true, action = ArgAction::Set, num_args = 0..=1, default_missing_value = "true")]
    pub wait: bool,
    /// Print only the job id (still waits unless --wait=false).
    #[arg(long)]
    pub id_only: bool,
    /// Stream the job's logs while it runs instead of its events.
    #[arg(short, long)]
    pub follow: bool,
    /// Output format of the final job view.
    #[arg(long, value_enum, default_value_t = Format::Table)]
    pub output: Format,
    /// Submit even when a job of the same name already has this exact spec (runs it again as
    /// a new version). A changed spec under an existing name always updates that job.
    #[arg(long)]
    pub force: bool,
}

/// `shoal version`.
pub async fn version(endpoint: &Endpoint) -> anyhow::Result<ExitCode> {
    println!("client: shoal v{}", env!("CARGO_PKG_VERSION"));
    match endpoint.client()?.alive().await {
        Ok(()) => println!("server: {} (alive)", endpoint.client()?.url()),
        Err(e) => println!("server: unavailable ({e})"),
    }
    Ok(ExitCode::SUCCESS)
}

/// Submits a job and, unless told not to, waits and reports how it ended. The exit code is 0
/// only when the job completed and every execution exited 0; a task's own non-zero exit code
/// is passed through when there is one.
pub async fn submit_and_report(
    client: &Client,
    job: &Job,
    flags: &RunFlags,
) -> anyhow::Result<ExitCode> {
    let submitted = client.submit_with(job, flags.force).await?;
    for w in &submitted.warnings {
        eprintln!("warning: {w}");
    }
    let id = submitted.job_id;
    if flags.id_only {
        println!("{id}");
    } else {
        eprintln!("Job successfully submitted. Job ID: {id}");
    }
    if job.schedule.is_some() {
        // A scheduled job never ends by itself; its runs are jobs of their own.
        if !flags.id_only {
            let parent = client.job(&id, "").await?.job;
            eprintln!("{}", parent.state.message);
            eprintln!(
                "Runs are jobs named {}@<time>: `shoal job list --parent {id}`; `shoal job stop {id}` ends the schedule",
                parent.name
            );
        }
        return Ok(ExitCode::SUCCESS);
    }
    if !flags.wait {
        return Ok(ExitCode::SUCCESS);
    }
    let quiet = flags.id_only || flags.output != Format::Table;
    let view = if flags.follow {
        follow_logs(client, &id).await?;
        wait::until_done(client, &id, true).await?
    } else {
        if !quiet {
            eprintln!("Checking job status... (Ctrl+C to stop watching; the job keeps running)");
        }
        wait::until_done(client, &id, quiet).await?
    };
    if flags.output != Format::Table {
        output::structured(
            flags.output,
            &serde_json::json!({ "Job": view.job, "Executions": view.executions.as_ref().map(|e| &e.items) }),
        )?;
    }
    let executions = view.executions.map(|e| e.items).unwrap_or_default();
    if !quiet && !flags.follow {
        for e in executions
            .iter()
            .filter(|e| e.compute_state.state_type == ComputeStateType::Completed)
        {
            if let Some(o) = &e.run_output {
                print!("{}", o.stdout);
                eprint!("{}", o.stderr);
            }
        }
    }
    let state = view.job.state.state_type;
    if state != JobStateType::Completed {
        if !flags.id_only {
            eprintln!(
                "Job {id} {}: {}",
                state.as_str().to_lowercase(),
                view.job.state.message
            );
            eprintln!("To see why, run: shoal job describe {id}");
        }
        return Ok(ExitCode::FAILURE);
    }
    let nonzero = executions
        .iter()
        .filter_map(|e| e.exit_code())
        .find(|c| *c != 0);
    if !quiet {
        eprintln!("To get more details about the run, run: shoal job describe {id}");
    }
    Ok(match nonzero {
        Some(code) => ExitCode::from(code.clamp(1, 255) as u8),
        None => ExitCode::SUCCESS,
    })
}

/// Streams logs of the job's first execution once it exists.
async fn follow_logs(client: &Client, id: &str) -> anyhow::Result<()> {
    let mut delay = Duration::from_millis(5);
    loop {
        let view = client.job(id, "executions").await?;
        let has_execution = view.executions.is_some_and(|e| !e.items.is_empty());
        if has_execution {
            break;
        }
        if view.job.state.state_type.is_terminal() {
            return Ok(());
        }
        tokio::time::sleep(delay).await;
        delay = (delay * 2).min(Duration::from_millis(250));
    }
    client
        .logs(id, None, true, false, crate::output::log_line)
        .await?;
    Ok(())
}
