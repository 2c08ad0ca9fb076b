//! S11: fleet query fan-out (issue #6's benchmark) — 1,000 and 10,000 simulated agents answer
//! `SELECT hostname FROM system_info` through the query API; time to the first answer and to
//! 100%. Salt minions answer the same question (`grains.item host`) in the same run, at a
//! fleet size both can hold on this machine, and Shoal is measured at that size too.

use std::time::{Duration, Instant};

use shoal_client::Client;
use shoal_types::answer::{Outcome, QueryEvent, QueryRequest};

use crate::Ctx;
use crate::proc::{cpu_seconds, rss_bytes};
use crate::report::Section;
use crate::simfleet::BenchFleet;
use crate::stats::{Stats, ratio, spread};

const SQL: &str = "SELECT hostname FROM system_info";
const SALT_SCRIPT: &str = include_str!("s11_salt.py");

/// One fleet size's figures.
struct Fanout {
    agents: usize,
    first_ms: Stats,
    all_ms: Stats,
    orch_cpu_s: f64,
    orch_rss_mib: f64,
}

/// Runs S11.
pub async fn run(ctx: &Ctx) -> anyhow::Result<Section> {
    let reps = if ctx.quick { 3 } else { 10 };
    let salt_n = if ctx.quick { 20 } else { 40 };
    let mut rows = Vec::new();
    let mut shoal_small = None;
    if let Some(b) = &ctx.baseline {
        for n in [1_000, 10_000] {
            rows.push(("baseline", fanout(b, n, reps).await?));
        }
    }
    // A size that fails is reported as such beside the others, not in place of them.
    let mut failed = Vec::new();
    for n in [salt_n, 1_000, 10_000] {
        match fanout(&ctx.shoal, n, reps).await {
            Ok(f) if n == salt_n => shoal_small = Some(f),
            Ok(f) => rows.push(("this build", f)),
            Err(e) if n == salt_n => return Err(e),
            Err(e) => failed.push(format!(
                "| {n} | this build | not measured: {e:#} | | | | |\n"
            )),
        }
    }
    let shoal_small = shoal_small.expect("measured above");
    let salt = salt(salt_n, reps).await;

    let mut body = format!(
        "A `shoal serve --orchestrator` process (release) and a simulated fleet in another process\n\
         (`shoal-bench simfleet`: real agents with the query engine and in-memory ledgers, one\n\
         WebSocket each over loopback). Each ask: `POST /api/v1/orchestrator/queries` with\n\
         `{SQL}`, then the answer stream (WebSocket); times from before the POST to the first\n\
         and to the last node's answer received by the client. {reps} asks per size. Every\n\
         node runs the real query engine (SQLite virtual tables over the host).\n\n\
         {base}| agents | binary | first answer, ms | 100% answered, ms | orchestrator CPU per ask | orchestrator RSS | target |\n\
         |---|---|---|---|---|---|---|\n",
        base = if ctx.baseline.is_some() {
            "Rows marked baseline measure an older `shoal` binary (`--baseline`) in the same run.\n\n"
        } else {
            ""
        },
    );
    for (binary, f) in &rows {
        body.push_str(&format!(
            "| {} | {binary} | {} | {} | {:.2} s | {:.0} MiB | {} |\n",
            f.agents,
            spread(&f.first_ms, ""),
            spread(&f.all_ms, ""),
            f.orch_cpu_s,
            f.orch_rss_mib,
            if f.agents == 10_000 {
                "100% < 1,000 ms"
            } else {
                ""
            },
        ));
    }
    for row in &failed {
        body.push_str(row);
    }
    body.push_str(&format!(
        "\n**Peer: Salt** (PyPI `salt`, a `salt-master` and {salt_n} `salt-minion` processes on \
         127.0.0.1, default settings, `LocalClient.cmd_iter('*', 'grains.item', ['host'])` from \
         Python after every minion answered `test.ping`), beside Shoal with {salt_n} agents:\n\n\
         | {salt_n} nodes | first answer, ms | 100% answered, ms | memory per node |\n|---|---|---|---|\n\
         | Shoal | {} | {} | (agent: see S9) |\n",
        spread(&shoal_small.first_ms, ""),
        spread(&shoal_small.all_ms, ""),
    ));
    match salt {
        Ok((first, all, rss_kb)) => {
            body.push_str(&format!(
                "| Salt | {} | {} | {:.0} MiB per minion (process group RSS) |\n\n\
                 Salt / Shoal, time to 100% at {salt_n} nodes: **{}** (medians).\n",
                spread(&first, ""),
                spread(&all, ""),
                rss_kb / 1024.0,
                ratio(all.median() / shoal_small.all_ms.median()),
            ));
        }
        Err(why) => body.push_str(&format!("| Salt | not measured: {why} | | |\n")),
    }
    Ok(Section {
        id: "s11-query",
        title: "S11: fleet query fan-out".into(),
        body,
    })
}

