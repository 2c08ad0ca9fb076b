//! `shoal job rollout-status` and `shoal job promote`: where a job's rollout stands, and letting
//! it go on past its canaries.

use std::process::ExitCode;

use shoal_types::rollout::RolloutState;

use crate::endpoint::Endpoint;
use crate::output::{self, Format};
use crate::wait::short;

/// `shoal job rollout-status ID`: the rollout's settings, phase, counts and every node.
/// Exits 1 when the job has no rollout.
pub async fn status(endpoint: &Endpoint, id: &str, format: Format) -> anyhow::Result<ExitCode> {
    let view = endpoint.client()?.job(id, "").await?;
    let Some(state) = view.rollout else {
        let why = if view.job.rollout.is_some() {
            "its rollout has not started yet"
        } else {
            "it has no Rollout block (see the README, \"Rollouts\")"
        };
        eprintln!("job {}: no rollout to show: {why}", view.job.id);
        return Ok(ExitCode::FAILURE);
    };
    if format != Format::Table {
        output::structured(format, &state)?;
        return Ok(ExitCode::SUCCESS);
    }
    print!("{}", summary(&view.job.id, &state));
    let rows = state
        .nodes
        .iter()
        .map(|n| {
            vec![
                short(n.node_id.as_str()),
                n.progress.as_str().to_string(),
                output::time(n.since),
                n.message.clone(),
            ]
        })
        .collect();
    println!(
        "\n{}",
        output::table(&["NODE", "PROGRESS", "SINCE", "DETAIL"], rows)
    );
    Ok(ExitCode::SUCCESS)
}

/// `shoal job promote ID`.
pub async fn promote(endpoint: &Endpoint, id: &str) -> anyhow::Result<ExitCode> {
    let state = endpoint.client()?.promote(id).await?;
    match state {
        Some(state) => print!("{}", summary(id, &state)),
        None => println!("job {id} promoted"),
    }
    Ok(ExitCode::SUCCESS)
}

/// The lines `describe` and `rollout-status` share: settings, phase, counts, outcome.
pub fn summary(job_id: &str, state: &RolloutState) -> String {
    let r = &state.rollout;
    let mut settings = vec![format!("batch {}", r.batch)];
    if !r.canary.is_zero() {
        settings.push(format!("canary {}", r.canary));
    }
    if !r.pause.is_zero() {
        settings.push(format!("pause {}", r.pause));
    }
    settings.push(format!("max failures {}", r.max_failures));
    let counts = state
        .counts()
        .iter()
        .map(|(p, n)| format!("{n} {}", p.as_str()))
        .collect::<Vec<_>>()
        .join(", ");
    let mut text = format!(
        "Rollout of {job_id} version {}: {} nodes ({})\n",
        state.job_version,
        state.nodes.len(),
        settings.join(", ")
    );
    text.push_str(&format!("Phase    = {}\n", state.phase));
    text.push_str(&format!("Progress = {counts}\n"));
    if let Some(outcome) = &state.outcome {
        text.push_str(&format!("Outcome  = {outcome}\n"));
    }
    text
}
