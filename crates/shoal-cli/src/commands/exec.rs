//! `shoal exec [flags] -- CMD ARGS...`: run one host command on every matching node.
//!
//! Submits an `ops` job with the `exec` engine (read and finished like every other
//! submission), waits for it, and prints one line per node with the exit code and the tail
//! of its output, then the account on stderr: succeeded, failed, unreachable, rejected by the
//! node's policy. The exit code is 0 only when every node succeeded.

use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, ValueEnum};
use serde::Serialize;
use serde_json::{Value, json};
use shoal_types::{ComputeStateType, Execution, Job, JobStateType, spec};

use super::key_value::parse_pairs;
use super::wasm::parse_constraints;
use crate::endpoint::Endpoint;
use crate::{output, wait};

/// Seconds a node has after the command's time limit to report before it counts as
/// unreachable.
const REPORT_GRACE_SECS: u64 = 10;

/// Characters of output shown per node in the table.
const TAIL_CHARS: usize = 80;

/// `exec` arguments.
#[derive(Args, Debug)]
#[command(
    after_help = "Examples:\n\n  shoal exec -- /usr/bin/uptime\n\n  shoal exec --constraints region=eu -- systemctl restart nginx\n\n  shoal exec --shell --user www-data -- 'cd /srv/app && git pull'\n\n  shoal exec --timeout 30s --output ndjson -- /usr/bin/df -h /\n\nEach node decides for itself: it runs the command only when its agent was started with\n--enable-exec and an --exec-allow rule allows the command line (a shell needs a rule for\n/bin/sh), as the user nobody unless --user names one the node allows (--exec-user).\nSubmitting needs the `exec` grant, and --shell also `exec:shell`.\n\nRollouts: --batch 10% [--max-failures 2] [--pause 30s] [--window] reaches the nodes a few at a\ntime and stops once failures exceed --max-failures; the nodes never reached are listed."
)]
pub struct ExecArgs {
    /// The program and its arguments, after `--`; run as they are, without a shell. A bare
    /// program name is looked up in the node's PATH.
    #[arg(trailing_var_arg = true, allow_hyphen_values = true, required = true)]
    pub command: Vec<String>,
    /// Run only on nodes whose labels match, e.g. `region=eu,zone!=a`.
    #[arg(long)]
    pub constraints: Option<String>,
    /// Run as this user (default: the node's default exec user, nobody).
    #[arg(long)]
    pub user: Option<String>,
    /// Run the words after `--` as one script with /bin/sh -c.
    #[arg(long)]
    pub shell: bool,
    /// Working directory on the node (absolute; default /).
    #[arg(short = 'w', long)]
    pub workdir: Option<String>,
    /// Time limit of the command on each node (`30s`, `5m`); it is killed past it, and nodes
    /// that have not answered 10 s later count as unreachable.
    #[arg(long, value_parser = humantime::parse_duration, default_value = "5m")]
    pub timeout: Duration,
    /// How to print the result per node.
    #[arg(long, value_enum, default_value_t = ExecFormat::Table)]
    pub output: ExecFormat,
    /// Job labels `key=value` (repeatable or comma-separated).
    #[arg(short = 'l', long, value_delimiter = ',')]
    pub labels: Vec<String>,
    /// Print the job spec (YAML) that would be submitted, and submit nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Roll out a few nodes at a time: at most this many (`5`) or this share (`10%`) run at
    /// once, in waves in node-id order.
    #[arg(long, help_heading = "Rollout")]
    pub batch: Option<String>,
    /// Salt's sliding window instead of waves: a node starts as soon as another ends.
    #[arg(long, requires = "batch", help_heading = "Rollout")]
    pub window: bool,
    /// Failures allowed over the whole rollout (`2` or `5%`) before it stops starting
    /// nodes; default 0, stop at the first.
    #[arg(long, requires = "batch", help_heading = "Rollout")]
    pub max_failures: Option<String>,
    /// Wait this long between waves (`30s`).
    #[arg(long, requires = "batch", help_heading = "Rollout")]
    pub pause: Option<String>,
    /// What a node that is away when its turn comes means: `skip` (default; reported, not
    /// counted) or `count_as_failure`.
    #[arg(long, requires = "batch", help_heading = "Rollout")]
    pub unreachable: Option<String>,
}

/// How `shoal exec` prints the result per node.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, ValueEnum)]
pub enum ExecFormat {
    /// One line per node: node, outcome, exit code, the tail of its output.
    #[default]
    Table,
    /// One JSON array of node objects (with the output kept in the report).
    Json,
    /// One JSON object per node and line.
    Ndjson,
}

