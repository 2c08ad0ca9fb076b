//! `shoal job ...`

use std::io::Read;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Args, Subcommand};
use shoal_types::spec::{self, SpecError};
use shoal_types::{Job, template};

use super::{RunFlags, submit_and_report};
use crate::endpoint::Endpoint;
use crate::output::{self, Format};
use crate::wait::short;

/// Job commands.
#[derive(Subcommand)]
pub enum JobCommand {
    /// Submit a job file (YAML or JSON, Bacalhau's format) or `-` for stdin.
    Run(RunArgs),
    /// Check a job file without submitting it: exit 0 when valid, 1 with the errors otherwise.
    Validate {
        /// The job file.
        file: String,
        /// Template variable `key=value` (repeatable).
        #[arg(short = 'V', long = "template-vars")]
        vars: Vec<String>,
    },
    /// Show a job: state, placement reasons, executions, history and outputs.
    Describe {
        /// Job id, unique id prefix, or name.
        id: String,
        /// Output format.
        #[arg(long, value_enum, default_value_t = Format::Table)]
        output: Format,
    },
    /// List jobs (`--scheduled`: scheduled jobs with their cron and next run; `--parent`: the
    /// runs of one scheduled job).
    List {
        /// How many jobs to show.
        #[arg(long, default_value_t = 10)]
        limit: usize,
        /// Continue from a previous listing.
        #[arg(long, default_value = "")]
        next_token: String,
        /// Oldest first (default is newest first).
        #[arg(long)]
        oldest_first: bool,
        /// Only scheduled jobs (those with a Schedule block), with cron, time zone and next run.
        #[arg(long, conflicts_with = "parent")]
        scheduled: bool,
        /// Only the runs (child jobs `<name>@<tick>`) of this scheduled job: id, prefix or name.
        #[arg(long)]
        parent: Option<String>,
        /// Output format.
        #[arg(long, value_enum, default_value_t = Format::Table)]
        output: Format,
    },
    /// Run a scheduled job once now, outside its schedule (Nomad's `periodic force`); the
    /// schedule's own ticks are not moved. Prints the new run's job id.
    RunNow {
        /// Id, unique id prefix, or name of the scheduled job.
        id: String,
    },
    /// List a job's executions.
    Executions {
        /// Job id, unique id prefix, or name.
        id: String,
        /// Output format.
        #[arg(long, value_enum, default_value_t = Format::Table)]
        output: Format,
    },
    /// Show a job's history.
    History {
        /// Job id, unique id prefix, or name.
        id: String,
        /// Output format.
        #[arg(long, value_enum, default_value_t = Format::Table)]
        output: Format,
    },
    /// Print a job's logs (stdout to stdout, stderr to stderr).
    Logs {
        /// Job id, unique id prefix, or name.
        id: String,
        /// Keep streaming until the execution ends.
        #[arg(short, long)]
        follow: bool,
        /// Which execution (default: the most recent).
        #[arg(short, long)]
        execution_id: Option<String>,
        /// Print the copy the orchestrator keeps (what survives the node: shipped every
        /// --log-ship-interval while the execution runs, and when it ends) instead of
        /// asking the node.
        #[arg(long, conflicts_with = "follow")]
        kept: bool,
    },
    /// Download a job's published results into `job-<id>/` (stdout, stderr, exitCode and
    /// result paths; one folder per node when there are several results). Works for nodes
    /// behind NAT: archives kept on nodes come through the orchestrator.
    Get {
        /// Job id, unique id prefix, or name.
        id: String,
        /// Where to write (default `./job-<short id>`).
        #[arg(long)]
        output_dir: Option<std::path::PathBuf>,
        /// Keep the downloaded archives (`raw/<execution id>.tar.gz`) instead of unpacking.
        #[arg(long)]
        raw: bool,
    },
    /// Print one file of a job's published results, e.g. `shoal job cat ID outputs/r.txt`.
    Cat {
        /// Job id, unique id prefix, or name.
        id: String,
        /// Path inside the results (`stdout`, `exitCode`, `outputs/file`).
        path: String,
    },
    /// Show where a job's rollout stands: phase, counts and every node's progress.
    RolloutStatus {
        /// Job id, unique id prefix, or name.
        id: String,
        /// Output format.
        #[arg(long, value_enum, default_value_t = Format::Table)]
        output: Format,
    },
    /// Let a rollout that waits after its canaries go on to the rest of the nodes.
    Promote {
        /// Job id, unique id prefix, or name.
        id: String,
    },
    /// Stop a job.
    Stop {
        /// Job id, unique id prefix, or name.
        id: String,
        /// Print nothing.
        #[arg(long)]
        quiet: bool,
    },
}

