//! `shoal wasm run MODULE [ARGS...]`

use std::path::Path;
use std::process::ExitCode;

use anyhow::Context;
use base64::Engine as _;
use clap::{Args, Subcommand};
use serde_json::json;
use shoal_types::spec;

use super::data_flags::DataFlags;
use super::{RunFlags, submit_and_report};
use crate::endpoint::Endpoint;

/// WebAssembly commands.
#[derive(Subcommand)]
pub enum WasmCommand {
    /// Run a local WebAssembly module (.wasm, or .wat text) as a batch job; the module is
    /// uploaded inline with the job.
    Run(WasmRunArgs),
}

/// `wasm run` arguments.
#[derive(Args)]
pub struct WasmRunArgs {
    /// The module file.
    pub module: String,
    /// Arguments passed to the module.
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    pub args: Vec<String>,
    /// Exported function to call.
    #[arg(long = "entry-point", default_value = "_start")]
    pub entry_point: String,
    /// Environment variable `KEY=VALUE` (repeatable).
    #[arg(short, long = "env")]
    pub env: Vec<String>,
    /// `any` runs once on one node (batch); `all` runs once on every matching node (ops).
    #[arg(long, default_value = "any", value_parser = ["any", "all"])]
    pub target: String,
    /// Node label constraints, e.g. `region=eu,zone!=a`.
    #[arg(long)]
    pub constraints: Option<String>,
    /// Memory limit, e.g. `64Mi`.
    #[arg(long)]
    pub memory: Option<String>,
    /// Run-time limit in seconds.
    #[arg(long)]
    pub timeout: Option<u64>,
    #[command(flatten)]
    pub data: DataFlags,
    #[command(flatten)]
    pub flags: RunFlags,
}

/// Parses `k=v,k2!=v2` into constraints.
pub fn parse_constraints(s: &str) -> anyhow::Result<serde_json::Value> {
    let mut out = Vec::new();
    for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let (key, op, value) = if let Some((k, v)) = part.split_once("!=") {
            (k, "!=", v)
        } else if let Some((k, v)) = part.split_once("==") {
            (k, "=", v)
        } else if let Some((k, v)) = part.split_once('=') {
            (k, "=", v)
        } else {
            (part, "exists", "")
        };
        let values: Vec<&str> = if value.is_empty() {
            vec![]
        } else {
            vec![value]
        };
        out.push(json!({ "Key": key.trim(), "Operator": op, "Values": values }));
    }
    Ok(serde_json::Value::Array(out))
}

/// Runs a wasm command.
pub async fn run(endpoint: &Endpoint, cmd: WasmCommand) -> anyhow::Result<ExitCode> {
    let WasmCommand::Run(a) = cmd;
    let bytes =
        std::fs::read(&a.module).with_context(|| format!("cannot read module {}", a.module))?;
    let name = Path::new(&a.module)
        .file_name()
        .map(|n| n.to_string_lossy().to_string())
        .unwrap_or_else(|| "main.wasm".into());
    let target = format!("/app/{name}");
    let url = format!(
        "data:application/wasm;base64,{}",
        base64::engine::general_purpose::STANDARD.encode(&bytes)
    );
    let env = super::key_value::parse_pairs("--env", &a.env)?;
    // No Name: a job named after the module would be *updated* by the next `wasm run` of the
    // same module (names are unique per namespace); each run is its own job instead.
    let mut job = json!({
        "Type": if a.target == "all" { "ops" } else { "batch" },
        "Count": 1,
        "Constraints": match &a.constraints { Some(c) => parse_constraints(c)?, None => json!([]) },
        "Tasks": [{
            "Name": "main",
            "Engine": { "Type": "wasm", "Params": {
                "EntryModule": target, "Entrypoint": a.entry_point, "Parameters": a.args,
            }},
            "Env": env,
            "InputSources": [{ "Target": target, "Source": { "Type": "inline", "Params": { "URL": url } } }],
            "Resources": { "Memory": a.memory.clone().unwrap_or_default() },
            "Timeouts": { "ExecutionTimeout": a.timeout.unwrap_or(0) },
        }],
    });
    a.data.apply(&mut job["Tasks"][0])?;
    let job = spec::parse_job_value(job).map_err(|e| anyhow::anyhow!("{e}"))?;
    submit_and_report(&endpoint.client()?, &job, &a.flags).await
}