/// The job, in Bacalhau's JSON shape, for these arguments.
pub fn job_spec(a: &ExecArgs) -> anyhow::Result<Value> {
    let mut params = serde_json::Map::new();
    if a.shell {
        params.insert("Command".into(), json!(a.command.join(" ")));
        params.insert("Shell".into(), json!(true));
    } else {
        params.insert("Command".into(), json!(a.command[0]));
        if a.command.len() > 1 {
            params.insert("Arguments".into(), json!(a.command[1..]));
        }
    }
    if let Some(u) = &a.user {
        params.insert("User".into(), json!(u));
    }
    if let Some(w) = &a.workdir {
        params.insert("WorkingDirectory".into(), json!(w));
    }
    // Whole seconds, rounded up: a limit below a second still limits.
    let timeout = a.timeout.as_secs() + u64::from(a.timeout.subsec_nanos() > 0);
    anyhow::ensure!(
        timeout > 0,
        "--timeout must be longer than 0s (for example 30s)"
    );
    let mut spec = json!({
        // Nameless: every `shoal exec` is a new job, never an update of an earlier one.
        "Name": "",
        "Type": "ops",
        "Labels": parse_pairs("--labels", &a.labels)?,
        "Constraints": match &a.constraints { Some(c) => parse_constraints(c)?, None => json!([]) },
        "Tasks": [{
            "Name": "main",
            "Engine": { "Type": "exec", "Params": params },
            // A host command is not in a container: the network setting does not apply, and
            // None keeps nodes that refuse networked jobs from refusing it for that.
            "Network": { "Type": "None" },
            // The job's deadline leaves the nodes time to kill a command at its own limit
            // and say so (`killed: timeout after 30s`) before the orchestrator cancels it and
            // writes off nodes that have not answered as unreachable.
            "Timeouts": { "ExecutionTimeout": timeout, "TotalTimeout": timeout + REPORT_GRACE_SECS },
        }],
    });
    if let Some(batch) = &a.batch {
        let mut rollout = json!({ "Batch": batch });
        if a.window {
            rollout["Mode"] = json!("window");
        }
        for (key, value) in [
            ("MaxFailures", &a.max_failures),
            ("Pause", &a.pause),
            ("Unreachable", &a.unreachable),
        ] {
            if let Some(v) = value {
                rollout[key] = json!(v);
            }
        }
        spec["Rollout"] = rollout;
    }
    Ok(spec)
}

/// Where one node's execution ended up.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// Exited 0.
    Succeeded,
    /// Exited non-zero, or could not run to its end (time limit, cancelled, error).
    Failed,
    /// The node did not answer in time, or was lost.
    Unreachable,
    /// The node's policy refused it (allowlist, user, or the node could not take it).
    Rejected,
    /// Not ended (the wait was cut short).
    Running,
    /// Never started: the rollout stopped before the node's turn.
    NotStarted,
}

/// One node's line.
#[derive(Debug, Clone, Serialize)]
pub struct NodeResult {
    /// The node.
    pub node_id: String,
    /// Where it ended up.
    pub outcome: Outcome,
    /// The exit code, when the command ran to its end.
    pub exit_code: Option<i32>,
    /// Stdout as the report keeps it (its head).
    pub stdout: String,
    /// Stderr as the report keeps it (its head).
    pub stderr: String,
    /// The node's or the orchestrator's word on how it ended.
    pub message: String,
}

impl NodeResult {
    fn of(e: &Execution) -> NodeResult {
        let state = e.compute_state.state_type;
        let outcome = match state {
            _ if !e.is_terminal() => Outcome::Running,
            ComputeStateType::Completed if e.exit_code() == Some(0) => Outcome::Succeeded,
            ComputeStateType::Completed => Outcome::Failed,
            _ if shoal_scheduler::is_unreachable(e) => Outcome::Unreachable,
            ComputeStateType::AskForBidRejected | ComputeStateType::BidRejected => {
                Outcome::Rejected
            }
            _ => Outcome::Failed,
        };
        let (stdout, stderr) = e
            .run_output
            .as_ref()
            .map(|o| (o.stdout.clone(), o.stderr.clone()))
            .unwrap_or_default();
        NodeResult {
            node_id: e.node_id.to_string(),
            outcome,
            exit_code: e.exit_code(),
            stdout,
            stderr,
            message: e.compute_state.message.clone(),
        }
    }

    /// What the table shows: the end of the last line of stdout (of stderr when stdout is
    /// empty), or, when the command did not run to its end, the whole word on why.
    fn tail(&self) -> String {
        let last = |s: &str| {
            s.lines()
                .rev()
                .find(|l| !l.trim().is_empty())
                .map(str::to_string)
        };
        let line = match self.exit_code {
            Some(_) => last(&self.stdout).or_else(|| last(&self.stderr)),
            None => None,
        };
        let Some(text) = line else {
            return self.message.clone();
        };
        let count = text.chars().count();
        if count <= TAIL_CHARS {
            text
        } else {
            let keep: String = text.chars().skip(count - (TAIL_CHARS - 1)).collect();
            format!("…{keep}")
        }
    }
}

