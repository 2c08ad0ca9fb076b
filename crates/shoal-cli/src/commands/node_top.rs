//! `shoal node top`: the fleet's host samples in the terminal, busiest first, refreshing.

use std::io::IsTerminal;
use std::process::ExitCode;
use std::time::Duration;

use clap::Args;
use shoal_client::Client;
use shoal_types::fleet::{FleetGroup, FleetNode, FleetReport};
use shoal_types::resources::format_bytes;

use crate::output::{self, Format};

/// `node top` arguments.
#[derive(Args, Debug)]
pub struct TopArgs {
    /// One row per value of this node label (`region`, `rack`), aggregated, instead of one row
    /// per node. Nodes without the label form the group `(none)`.
    #[arg(long)]
    pub by: Option<String>,
    /// Print once and exit. Also the behaviour when stdout is not a terminal, and with
    /// --output json or yaml.
    #[arg(long)]
    pub once: bool,
    /// How often to refresh (`2s`, `500ms`, `1m`).
    #[arg(long, default_value = "2s", value_parser = parse_interval)]
    pub interval: Duration,
    /// Output format (json and yaml print the orchestrator's report once).
    #[arg(long, value_enum, default_value_t = Format::Table)]
    pub output: Format,
}

/// `--interval`: a duration longer than zero.
fn parse_interval(s: &str) -> Result<Duration, String> {
    let d = humantime::parse_duration(s.trim())
        .map_err(|e| format!("{s:?} is not a duration ({e}); write it like 2s, 500ms or 1m"))?;
    if d.is_zero() {
        return Err("must be longer than 0s, for example 2s".into());
    }
    Ok(d)
}

/// Runs `node top`.
pub async fn run(client: &Client, args: TopArgs) -> anyhow::Result<ExitCode> {
    // Without --by every node is a row; its group column shows the default label.
    let per_node = args.by.is_none();
    let by = args.by.as_deref();
    if args.output != Format::Table {
        let report = client.fleet_metrics(by, per_node).await?;
        output::structured(args.output, &report)?;
        return Ok(ExitCode::SUCCESS);
    }
    let live = !args.once && std::io::stdout().is_terminal();
    loop {
        let report = client.fleet_metrics(by, per_node).await?;
        let page = page(&report, per_node);
        if !live {
            println!("{page}");
            for note in notes(&report, per_node) {
                eprintln!("note: {note}");
            }
            return Ok(ExitCode::SUCCESS);
        }
        // Home the cursor and clear the screen, then draw: the table refreshes in place.
        println!("\x1b[H\x1b[2J{page}");
        for note in notes(&report, per_node) {
            println!("note: {note}");
        }
        println!(
            "\nrefreshing every {} (Ctrl+C to stop)",
            humantime::format_duration(args.interval)
        );
        tokio::time::sleep(args.interval).await;
    }
}

/// The notes worth showing: without --by, that the default label is missing does not matter.
fn notes(report: &FleetReport, per_node: bool) -> Vec<&str> {
    report
        .notes
        .iter()
        .map(String::as_str)
        .filter(|n| !(per_node && n.contains(&format!("label {:?}", report.by))))
        .collect()
}

/// The table, with a line above it saying how many nodes it covers.
fn page(report: &FleetReport, per_node: bool) -> String {
    let now = output::time(shoal_types::time::to_unix_nanos(
        std::time::SystemTime::now(),
    ));
    let mut head = format!("{} nodes reporting", report.reporting);
    if !per_node {
        head.push_str(&format!(", grouped by {}", report.by));
    }
    let table = if per_node {
        node_table(&report.by, &report.nodes)
    } else {
        group_table(&report.by, &report.groups)
    };
    format!("{head} at {now}\n{table}")
}

/// One row per node, as the orchestrator sorted them (busiest CPU first).
fn node_table(by: &str, nodes: &[FleetNode]) -> String {
    let rows = nodes
        .iter()
        .map(|n| {
            let s = &n.sample;
            vec![
                n.node_id.clone(),
                group_name(&n.group),
                percent(s.cpu_percent),
                used_of(s.memory_used, s.memory_total),
                used_of(s.disk_used, s.disk_total),
                format!("{:.2} {:.2} {:.2}", s.load1, s.load5, s.load15),
                celsius(s.temperature_c),
                n.running_executions.to_string(),
            ]
        })
        .collect();
    let by = by.to_uppercase();
    output::table(
        &[
            "NODE",
            &by,
            "CPU",
            "MEMORY",
            "DISK",
            "LOAD 1/5/15",
            "TEMP",
            "RUNNING",
        ],
        rows,
    )
}

/// One row per group, busiest average CPU first.
fn group_table(by: &str, groups: &[FleetGroup]) -> String {
    let mut groups: Vec<&FleetGroup> = groups.iter().collect();
    groups.sort_by(|a, b| {
        b.cpu_percent_avg
            .total_cmp(&a.cpu_percent_avg)
            .then_with(|| a.value.cmp(&b.value))
    });
    let rows = groups
        .iter()
        .map(|g| {
            vec![
                group_name(&g.value),
                g.nodes.to_string(),
                percent(g.cpu_percent_avg),
                percent(g.cpu_percent_max),
                used_of(g.memory_used, g.memory_total),
                used_of(g.disk_used, g.disk_total),
                format!("{:.2} / {:.2}", g.load1_avg, g.load1_max),
                celsius(g.temperature_c_max),
                g.running_executions.to_string(),
            ]
        })
        .collect();
    let by = by.to_uppercase();
    output::table(
        &[
            &by,
            "NODES",
            "CPU AVG",
            "CPU MAX",
            "MEMORY",
            "DISK",
            "LOAD1 AVG/MAX",
            "TEMP MAX",
            "RUNNING",
        ],
        rows,
    )
}

fn group_name(value: &str) -> String {
    if value.is_empty() {
        "(none)".into()
    } else {
        value.to_string()
    }
}

fn percent(p: f64) -> String {
    format!("{p:.1}%")
}

/// `3.1 GiB / 16 GiB (19%)`.
fn used_of(used: u64, total: u64) -> String {
    if total == 0 {
        return "-".into();
    }
    let share = used as f64 * 100.0 / total as f64;
    format!(
        "{} / {} ({share:.0}%)",
        format_bytes(used),
        format_bytes(total)
    )
}

fn celsius(t: Option<f64>) -> String {
    t.map_or_else(|| "-".into(), |c| format!("{c:.1}°C"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_interval_must_be_a_duration_longer_than_zero() {
        assert_eq!(parse_interval("500ms"), Ok(Duration::from_millis(500)));
        assert!(parse_interval("0s").unwrap_err().contains("longer than 0s"));
        assert!(parse_interval("soon").unwrap_err().contains("like 2s"));
    }

    #[test]
    fn groups_are_listed_busiest_first_and_the_unlabelled_group_is_named() {
        let g = |value: &str, cpu: f64| FleetGroup {
            value: value.into(),
            nodes: 1,
            cpu_percent_avg: cpu,
            ..Default::default()
        };
        let table = group_table("region", &[g("", 5.0), g("eu", 50.0), g("us", 20.0)]);
        let order: Vec<&str> = table
            .lines()
            .skip(1)
            .map(|l| l.split_whitespace().next().unwrap())
            .collect();
        assert_eq!(order, ["eu", "us", "(none)"], "{table}");
    }
}
