//! `shoal query "SELECT ..."`: ask the fleet one question in osquery's SQL, or with
//! `--engine analytics` in DataFusion's SQL over each node's data files.
//!
//! A live query: the orchestrator asks every matching node now (no job, nothing left on the
//! nodes); answers stream back as nodes answer, each row tagged with `node_id`. stdout carries only rows
//! (so `--output csv|ndjson` pipes cleanly); the fleet coverage and errors go to stderr.

use std::collections::BTreeMap;
use std::io::Write;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::{Args, ValueEnum};
use serde_json::Value as Json;
use shoal_client::Client;
use shoal_types::answer::{Coverage, NodeAnswer, Outcome, QueryEvent, QueryRequest};

use crate::endpoint::Endpoint;
use crate::output;

/// `query` arguments.
#[derive(Args, Debug)]
pub struct QueryArgs {
    /// One SELECT statement: over osquery's tables (SQLite dialect), e.g. "SELECT hostname
    /// FROM system_info"; with --engine analytics over the node's files, e.g. "SELECT
    /// region, sum(amount) FROM read_parquet('/data/sales/*.parquet') GROUP BY region".
    /// The log tables file_lines and nginx_access read files under the node's --log-allow
    /// directories, e.g. "SELECT status, count(*) FROM nginx_access WHERE
    /// path='/var/log/nginx/access.log' AND time > datetime('now','-5 minutes') GROUP BY
    /// status".
    pub sql: String,
    /// What answers on each node: `query` (host tables) or `analytics` (Parquet, CSV and
    /// JSON files under the node's --data-allow directories, with read_parquet, read_csv and
    /// read_json).
    #[arg(long, value_enum, default_value_t = QueryEngine::Query)]
    pub engine: QueryEngine,
    /// Ask only nodes whose labels match, e.g. `region=eu,zone!=a`.
    #[arg(long)]
    pub constraints: Option<String>,
    /// Ask only this node (id or unique id prefix; repeatable).
    #[arg(long = "node")]
    pub nodes: Vec<String>,
    /// How to print rows: `table` once all nodes answered; `csv` and `ndjson` stream.
    #[arg(long, value_enum, default_value_t = QueryFormat::Table)]
    pub output: QueryFormat,
    /// Seconds to wait for answers; nodes silent until then count as unreachable.
    #[arg(long, default_value_t = 60)]
    pub timeout: u64,
    /// Second stage on the orchestrator over all answers, e.g.
    /// "SELECT version, count(*) FROM results GROUP BY version" (`results` has every
    /// answered column plus `node_id`). Only its rows are printed. `auto` splits a GROUP BY
    /// query into partial aggregates on the nodes and their exact merge (sum, count, min,
    /// max, avg and count(DISTINCT); avg is never an average of averages).
    #[arg(long)]
    pub merge: Option<String>,
    /// Most rows each node may return (the node's own limit applies too).
    #[arg(long)]
    pub max_rows: Option<u64>,
}

/// The engine that answers a fleet query on each node.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, ValueEnum)]
pub enum QueryEngine {
    /// osquery-compatible host tables (SQLite).
    #[default]
    Query,
    /// The node's data files (DataFusion).
    Analytics,
}

/// How `shoal query` prints rows.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, ValueEnum)]
pub enum QueryFormat {
    /// Aligned columns, printed once every node answered.
    #[default]
    Table,
    /// One JSON array of row objects, printed once every node answered.
    Json,
    /// CSV with a header row, streamed as nodes answer.
    Csv,
    /// One JSON object per row, streamed as nodes answer.
    Ndjson,
}

/// Runs `shoal query`.
pub async fn run(endpoint: &Endpoint, args: QueryArgs) -> anyhow::Result<ExitCode> {
    let client = endpoint.client()?;
    let request = QueryRequest {
        query: args.sql.clone(),
        constraints: match &args.constraints {
            Some(c) => serde_json::from_value(super::wasm::parse_constraints(c)?)
                .context("--constraints")?,
            None => vec![],
        },
        nodes: resolve_nodes(&client, &args.nodes).await?,
        timeout: args.timeout,
        max_rows: args.max_rows,
        merge: args.merge.clone(),
        engine: match args.engine {
            QueryEngine::Query => None,
            QueryEngine::Analytics => Some("analytics".into()),
        },
    };
    let started = Instant::now();
    let query_id = client.ask_query(&request).await?;
    let mut printer = Printer::new(args.output, args.merge.is_some());
    printer.auto = args
        .merge
        .as_deref()
        .is_some_and(|m| m.trim().eq_ignore_ascii_case("auto"));
    // The orchestrator ends the query at the timeout; the extra grace covers a lost stream.
    let limit = Duration::from_secs(args.timeout) + Duration::from_secs(15);
    let streamed = tokio::time::timeout(
        limit,
        client.query_stream(&query_id, |ev| printer.event(ev)),
    )
    .await;
    let done = match streamed {
        Ok(Ok(done)) => Some(done),
        Ok(Err(e)) => {
            eprintln!("error: {e}");
            None
        }
        Err(_) => {
            eprintln!(
                "error: no complete answer from the orchestrator within {}s",
                limit.as_secs()
            );
            None
        }
    };
    printer.finish(done.as_ref(), started.elapsed())
}

