//! Waiting for a job: print its history as it happens, return its final state.

use std::time::Duration;

use shoal_client::{Client, JobView};

/// Polls the job's history, printing each new event (unless `quiet`), until the job is
/// terminal. Returns the final view with executions.
pub async fn until_done(client: &Client, job_id: &str, quiet: bool) -> anyhow::Result<JobView> {
    let mut token = String::new();
    let mut delay = Duration::from_millis(5);
    loop {
        let page = client.history(job_id, &token).await?;
        for h in &page.items {
            if !quiet {
                let who = if h.execution_id.is_empty() {
                    String::new()
                } else {
                    format!(" [{}]", short(&h.execution_id))
                };
                eprintln!(
                    "  {} {}{}: {}",
                    &h.time.get(11..19).unwrap_or(""),
                    h.event.topic,
                    who,
                    h.event.message
                );
            }
        }
        if !page.next_token.is_empty() {
            token = page.next_token;
        }
        let view = client.job(job_id, "executions").await?;
        if view.job.state.state_type.is_terminal() {
            // One last read so events written with the final state are shown.
            for h in client.history(job_id, &token).await?.items {
                if !quiet {
                    eprintln!(
                        "  {} {}: {}",
                        &h.time.get(11..19).unwrap_or(""),
                        h.event.topic,
                        h.event.message
                    );
                }
            }
            return Ok(view);
        }
        tokio::time::sleep(delay).await;
        delay = (delay * 2).min(Duration::from_millis(250));
    }
}

/// The short form of an id (prefix plus first UUID group).
pub fn short(id: &str) -> String {
    match id.get(2..).and_then(|rest| rest.find('-')) {
        Some(i) if id.len() > 2 => id[..2 + i].to_string(),
        _ => id.to_string(),
    }
}