/// `job run` arguments.
#[derive(Args)]
pub struct RunArgs {
    /// The job file, or `-` for stdin.
    pub file: String,
    /// Template variable `key=value` for Go-template job files (repeatable).
    #[arg(short = 'V', long = "template-vars")]
    pub vars: Vec<String>,
    /// Do not treat `{{ }}` in the file as a template.
    #[arg(long)]
    pub no_template: bool,
    /// Print the parsed job as YAML instead of submitting it.
    #[arg(long)]
    pub dry_run: bool,
    #[command(flatten)]
    pub flags: RunFlags,
}

/// Reads, renders and parses a job file.
pub fn load(file: &str, vars: &[String], no_template: bool) -> anyhow::Result<Job> {
    let mut text = String::new();
    if file == "-" {
        std::io::stdin()
            .read_to_string(&mut text)
            .context("cannot read the job from stdin")?;
    } else {
        text = std::fs::read_to_string(file)
            .with_context(|| format!("cannot read job file {file}"))?;
    }
    let map = super::key_value::parse_pairs("template variable", vars)?;
    if !no_template && template::has_actions(&text) {
        text = template::render(&text, &map).map_err(|e| anyhow::anyhow!("{file}: {e}"))?;
    }
    spec::parse_job(&text).map_err(|e| match e {
        SpecError::Syntax(m) => anyhow::anyhow!("{file}: {m}"),
        SpecError::Invalid(errs) => anyhow::anyhow!(
            "{file} is not a valid job:\n{}",
            errs.iter()
                .map(|e| format!("  {e}"))
                .collect::<Vec<_>>()
                .join("\n")
        ),
    })
}

