//! S13: SQL over the nodes' data — a GROUP BY over 10 million sales rows split over 4
//! devstack nodes (`--merge auto`), beside the same query on one node over all the rows, with
//! the bytes each way moves.
//!
//! All nodes share this machine's cores and the process's analytics runtime (at most two
//! queries at once), so the ratio shows what the split and the merge cost, not the speed-up
//! of four machines.

use std::path::Path;
use std::time::{Duration, Instant};

use shoal_analytics::sample::{Sales, SampleFormat, write};
use shoal_client::Client;
use shoal_types::answer::{Outcome, QueryEvent, QueryRequest};

use crate::Ctx;
use crate::proc::{Shoal, free_port, wait_alive, wait_nodes};
use crate::report::Section;
use crate::stats::{Stats, fmt, ratio};

const NODES: usize = 4;

const SQL: &str = "SELECT country, product, count(*) AS n, sum(amount) AS revenue, \
     avg(quantity) AS mean_qty FROM read_parquet('{files}') GROUP BY country, product";

/// Runs S13.
pub async fn run(ctx: &Ctx) -> anyhow::Result<Section> {
    let rows: usize = if ctx.quick { 1_000_000 } else { 10_000_000 };
    let reps = if ctx.quick { 3 } else { 5 };
    let dir = tempfile::tempdir()?;
    let data = dir.path().join("data");
    let t0 = Instant::now();
    let regions = ["eu", "us", "ap", "eu"];
    for (i, region) in regions.iter().enumerate() {
        let sales = Sales {
            region: region.to_string(),
            rows: rows / NODES,
            files: 4,
            seed: i as u64 + 1,
        };
        write(&data.join(i.to_string()), &sales, SampleFormat::Parquet)?;
    }
    let generated = t0.elapsed();
    let raw_bytes = dir_bytes(&data)?;

    let own = format!("/data={}/{{node}}", data.display());
    let all = format!("/all={}", data.display());
    let shoal = Shoal::spawn(
        &ctx.shoal,
        &[
            "devstack",
            "--computes",
            &NODES.to_string(),
            "--data-allow",
            &own,
            "--data-allow",
            &all,
            "--data-memory-limit",
            "1GiB",
        ],
        &dir.path().join("devstack"),
        free_port(),
    )?;
    let client = shoal.client();
    wait_alive(&client, Duration::from_secs(60)).await?;
    wait_nodes(&client, NODES, Duration::from_secs(60)).await?;

    let split_sql = SQL.replace("{files}", "/data/*.parquet");
    let one_sql = SQL.replace("{files}", "/all/*/*.parquet");
    let (mut split, mut one) = (Vec::new(), Vec::new());
    let (mut split_bytes, mut one_bytes, mut groups) = (0, 0, (0, 0));
    for _ in 0..reps {
        let (secs, bytes, g) = ask(&client, &split_sql, vec![], true).await?;
        split.push(secs);
        (split_bytes, groups.0) = (bytes, g);
        let (secs, bytes, g) = ask(&client, &one_sql, vec!["n-devstack-0".into()], false).await?;
        one.push(secs);
        (one_bytes, groups.1) = (bytes, g);
    }
    anyhow::ensure!(
        groups.0 == groups.1,
        "S13: the merged answer has {} groups, the single node's {}",
        groups.0,
        groups.1
    );
    let (split, one) = (Stats::new(split), Stats::new(one));
    let body = format!(
        "`SELECT country, product, count(*), sum(amount), avg(quantity) ... GROUP BY country, product`\n\
         over {rows} generated sales rows in Parquet ({raw} MiB, {nodes} × 4 files; generated in {gen:.1} s),\n\
         through `shoal devstack --computes {nodes}` (all nodes on this machine). Seconds from ask to\n\
         the final answer, median of {reps} (min–max).\n\n\
         | measure | s | bytes moved to the orchestrator |\n|---|---|---|\n\
         | split over {nodes} nodes, `--merge auto` ({g} groups) | {s} ({smin}–{smax}) | {sb} (partials from {nodes} nodes) |\n\
         | one node over all the rows | {o} ({omin}–{omax}) | {ob} (one answer) |\n\
         | split / one node | {r} | raw data not moved: {raw_b} bytes |\n",
        raw = fmt(raw_bytes as f64 / 1048576.0),
        nodes = NODES,
        gen = generated.as_secs_f64(),
        g = groups.0,
        s = fmt(split.median()),
        smin = fmt(split.min()),
        smax = fmt(split.max()),
        o = fmt(one.median()),
        omin = fmt(one.min()),
        omax = fmt(one.max()),
        r = ratio(split.median() / one.median()),
        sb = split_bytes,
        ob = one_bytes,
        raw_b = raw_bytes,
    );
    shoal.kill9();
    Ok(Section {
        id: "s13-warehouse",
        title: "S13: SQL over the nodes' data (distributed GROUP BY)".into(),
        body,
    })
}

/// One query: (seconds to the final answer, bytes of the nodes' answers as JSON, rows of
/// the final answer). Fails unless every node asked answered.
async fn ask(
    client: &Client,
    sql: &str,
    nodes: Vec<String>,
    merge: bool,
) -> anyhow::Result<(f64, usize, usize)> {
    let request = QueryRequest {
        query: sql.into(),
        timeout: 300,
        nodes,
        merge: merge.then(|| "auto".to_string()),
        engine: Some("analytics".into()),
        ..QueryRequest::default()
    };
    let t0 = Instant::now();
    let id = client.ask_query(&request).await?;
    let (mut bytes, mut rows, mut failed) = (0usize, 0usize, Vec::new());
    let mut merged = None;
    client
        .query_stream(&id, |ev| match ev {
            QueryEvent::Answer(a) if a.outcome == Outcome::Answered => {
                bytes += serde_json::to_vec(&a.rows).map_or(0, |v| v.len());
                rows += a.rows.len();
            }
            QueryEvent::Answer(a) => failed.push(format!("{}: {:?}", a.node_id, a.error)),
            QueryEvent::Done { merge, .. } => merged = merge.clone(),
            QueryEvent::Started { .. } => {}
        })
        .await?;
    let secs = t0.elapsed().as_secs_f64();
    anyhow::ensure!(failed.is_empty(), "S13: nodes failed: {failed:?}");
    let groups = match merged {
        Some(m) => {
            if let Some(e) = m.error {
                anyhow::bail!("S13: merge failed: {e}");
            }
            m.rows.len()
        }
        None => rows,
    };
    Ok((secs, bytes, groups))
}

fn dir_bytes(dir: &Path) -> std::io::Result<u64> {
    let mut total = 0;
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let meta = entry.metadata()?;
        total += if meta.is_dir() {
            dir_bytes(&entry.path())?
        } else {
            meta.len()
        };
    }
    Ok(total)
}
