//! How scheduled jobs read in `job list --scheduled` and `job describe`.

use shoal_types::Job;
use shoal_types::schedule::{Schedule, ScheduleStatus, child_name, tick_name};

use crate::output;
use crate::wait::short;

/// `job list --scheduled`: one row per scheduled job with its pattern, zone and next run.
pub fn list_table(jobs: &[Job]) -> String {
    let rows = jobs
        .iter()
        .filter_map(|j| j.schedule.as_ref().map(|s| (j, s)))
        .map(|(j, s)| {
            vec![
                short(&j.id),
                j.name.clone(),
                j.job_type.to_string(),
                s.cron.clone(),
                s.time_zone.clone(),
                next_run(j, s),
                j.state.state_type.to_string(),
            ]
        })
        .collect();
    output::table(
        &[
            "ID",
            "NAME",
            "TYPE",
            "CRON",
            "TIME ZONE",
            "NEXT RUN",
            "STATE",
        ],
        rows,
    )
}

/// The next run in the schedule's zone, from the parent's state; `-` when there is none.
fn next_run(job: &Job, s: &Schedule) -> String {
    if job.state.state_type.is_terminal() {
        return "-".into();
    }
    if s.suspend {
        return "suspended".into();
    }
    let at = job
        .state
        .details
        .get("NextRun")
        .and_then(|t| humantime::parse_rfc3339(t).ok())
        .map(shoal_types::time::to_unix_nanos);
    match (at, s.clock()) {
        (Some(at), Ok(clock)) => clock.local(at),
        _ => "-".into(),
    }
}

/// The `Schedule:` block of `job describe`.
pub fn describe(name: &str, s: &Schedule, status: Option<&ScheduleStatus>) {
    let clock = s.clock().ok();
    let local = |t: i64| match &clock {
        Some(c) => format!("{} ({})", c.local(t), tick_name(t)),
        None => tick_name(t),
    };
    println!("\nSchedule:");
    let described = clock.as_ref().map(|c| c.describe()).unwrap_or_default();
    println!("  Cron          = {}  ({described})", s.cron);
    println!("  Time Zone     = {}", s.time_zone);
    println!("  Overlap       = {}", s.overlap);
    println!(
        "  Catch Up      = {} (MaxCatchUp {})",
        s.catch_up, s.max_catch_up
    );
    if !s.starting_deadline.is_zero() {
        println!("  Deadline      = {}", s.starting_deadline);
    }
    if s.suspend {
        println!("  Suspended     = true");
    }
    let Some(status) = status else {
        return;
    };
    match status.next_run {
        Some(t) if !s.suspend => println!("  Next Run      = {}", local(t)),
        _ => println!("  Next Run      = -"),
    }
    if let Some(t) = status.last_tick {
        println!("  Last Tick     = {}", local(t));
    }
    if !status.runs.is_empty() {
        println!("\nLatest runs (`shoal job list --parent <id>` lists all):");
        let rows = status
            .runs
            .iter()
            .map(|r| vec![child_name(name, r.tick), r.job_id.clone()])
            .collect();
        println!("{}", output::table(&["NAME", "JOB ID"], rows));
    }
}