/// Turns `--node` prefixes into full node ids, so a typo fails here with a clear message
/// rather than silently asking nobody.
async fn resolve_nodes(client: &Client, keys: &[String]) -> anyhow::Result<Vec<String>> {
    if keys.is_empty() {
        return Ok(vec![]);
    }
    let nodes = client.nodes().await?;
    let mut out = Vec::new();
    for key in keys {
        let ids: Vec<&str> = nodes
            .iter()
            .map(|n| n.info.node_id.as_str())
            .filter(|id| *id == key || id.starts_with(key.as_str()))
            .collect();
        match ids.as_slice() {
            [one] => out.push(one.to_string()),
            [] => anyhow::bail!("--node {key}: no such node; `shoal node list` shows known nodes"),
            many if many.contains(&key.as_str()) => out.push(key.clone()),
            many => anyhow::bail!(
                "--node {key} is ambiguous: it matches {}; give more of the id",
                many.join(", ")
            ),
        }
    }
    Ok(out)
}

/// Prints rows as they arrive and keeps the account of the fleet.
struct Printer {
    format: QueryFormat,
    merging: bool,
    /// `--merge auto`: show the two halves.
    auto: bool,
    header: Option<Vec<String>>,
    table: Vec<(String, Vec<String>, Vec<Json>)>,
    targeted: usize,
    seen: Vec<NodeAnswer>,
}

impl Printer {
    fn new(format: QueryFormat, merging: bool) -> Printer {
        Printer {
            format,
            merging,
            auto: false,
            header: None,
            table: vec![],
            targeted: 0,
            seen: vec![],
        }
    }

    fn event(&mut self, ev: &QueryEvent) {
        match ev {
            QueryEvent::Started {
                query_id,
                targeted,
                query,
            } => {
                self.targeted = *targeted;
                eprintln!(
                    "Query {query_id} asked of {targeted} node{}",
                    if *targeted == 1 { "" } else { "s" }
                );
                if self.auto {
                    eprintln!("Nodes run: {query}");
                }
            }
            QueryEvent::Answer(a) => {
                if a.outcome == Outcome::Answered && !self.merging {
                    for row in &a.rows {
                        self.row(Some(&a.node_id), &a.columns, row);
                    }
                }
                let mut kept = a.clone();
                kept.rows.clear();
                self.seen.push(kept);
            }
            QueryEvent::Done { .. } => {}
        }
    }

    /// One row: streamed for csv/ndjson, kept for table/json.
    fn row(&mut self, node: Option<&str>, columns: &[String], row: &[Json]) {
        let mut names: Vec<String> = node.map(|_| "node_id".to_string()).into_iter().collect();
        names.extend(columns.iter().cloned());
        let mut values: Vec<Json> = node.map(Json::from).into_iter().collect();
        values.extend(row.iter().cloned());
        let mut out = std::io::stdout().lock();
        match self.format {
            QueryFormat::Ndjson => {
                let _ = writeln!(out, "{}", json_object(&names, &values));
            }
            QueryFormat::Csv => {
                if self.header.is_none() {
                    let _ = writeln!(out, "{}", csv_line(names.iter().map(String::as_str)));
                    self.header = Some(names.clone());
                }
                let cells: Vec<String> = values.iter().map(cell).collect();
                let _ = writeln!(out, "{}", csv_line(cells.iter().map(String::as_str)));
            }
            QueryFormat::Table | QueryFormat::Json => {
                self.header.get_or_insert_with(|| names.clone());
                self.table
                    .push((node.unwrap_or_default().to_string(), names, values));
            }
        }
        let _ = out.flush();
    }

    fn finish(mut self, done: Option<&QueryEvent>, wall: Duration) -> anyhow::Result<ExitCode> {
        let (coverage, merge, message) = match done {
            Some(QueryEvent::Done {
                coverage,
                merge,
                message,
            }) => (coverage.clone(), merge.clone(), message.clone()),
            _ => {
                // The stream ended early: what did not answer is unreachable.
                let mut c = coverage_of(&self.seen);
                c.targeted = c.targeted.max(self.targeted);
                c.unreachable = c.targeted - c.answered - c.errored;
                (c, None, String::new())
            }
        };
        let mut merge_failed = false;
        if let Some(m) = &merge {
            if self.auto {
                eprintln!("Merge runs: {}", m.sql);
            }
            for w in &m.warnings {
                eprintln!("warning: {w}");
            }
            match &m.error {
                Some(e) => {
                    eprintln!("error: {e}");
                    merge_failed = true;
                }
                None => {
                    for row in &m.rows {
                        self.row(None, &m.columns, row);
                    }
                }
            }
        }
        match self.format {
            QueryFormat::Table => {
                if let Some(header) = &self.header {
                    let header: Vec<&str> = header.iter().map(String::as_str).collect();
                    let rows = self
                        .table
                        .iter()
                        .map(|(_, _, values)| values.iter().map(cell).collect())
                        .collect();
                    println!("{}", output::table(&header, rows));
                }
            }
            QueryFormat::Json => {
                let objects: Vec<String> = self
                    .table
                    .iter()
                    .map(|(_, names, values)| json_object(names, values))
                    .collect();
                println!("[{}]", objects.join(",\n "));
            }
            QueryFormat::Csv | QueryFormat::Ndjson => {}
        }
        self.report(&coverage, wall);
        if let Some(m) = &merge {
            if m.answered < m.targeted {
                let missing: Vec<String> = self
                    .seen
                    .iter()
                    .filter(|a| a.outcome != Outcome::Answered)
                    .take(10)
                    .map(|a| format!("{} ({})", a.node_id, missing_why(a)))
                    .collect();
                eprintln!(
                    "partial: the merge covers {} of {} nodes; missing {}",
                    m.answered,
                    m.targeted,
                    missing.join(", ")
                );
            } else {
                eprintln!(
                    "Merge covers {} of {} targeted nodes.",
                    m.answered, m.targeted
                );
            }
        }
        if coverage.targeted == 0 {
            eprintln!(
                "No node was asked: {}",
                if message.is_empty() {
                    "no node matches"
                } else {
                    &message
                }
            );
        }
        let complete = coverage.targeted > 0 && coverage.answered == coverage.targeted;
        Ok(if complete && !merge_failed {
            ExitCode::SUCCESS
        } else {
            ExitCode::FAILURE
        })
    }

