//! `shoal-bench`: runs Shoal's benchmark scenarios and rewrites `bench/RESULTS.md`.
//!
//! Each scenario measures Shoal beside the machine's floor or a peer in the same run, so the
//! figure quoted is a ratio with the absolute numbers beside it. Run it through `bench/run.sh`,
//! which builds the release binaries first; scenario definitions are in
//! `../shared/reference/perf.md` and the issue texts.

mod floor;
mod jobs;
mod peers;
mod proc;
mod report;
mod s01_placement;
mod s02_latency;
mod s04_agents;
mod s05_rollout;
mod s06_wasm;
mod s09_footprint;
mod s10_durable;
mod s11_query;
mod s12_exec;
mod s13_warehouse;
mod simfleet;
mod stats;

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use clap::Parser;

/// Shoal's benchmarks: speed and scale figures beside the machine's limits and the peers.
#[derive(Parser)]
#[command(name = "shoal-bench")]
struct Args {
    /// A few minutes in all: fewer runs and smaller fleets (the figures say which mode made them).
    #[arg(long)]
    quick: bool,
    /// Only these scenarios (e.g. `S2,S10`); all by default.
    #[arg(long, value_delimiter = ',')]
    only: Vec<String>,
    /// The `shoal` binary to measure (default: the one next to this program).
    #[arg(long)]
    shoal: Option<PathBuf>,
    /// An older `shoal` binary that S4 and S11 measure too, beside the current one.
    #[arg(long)]
    baseline: Option<PathBuf>,
    /// Where scenario fragments are kept.
    #[arg(long, default_value = "bench/results")]
    fragments: PathBuf,
    /// The page assembled from the fragments.
    #[arg(long, default_value = "bench/RESULTS.md")]
    out: PathBuf,
    /// Run nothing; only rebuild the page from the fragments.
    #[arg(long)]
    assemble_only: bool,
    /// A helper instead of the scenarios.
    #[command(subcommand)]
    command: Option<Helper>,
}

/// Helpers the scenarios start as processes of their own.
#[derive(clap::Subcommand)]
enum Helper {
    /// Run N simulated agents (real agent code, noop + query engines, in-memory ledgers) that
    /// dial a `shoal serve --orchestrator` process; runs until stdin closes.
    Simfleet(simfleet::SimfleetArgs),
}

/// What every scenario gets.
pub struct Ctx {
    /// Quick mode.
    pub quick: bool,
    /// The `shoal` binary.
    pub shoal: PathBuf,
    /// An older `shoal` binary that the fleet-scale scenarios (S4, S11) also measure, side by
    /// side, to show what a change did.
    pub baseline: Option<PathBuf>,
}

const SCENARIOS: &[&str] = &[
    "S1", "S2", "S4", "S5", "S6", "S9", "S10", "S11", "S12", "S13",
];

/// Scenarios run by scripts of their own (`bench/run.sh` runs them); `--only` accepts them.
const SCRIPTED: &[&str] = &["DOCKER"];

fn main() -> ExitCode {
    let args = Args::parse();
    if let Some(Helper::Simfleet(fleet)) = args.command {
        let runtime = tokio::runtime::Runtime::new().expect("tokio runtime");
        return match runtime.block_on(simfleet::run(fleet)) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("error: {e:#}");
                ExitCode::FAILURE
            }
        };
    }
    // Scenarios start orchestrators and fleets with thousands of sockets; children inherit.
    simfleet::raise_nofile();
    let ctx = Ctx {
        quick: args.quick,
        shoal: args.shoal.clone().unwrap_or_else(proc::default_shoal_bin),
        baseline: args.baseline.clone(),
    };
    if !ctx.shoal.exists() {
        eprintln!(
            "error: the shoal binary {} does not exist; build it with `cargo build --release -p shoal-cli` or pass --shoal PATH",
            ctx.shoal.display()
        );
        return ExitCode::FAILURE;
    }
    let wanted: Vec<String> = if args.assemble_only {
        vec![]
    } else if args.only.is_empty() {
        SCENARIOS.iter().map(|s| s.to_string()).collect()
    } else {
        args.only.iter().map(|s| s.to_uppercase()).collect()
    };
    if let Some(bad) = wanted
        .iter()
        .find(|w| !SCENARIOS.contains(&w.as_str()) && !SCRIPTED.contains(&w.as_str()))
    {
        eprintln!(
            "error: unknown scenario {bad:?}; known: {}, {}",
            SCENARIOS.join(", "),
            SCRIPTED.join(", ")
        );
        return ExitCode::FAILURE;
    }
    // Scripted scenarios were run by `bench/run.sh` before this program.
    let wanted: Vec<String> = wanted
        .into_iter()
        .filter(|w| SCENARIOS.contains(&w.as_str()))
        .collect();
    let runtime = tokio::runtime::Runtime::new().expect("tokio runtime");
    let mode = if ctx.quick { "quick" } else { "full" };
    let mut failed = false;
    for name in &wanted {
        eprintln!("== {name} ({mode})");
        let t0 = Instant::now();
        let result = runtime.block_on(async {
            match name.as_str() {
                "S1" => s01_placement::run(&ctx).await,
                "S2" => s02_latency::run(&ctx).await,
                "S4" => s04_agents::run(&ctx).await,
                "S5" => s05_rollout::run(&ctx).await,
                "S6" => s06_wasm::run(&ctx).await,
                "S9" => s09_footprint::run(&ctx).await,
                "S10" => s10_durable::run(&ctx).await,
                "S11" => s11_query::run(&ctx).await,
                "S12" => s12_exec::run(&ctx).await,
                "S13" => s13_warehouse::run(&ctx).await,
                _ => unreachable!("checked above"),
            }
        });
        match result {
            Ok(section) => {
                eprintln!("{}", section.body);
                let secs = t0.elapsed().as_secs_f64();
                if let Err(e) = report::write_fragment(&args.fragments, &section, mode, secs) {
                    eprintln!("error: {e:#}");
                    failed = true;
                }
            }
            Err(e) => {
                // A scenario that cannot run is reported, and the others still run.
                eprintln!("error: {name} did not complete: {e:#}");
                failed = true;
            }
        }
    }
    if let Err(e) = report::assemble(&args.fragments, &args.out) {
        eprintln!("error: {e:#}");
        return ExitCode::FAILURE;
    }
    eprintln!("wrote {}", args.out.display());
    if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}