/// Starts an orchestrator (`bin`) and `n` agents, asks `reps` times.
async fn fanout(bin: &std::path::Path, n: usize, reps: usize) -> anyhow::Result<Fanout> {
    eprintln!("S11: {n} agents, {}", bin.display());
    let bench = BenchFleet::start(bin, n, &[]).await?;
    let orch = &bench.orchestrator;
    let client = orch.client();
    // One ask to warm up (first query: engine start-up on every node), not counted.
    ask(&client, n).await?;
    let (mut first, mut all) = (Vec::new(), Vec::new());
    let cpu0 = cpu_seconds(orch.pid())?;
    for _ in 0..reps {
        let (f, a) = ask(&client, n).await?;
        first.push(f);
        all.push(a);
    }
    let orch_cpu_s = (cpu_seconds(orch.pid())? - cpu0) / reps as f64;
    let orch_rss_mib = rss_bytes(orch.pid())? as f64 / (1 << 20) as f64;
    drop(bench);
    Ok(Fanout {
        agents: n,
        first_ms: Stats::new(first),
        all_ms: Stats::new(all),
        orch_cpu_s,
        orch_rss_mib,
    })
}

/// One ask: (ms to the first answer, ms to the last). Fails unless every node answered.
async fn ask(client: &Client, n: usize) -> anyhow::Result<(f64, f64)> {
    let request = QueryRequest {
        query: SQL.into(),
        timeout: 60,
        ..QueryRequest::default()
    };
    let t0 = Instant::now();
    let id = client.ask_query(&request).await?;
    let (mut first, mut last, mut answered) = (None, None, 0usize);
    let done = client
        .query_stream(&id, |ev| {
            if let QueryEvent::Answer(a) = ev
                && a.outcome == Outcome::Answered
            {
                answered += 1;
                let ms = t0.elapsed().as_secs_f64() * 1e3;
                first.get_or_insert(ms);
                if answered == n {
                    last = Some(ms);
                }
            }
        })
        .await?;
    let (Some(first), Some(last)) = (first, last) else {
        anyhow::bail!("S11: only {answered} of {n} agents answered ({done:?})");
    };
    Ok((first, last))
}

/// Salt at `n` minions: (first answer ms, all answered ms, RSS per minion KiB).
async fn salt(n: usize, reps: usize) -> Result<(Stats, Stats, f64), String> {
    let which = std::process::Command::new("sh")
        .args(["-c", "command -v salt-master && command -v salt-minion"])
        .output()
        .map_err(|e| e.to_string())?;
    if !which.status.success() {
        return Err("salt-master/salt-minion are not installed (`pip install salt`)".into());
    }
    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    let script = dir.path().join("s11_salt.py");
    std::fs::write(&script, SALT_SCRIPT).map_err(|e| e.to_string())?;
    let root = dir.path().join("root");
    std::fs::create_dir_all(&root).map_err(|e| e.to_string())?;
    let out = tokio::process::Command::new("python3")
        .arg(&script)
        .args([n.to_string(), reps.to_string()])
        .arg(&root)
        .kill_on_drop(true)
        .output();
    let out = tokio::time::timeout(Duration::from_secs(600), out)
        .await
        .map_err(|_| "the Salt run took over 600 s".to_string())?
        .map_err(|e| format!("python3 did not run: {e}"))?;
    let (mut first, mut all, mut rss) = (Vec::new(), Vec::new(), 0.0);
    // Only lines that start with `{` are the script's figures; anything else (a library's notice
    // that slipped onto stdout) is skipped.
    let stdout = String::from_utf8_lossy(&out.stdout);
    for line in stdout.lines().map(str::trim).filter(|l| l.starts_with('{')) {
        let v: serde_json::Value = serde_json::from_str(line)
            .map_err(|e| format!("{e} in the Salt script's line {line}"))?;
        if let Some(e) = v["error"].as_str() {
            return Err(e.to_string());
        }
        if v["answered"].as_u64() != Some(n as u64) {
            return Err(format!("only {} of {n} minions answered", v["answered"]));
        }
        first.push(v["first_ms"].as_f64().unwrap_or(f64::NAN));
        all.push(v["all_ms"].as_f64().unwrap_or(f64::NAN));
        rss = v["minion_rss_kb"].as_f64().unwrap_or(0.0);
    }
    if all.is_empty() {
        let err = String::from_utf8_lossy(&out.stderr);
        let mut tail: Vec<&str> = err
            .lines()
            .filter(|l| !l.trim().is_empty())
            .rev()
            .take(5)
            .collect();
        tail.reverse();
        return Err(format!(
            "the Salt script produced no figures ({}): {}",
            out.status,
            tail.join(" / ")
        ));
    }
    Ok((Stats::new(first), Stats::new(all), rss))
}
