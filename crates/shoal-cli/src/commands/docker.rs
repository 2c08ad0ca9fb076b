//! `shoal docker run [flags] IMAGE [-- CMD ARGS...]`
//!
//! Builds a Bacalhau-shaped job with the `docker` engine from Bacalhau's `docker run` flags
//! and submits it like `job run` does.

use std::process::ExitCode;

use clap::{Args, Subcommand};
use serde_json::{Value, json};
use shoal_types::spec;

use super::data_flags::DataFlags;
use super::key_value::parse_pairs;
use super::wasm::parse_constraints;
use super::{RunFlags, submit_and_report};
use crate::endpoint::Endpoint;

/// Docker commands.
#[derive(Subcommand)]
pub enum DockerCommand {
    /// Run a container image as a job on a compute node with the docker engine.
    ///
    /// The image must be on the node or pullable by its Docker daemon; it is pulled in the
    /// execution's Preparing phase. Without `--network`, the container has no network.
    ///
    /// Examples:
    ///
    ///   shoal docker run ubuntu:24.04 -- echo hello
    ///
    ///   shoal docker run --memory 256Mi --cpu 500m -e NAME=world busybox -- sh -c 'echo hi $NAME'
    ///
    ///   shoal docker run --target all --constraints region=eu alpine -- uname -a
    ///
    ///   shoal docker run --entrypoint sh,-c busybox -- 'ls /; exit 3'   (exit code 3 is passed on)
    #[command(verbatim_doc_comment)]
    Run(DockerRunArgs),
}

/// `docker run` arguments.
#[derive(Args, Debug)]
pub struct DockerRunArgs {
    /// The image (`ubuntu:24.04`, `registry.local:5000/app:1`, `app@sha256:...`).
    pub image: String,
    /// Command and arguments passed to the container (after `--`); they replace the image's CMD.
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    pub command: Vec<String>,
    /// Replace the image's ENTRYPOINT; comma-separated or repeated (`--entrypoint sh,-c`).
    #[arg(long, value_delimiter = ',', allow_hyphen_values = true)]
    pub entrypoint: Vec<String>,
    /// Working directory inside the container (absolute).
    #[arg(short = 'w', long)]
    pub workdir: Option<String>,
    /// Environment variable `KEY=VALUE` for the task (repeatable).
    #[arg(short, long = "env")]
    pub env: Vec<String>,
    /// CPU limit in cores, Kubernetes style: `500m`, `1`, `2.5`.
    #[arg(long)]
    pub cpu: Option<String>,
    /// Memory limit, a hard ceiling: the container is killed (job fails, "out of memory")
    /// past it. `64Mi`, `1Gb`.
    #[arg(long)]
    pub memory: Option<String>,
    /// Disk the job needs, for placement: `10Gb`.
    #[arg(long)]
    pub disk: Option<String>,
    /// Number of GPUs to pass through (only nodes that have them are chosen).
    #[arg(long)]
    pub gpu: Option<String>,
    /// Network: `none` (no network), `host` or `full` (the node's network), `bridge` (a
    /// private network with outbound access). Nodes may refuse networked jobs.
    #[arg(long, default_value = "none", value_parser = ["none", "host", "full", "bridge"], ignore_case = true)]
    pub network: String,
    /// `any` runs once on one node (batch job); `all` runs once on every matching node (ops job).
    #[arg(long, default_value = "any", value_parser = ["any", "all"])]
    pub target: String,
    /// Node label constraints, e.g. `region=eu,zone!=a`.
    #[arg(long)]
    pub constraints: Option<String>,
    /// Job labels `key=value` (repeatable or comma-separated).
    #[arg(short = 'l', long, value_delimiter = ',')]
    pub labels: Vec<String>,
    /// Job name (default: the job's id). A name already taken updates that job (new version).
    #[arg(long)]
    pub name: Option<String>,
    /// How many partitions of a batch job to run.
    #[arg(long, default_value_t = 1)]
    pub count: u32,
    /// Run-time limit in seconds (0: none); the container is stopped when it passes.
    #[arg(long, default_value_t = 0)]
    pub timeout: u64,
    /// Seconds the job may wait for a node with room (0: fail at once when none can take it).
    #[arg(long, default_value_t = 0)]
    pub queue_timeout: u64,
    /// Print the job spec (YAML) that would be submitted, and submit nothing.
    #[arg(long)]
    pub dry_run: bool,
    #[command(flatten)]
    pub data: DataFlags,
    #[command(flatten)]
    pub flags: RunFlags,
}