/// The account over every node: `3 nodes: 1 succeeded, 1 failed, 0 unreachable, 1 rejected by
/// policy`.
fn account(results: &[NodeResult]) -> String {
    let n = |o: Outcome| results.iter().filter(|r| r.outcome == o).count();
    let running = n(Outcome::Running);
    let not_started = n(Outcome::NotStarted);
    format!(
        "{} node{}: {} succeeded, {} failed, {} unreachable, {} rejected by policy{}{}",
        results.len(),
        if results.len() == 1 { "" } else { "s" },
        n(Outcome::Succeeded),
        n(Outcome::Failed),
        n(Outcome::Unreachable),
        n(Outcome::Rejected),
        if running > 0 {
            format!(", {running} still running")
        } else {
            String::new()
        },
        if not_started > 0 {
            format!(", {not_started} not started (the rollout stopped)")
        } else {
            String::new()
        }
    )
}

/// Runs `shoal exec`.
pub async fn run(endpoint: &Endpoint, a: ExecArgs) -> anyhow::Result<ExitCode> {
    let job = spec::parse_job_value(job_spec(&a)?).map_err(|e| anyhow::anyhow!("{e}"))?;
    if a.dry_run {
        print!("{}", serde_yaml::to_string(&job)?);
        return Ok(ExitCode::SUCCESS);
    }
    let client = endpoint.client()?;
    let submitted = client.submit_with(&job, false).await?;
    for w in &submitted.warnings {
        eprintln!("warning: {w}");
    }
    let id = submitted.job_id;
    eprintln!("Exec job {id} submitted; waiting for the nodes...");
    let view = wait::until_done(&client, &id, true).await?;
    let mut results: Vec<NodeResult> = view
        .executions
        .map(|e| e.items)
        .unwrap_or_default()
        .iter()
        .filter(|e| e.job_version == view.job.version)
        .map(NodeResult::of)
        .collect();
    // A rollout that stopped leaves nodes it never reached: they are part of the account.
    if let Some(rollout) = &view.rollout {
        for n in &rollout.nodes {
            if !results.iter().any(|r| r.node_id == n.node_id.as_str()) {
                results.push(NodeResult {
                    node_id: n.node_id.to_string(),
                    outcome: Outcome::NotStarted,
                    exit_code: None,
                    stdout: String::new(),
                    stderr: String::new(),
                    message: n.message.clone(),
                });
            }
        }
    }
    results.sort_by(|x, y| x.node_id.cmp(&y.node_id));
    print_results(a.output, &results)?;
    if results.is_empty() {
        return Ok(refused(&view.job));
    }
    eprintln!("{}", account(&results));
    if let Some(outcome) = view.rollout.as_ref().and_then(|r| r.outcome.as_ref()) {
        eprintln!("{outcome}");
    }
    // Nodes that match but were passed over for now (cordoned, away): in an incident, "ran
    // everywhere" must not be read into an account that left them out.
    for p in view.placement.iter().filter(|p| p.transient) {
        eprintln!("skipped {}: {}", p.node_id, p.reason);
    }
    let all_succeeded = results.iter().all(|r| r.outcome == Outcome::Succeeded);
    if !all_succeeded {
        eprintln!("To see why, run: shoal job describe {id}");
    }
    Ok(if all_succeeded {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// No node took the job: the orchestrator's reason lists each node's.
fn refused(job: &Job) -> ExitCode {
    let state = job.state.state_type;
    if state == JobStateType::Completed {
        eprintln!("no node matched, nothing ran");
    } else {
        eprintln!(
            "error: exec job {} {}: {}",
            job.id,
            state.as_str().to_lowercase(),
            job.state.message
        );
    }
    ExitCode::FAILURE
}

fn print_results(format: ExecFormat, results: &[NodeResult]) -> anyhow::Result<()> {
    match format {
        ExecFormat::Table => {
            if results.is_empty() {
                return Ok(());
            }
            let rows = results
                .iter()
                .map(|r| {
                    vec![
                        r.node_id.clone(),
                        format!("{:?}", r.outcome).to_lowercase(),
                        r.exit_code
                            .map_or_else(|| "-".to_string(), |c| c.to_string()),
                        r.tail(),
                    ]
                })
                .collect();
            println!(
                "{}",
                output::table(&["NODE", "OUTCOME", "EXIT", "OUTPUT"], rows)
            );
        }
        ExecFormat::Json => println!("{}", serde_json::to_string_pretty(results)?),
        ExecFormat::Ndjson => {
            for r in results {
                println!("{}", serde_json::to_string(r)?);
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use clap::Parser;
    use shoal_types::RunOutput;

    use super::*;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        args: ExecArgs,
    }

    fn spec_for(args: &[&str]) -> Value {
        let cli = Cli::try_parse_from(["exec"].iter().chain(args)).unwrap();
        job_spec(&cli.args).unwrap()
    }

    #[test]
    fn the_words_after_the_dashes_become_command_and_arguments() {
        let s = spec_for(&["--", "systemctl", "restart", "nginx"]);
        assert_eq!(s["Type"], "ops");
        let engine = &s["Tasks"][0]["Engine"];
        assert_eq!(engine["Type"], "exec");
        assert_eq!(engine["Params"]["Command"], "systemctl");
        assert_eq!(engine["Params"]["Arguments"], json!(["restart", "nginx"]));
        assert!(engine["Params"].get("Shell").is_none());
        assert_eq!(s["Tasks"][0]["Timeouts"]["ExecutionTimeout"], 300);
        assert_eq!(s["Tasks"][0]["Timeouts"]["TotalTimeout"], 310);
    }

    #[test]
    fn flags_fill_the_task() {
        let s = spec_for(&[
            "--constraints",
            "region=eu",
            "--user",
            "www-data",
            "--shell",
            "--timeout",
            "1500ms",
            "-w",
            "/srv",
            "--",
            "cd /srv &&",
            "git pull",
        ]);
        let params = &s["Tasks"][0]["Engine"]["Params"];
        assert_eq!(params["Command"], "cd /srv && git pull");
        assert_eq!(params["Shell"], true);
        assert!(params.get("Arguments").is_none());
        assert_eq!(params["User"], "www-data");
        assert_eq!(params["WorkingDirectory"], "/srv");
        assert_eq!(s["Tasks"][0]["Timeouts"]["ExecutionTimeout"], 2);
        assert_eq!(s["Constraints"][0]["Key"], "region");
    }

    #[test]
    fn a_command_is_required() {
        assert!(Cli::try_parse_from(["exec", "--shell"]).is_err());
    }

    fn execution(state: ComputeStateType, message: &str, output: Option<(&str, i32)>) -> Execution {
        let mut e: Execution = serde_json::from_value(json!({
            "ID": "e-1", "NodeID": "n-1", "JobID": "j-1",
            "DesiredState": {"StateType": 1}, "ComputeState": {"StateType": 1, "Message": message},
        }))
        .unwrap();
        e.compute_state.state_type = state;
        e.run_output = output.map(|(stdout, exit_code)| RunOutput {
            stdout: stdout.into(),
            exit_code,
            ..Default::default()
        });
        e
    }

    #[test]
    fn each_node_lands_in_one_outcome() {
        let ok = NodeResult::of(&execution(
            ComputeStateType::Completed,
            "",
            Some(("a\nlast line\n\n", 0)),
        ));
        assert_eq!(ok.outcome, Outcome::Succeeded);
        assert_eq!(ok.tail(), "last line");
        let bad = NodeResult::of(&execution(ComputeStateType::Completed, "", Some(("", 3))));
        assert_eq!((bad.outcome, bad.exit_code), (Outcome::Failed, Some(3)));
        let refused = NodeResult::of(&execution(
            ComputeStateType::AskForBidRejected,
            "node n-1: not in exec allowlist: /bin/rm -rf /tmp/x",
            None,
        ));
        assert_eq!(refused.outcome, Outcome::Rejected);
        assert!(refused.tail().contains("not in exec allowlist"));
        let away = NodeResult::of(&execution(
            ComputeStateType::Failed,
            "unreachable: node n-1 did not report",
            None,
        ));
        assert_eq!(away.outcome, Outcome::Unreachable);
        let timed_out = NodeResult::of(&execution(
            ComputeStateType::Failed,
            "execution timed out after 2s",
            None,
        ));
        assert_eq!(timed_out.outcome, Outcome::Failed);
        assert_eq!(
            account(&[ok, bad, refused, away, timed_out]),
            "5 nodes: 1 succeeded, 2 failed, 1 unreachable, 1 rejected by policy"
        );
    }

    #[test]
    fn a_long_tail_keeps_its_end() {
        let long = "x".repeat(200) + "END";
        let r = NodeResult::of(&execution(
            ComputeStateType::Completed,
            "",
            Some((&long, 0)),
        ));
        let tail = r.tail();
        assert_eq!(tail.chars().count(), TAIL_CHARS);
        assert!(tail.starts_with('…') && tail.ends_with("END"), "{tail}");
    }
}