/// Runs a job command.
pub async fn run(endpoint: &Endpoint, cmd: JobCommand) -> anyhow::Result<ExitCode> {
    match cmd {
        JobCommand::Run(args) => {
            let job = load(&args.file, &args.vars, args.no_template)?;
            if args.dry_run {
                print!("{}", serde_yaml::to_string(&job)?);
                return Ok(ExitCode::SUCCESS);
            }
            submit_and_report(&endpoint.client()?, &job, &args.flags).await
        }
        JobCommand::Validate { file, vars } => {
            let job = match load(&file, &vars, false) {
                Ok(j) => j,
                Err(e) => {
                    eprintln!("{e:#}");
                    return Ok(ExitCode::FAILURE);
                }
            };
            let errors = spec::validate(&job);
            if errors.is_empty() {
                println!("{file}: valid {} job", job.job_type);
                Ok(ExitCode::SUCCESS)
            } else {
                eprintln!("{file} is not a valid job:");
                for e in errors {
                    eprintln!("  {e}");
                }
                Ok(ExitCode::FAILURE)
            }
        }
        JobCommand::Describe { id, output } => describe(endpoint, &id, output).await,
        JobCommand::List {
            limit,
            next_token,
            oldest_first,
            scheduled,
            parent,
            output,
        } => {
            let filter = shoal_client::JobsWhere { scheduled, parent };
            let page = endpoint
                .client()?
                .list_jobs_where(limit, &next_token, !oldest_first, &filter)
                .await?;
            if output != Format::Table {
                output::structured(output, &page.items)?;
                return Ok(ExitCode::SUCCESS);
            }
            if scheduled {
                println!("{}", super::schedule_view::list_table(&page.items));
            } else {
                let rows = page
                    .items
                    .iter()
                    .map(|j| {
                        vec![
                            output::time(j.create_time),
                            short(&j.id),
                            j.name.clone(),
                            j.job_type.to_string(),
                            j.state.state_type.to_string(),
                        ]
                    })
                    .collect();
                println!(
                    "{}",
                    output::table(&["CREATED", "ID", "NAME", "TYPE", "STATE"], rows)
                );
            }
            if !page.next_token.is_empty() {
                println!(
                    "\nTo fetch more records use: shoal job list --limit {limit} --next-token {}",
                    page.next_token
                );
            }
            Ok(ExitCode::SUCCESS)
        }
        JobCommand::Executions { id, output } => {
            let execs = endpoint.client()?.executions(&id).await?;
            if output != Format::Table {
                output::structured(output, &execs)?;
                return Ok(ExitCode::SUCCESS);
            }
            println!("{}", executions_table(&execs));
            Ok(ExitCode::SUCCESS)
        }
        JobCommand::History { id, output } => {
            let items = endpoint.client()?.history(&id, "").await?.items;
            if output != Format::Table {
                output::structured(output, &items)?;
                return Ok(ExitCode::SUCCESS);
            }
            let rows = items
                .iter()
                .map(|h| {
                    let level = if h.execution_id.is_empty() {
                        "Job"
                    } else {
                        "Execution"
                    };
                    vec![
                        h.time.get(..19).unwrap_or(&h.time).replace('T', " "),
                        level.into(),
                        short(&h.execution_id),
                        h.event.topic.clone(),
                        h.event.message.clone(),
                    ]
                })
                .collect();
            println!(
                "{}",
                output::table(&["TIME", "LEVEL", "EXEC. ID", "TOPIC", "EVENT"], rows)
            );
            Ok(ExitCode::SUCCESS)
        }
        JobCommand::Logs {
            id,
            follow,
            execution_id,
            kept,
        } => {
            endpoint
                .client()?
                .logs(
                    &id,
                    execution_id.as_deref(),
                    follow,
                    kept,
                    crate::output::log_line,
                )
                .await?;
            Ok(ExitCode::SUCCESS)
        }
        JobCommand::Get {
            id,
            output_dir,
            raw,
        } => super::job_get::get(&endpoint.client()?, &id, output_dir, raw).await,
        JobCommand::Cat { id, path } => super::job_get::cat(&endpoint.client()?, &id, &path).await,
        JobCommand::RolloutStatus { id, output } => {
            super::rollout::status(endpoint, &id, output).await
        }
        JobCommand::Promote { id } => super::rollout::promote(endpoint, &id).await,
        JobCommand::RunNow { id } => {
            let child = endpoint.client()?.run_now(&id).await?;
            println!("{child}");
            Ok(ExitCode::SUCCESS)
        }
        JobCommand::Stop { id, quiet } => {
            let client = endpoint.client()?;
            client.stop(&id, "Stopped at user request").await?;
            if !quiet {
                println!("Job {id} stopped");
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}

fn executions_table(execs: &[shoal_types::Execution]) -> String {
    let rows = execs
        .iter()
        .map(|e| {
            let exit = e.exit_code().map(|c| c.to_string()).unwrap_or_default();
            vec![
                short(e.id.as_str()),
                short(e.node_id.as_str()),
                e.partition_index.to_string(),
                e.compute_state.state_type.to_string(),
                e.desired_state.state_type.to_string(),
                exit,
                e.compute_state.message.clone(),
            ]
        })
        .collect();
    output::table(
        &[
            "ID",
            "NODE",
            "PARTITION",
            "STATE",
            "DESIRED",
            "EXIT",
            "MESSAGE",
        ],
        rows,
    )
}

async fn describe(endpoint: &Endpoint, id: &str, output: Format) -> anyhow::Result<ExitCode> {
    let view = endpoint.client()?.job(id, "history,executions").await?;
    if output != Format::Table {
        let history = view.history.as_ref().map(|h| &h.items);
        let execs = view.executions.as_ref().map(|e| &e.items);
        output::structured(
            output,
            &serde_json::json!({ "Job": view.job, "History": history, "Executions": execs, "Placement": view.placement, "Rollout": view.rollout, "Schedule": view.schedule }),
        )?;
        return Ok(ExitCode::SUCCESS);
    }
    let j = &view.job;
    println!("ID            = {}", j.id);
    println!("Name          = {}", j.name);
    println!("Namespace     = {}", j.namespace);
    println!("Type          = {}", j.job_type);
    println!("State         = {}", j.state.state_type);
    if !j.state.message.is_empty() {
        println!("Message       = {}", j.state.message);
    }
    println!("Count         = {}", j.count);
    println!("Created Time  = {}", output::time(j.create_time));
    println!("Modified Time = {}", output::time(j.modify_time));
    println!("Version       = {}", j.version);
    if let Some(state) = &view.rollout {
        println!("\n{}", super::rollout::summary(&j.id, state).trim_end());
        println!("(per node: shoal job rollout-status {})", j.id);
    }
    if let Some(s) = &j.schedule {
        super::schedule_view::describe(&j.name, s, view.schedule.as_ref());
    }
    if !view.placement.is_empty() {
        println!("\nNodes not chosen:");
        let rows = view
            .placement
            .iter()
            .map(|p| vec![short(&p.node_id), p.reason.clone()])
            .collect();
        println!("{}", output::table(&["NODE", "REASON"], rows));
    }
    let execs = view.executions.map(|e| e.items).unwrap_or_default();
    println!("\nExecutions:");
    println!("{}", executions_table(&execs));
    if let Some(h) = view.history {
        println!("\nHistory:");
        let rows = h
            .items
            .iter()
            .map(|h| {
                vec![
                    h.time.get(11..19).unwrap_or("").to_string(),
                    short(&h.execution_id),
                    h.event.topic.clone(),
                    h.event.message.clone(),
                ]
            })
            .collect();
        println!(
            "{}",
            output::table(&["TIME", "EXEC. ID", "TOPIC", "EVENT"], rows)
        );
    }
    for e in &execs {
        if let Some(o) = &e.run_output
            && (!o.stdout.is_empty() || !o.stderr.is_empty())
        {
            println!(
                "\nOutput of {} on {}:",
                short(e.id.as_str()),
                short(e.node_id.as_str())
            );
            if !o.stdout.is_empty() {
                println!("stdout:\n{}", o.stdout.trim_end());
            }
            if !o.stderr.is_empty() {
                println!("stderr:\n{}", o.stderr.trim_end());
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}