/// The job, in Bacalhau's JSON shape, for these arguments.
pub fn job_spec(a: &DockerRunArgs) -> anyhow::Result<Value> {
    let mut params = serde_json::Map::new();
    params.insert("Image".into(), json!(a.image));
    if !a.entrypoint.is_empty() {
        params.insert("Entrypoint".into(), json!(a.entrypoint));
    }
    if !a.command.is_empty() {
        params.insert("Parameters".into(), json!(a.command));
    }
    if let Some(w) = &a.workdir {
        params.insert("WorkingDirectory".into(), json!(w));
    }
    let network = match a.network.to_ascii_lowercase().as_str() {
        "host" => "Host",
        "full" => "Full",
        "bridge" => "Bridge",
        _ => "None",
    };
    let opt = |s: &Option<String>| s.clone().unwrap_or_default();
    let mut job = json!({
        // Without --name the job is named after its id: a name that is already taken would
        // update that job instead of starting a new one.
        "Name": a.name.clone().unwrap_or_default(),
        "Type": if a.target == "all" { "ops" } else { "batch" },
        "Count": a.count,
        "Labels": parse_pairs("--labels", &a.labels)?,
        "Constraints": match &a.constraints { Some(c) => parse_constraints(c)?, None => json!([]) },
        "Tasks": [{
            "Name": "main",
            "Engine": { "Type": "docker", "Params": params },
            "Env": parse_pairs("--env", &a.env)?,
            "Resources": { "CPU": opt(&a.cpu), "Memory": opt(&a.memory), "Disk": opt(&a.disk), "GPU": opt(&a.gpu) },
            "Network": { "Type": network },
            "Timeouts": { "ExecutionTimeout": a.timeout, "QueueTimeout": a.queue_timeout },
        }],
    });
    a.data.apply(&mut job["Tasks"][0])?;
    Ok(job)
}

/// Runs a docker command.
pub async fn run(endpoint: &Endpoint, cmd: DockerCommand) -> anyhow::Result<ExitCode> {
    let DockerCommand::Run(a) = cmd;
    let job = spec::parse_job_value(job_spec(&a)?).map_err(|e| anyhow::anyhow!("{e}"))?;
    if a.dry_run {
        print!("{}", serde_yaml::to_string(&job)?);
        return Ok(ExitCode::SUCCESS);
    }
    submit_and_report(&endpoint.client()?, &job, &a.flags).await
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    #[derive(Parser)]
    struct Cli {
        #[command(subcommand)]
        cmd: DockerCommand,
    }

    fn spec_for(args: &[&str]) -> Value {
        let cli = Cli::try_parse_from(["docker"].iter().chain(args)).unwrap();
        let DockerCommand::Run(a) = cli.cmd;
        job_spec(&a).unwrap()
    }

    #[test]
    fn arguments_after_the_image_become_parameters() {
        let s = spec_for(&["run", "busybox", "--", "sh", "-c", "echo hi"]);
        let engine = &s["Tasks"][0]["Engine"];
        assert_eq!(engine["Type"], "docker");
        assert_eq!(engine["Params"]["Image"], "busybox");
        assert_eq!(
            engine["Params"]["Parameters"],
            json!(["sh", "-c", "echo hi"])
        );
        assert_eq!(s["Tasks"][0]["Network"]["Type"], "None");
        assert_eq!(s["Type"], "batch");
    }

    #[test]
    fn flags_fill_the_task() {
        let s = spec_for(&[
            "run",
            "--entrypoint",
            "sh,-c",
            "-w",
            "/work",
            "-e",
            "A=1",
            "--memory",
            "64Mi",
            "--cpu",
            "500m",
            "--network",
            "bridge",
            "--target",
            "all",
            "--constraints",
            "region=eu",
            "-l",
            "team=data",
            "--timeout",
            "30",
            "busybox",
            "--",
            "exit 3",
        ]);
        let task = &s["Tasks"][0];
        assert_eq!(task["Engine"]["Params"]["Entrypoint"], json!(["sh", "-c"]));
        assert_eq!(task["Engine"]["Params"]["Parameters"], json!(["exit 3"]));
        assert_eq!(task["Engine"]["Params"]["WorkingDirectory"], "/work");
        assert_eq!(task["Env"]["A"], "1");
        assert_eq!(task["Resources"]["Memory"], "64Mi");
        assert_eq!(task["Resources"]["CPU"], "500m");
        assert_eq!(task["Network"]["Type"], "Bridge");
        assert_eq!(task["Timeouts"]["ExecutionTimeout"], 30);
        assert_eq!(s["Type"], "ops");
        assert_eq!(s["Labels"]["team"], "data");
        assert_eq!(s["Constraints"][0]["Key"], "region");
    }

    #[test]
    fn env_without_equals_is_refused_naming_it() {
        let cli = Cli::try_parse_from(["docker", "run", "-e", "NOPE", "busybox"]).unwrap();
        let DockerCommand::Run(a) = cli.cmd;
        let err = job_spec(&a).unwrap_err().to_string();
        assert!(err.contains("\"NOPE\""), "{err}");
    }

    #[test]
    fn unknown_network_is_refused_by_the_parser() {
        assert!(Cli::try_parse_from(["docker", "run", "--network", "wifi", "busybox"]).is_err());
    }
}