    /// Errors once per distinct message with the nodes that reported it; then the coverage.
    fn report(&self, c: &Coverage, wall: Duration) {
        let mut errors: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
        let mut unreachable = Vec::new();
        for a in &self.seen {
            match a.outcome {
                Outcome::Errored => errors
                    .entry(a.error.as_deref().unwrap_or("unknown error"))
                    .or_default()
                    .push(&a.node_id),
                Outcome::Unreachable => unreachable.push(a.node_id.as_str()),
                Outcome::Answered => {}
            }
        }
        for (message, nodes) in &errors {
            let n = nodes.len();
            eprintln!(
                "error on {n} node{}: {message}",
                if n == 1 { "" } else { "s" }
            );
        }
        if !unreachable.is_empty() {
            let shown: Vec<&str> = unreachable.iter().take(10).copied().collect();
            let more = unreachable.len().saturating_sub(shown.len());
            eprintln!(
                "unreachable: {}{}",
                shown.join(", "),
                if more > 0 {
                    format!(" and {more} more")
                } else {
                    String::new()
                }
            );
        }
        eprintln!(
            "Fleet coverage: {} targeted, {} answered, {} errored, {} unreachable; {} rows in {:.2}s",
            c.targeted,
            c.answered,
            c.errored,
            c.unreachable,
            c.rows,
            wall.as_secs_f64()
        );
    }
}

/// Why a node's answer is missing from the merge, in a word or two.
fn missing_why(a: &NodeAnswer) -> &'static str {
    match a.outcome {
        Outcome::Errored => "errored",
        Outcome::Unreachable
            if a.error
                .as_deref()
                .is_some_and(|e| e.starts_with("not asked")) =>
        {
            "disconnected"
        }
        Outcome::Unreachable => "unreachable",
        Outcome::Answered => "answered",
    }
}

/// The coverage of the answers seen so far (used when the stream ended early).
fn coverage_of(seen: &[NodeAnswer]) -> Coverage {
    let mut c = Coverage {
        targeted: seen.len(),
        ..Coverage::default()
    };
    for a in seen {
        match a.outcome {
            Outcome::Answered => c.answered += 1,
            Outcome::Errored => c.errored += 1,
            Outcome::Unreachable => c.unreachable += 1,
        }
    }
    c
}

/// A JSON object with keys in column order.
fn json_object(names: &[String], values: &[Json]) -> String {
    let fields: Vec<String> = names
        .iter()
        .zip(values)
        .map(|(k, v)| format!("{}:{}", Json::from(k.as_str()), v))
        .collect();
    format!("{{{}}}", fields.join(","))
}

/// A value as a table or CSV cell: text as is, `NULL` empty, numbers as JSON writes them.
fn cell(v: &Json) -> String {
    match v {
        Json::Null => String::new(),
        Json::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// One CSV record (RFC 4180 quoting).
fn csv_line<'a>(cells: impl Iterator<Item = &'a str>) -> String {
    cells
        .map(|c| {
            if c.contains([',', '"', '\n', '\r']) {
                format!("\"{}\"", c.replace('"', "\"\""))
            } else {
                c.to_string()
            }
        })
        .collect::<Vec<_>>()
        .join(",")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_cells_are_quoted_only_when_needed() {
        assert_eq!(
            csv_line(["a", "b,c", "say \"hi\""].into_iter()),
            "a,\"b,c\",\"say \"\"hi\"\"\""
        );
    }

    #[test]
    fn json_rows_keep_column_order() {
        let names = vec!["node_id".to_string(), "b".into(), "a".into()];
        let values = vec![Json::from("n-1"), Json::from(2), Json::Null];
        assert_eq!(
            json_object(&names, &values),
            r#"{"node_id":"n-1","b":2,"a":null}"#
        );
    }
}
