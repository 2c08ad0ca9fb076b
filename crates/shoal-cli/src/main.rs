//! `shoal`: one binary that is the client, the orchestrator and the compute agent.

mod commands;
mod config;
mod endpoint;
mod output;
mod wait;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::endpoint::Endpoint;

/// Shoal runs jobs where the data lives, across a fleet of nodes that dial in.
///
/// Quick start: `shoal devstack` in one terminal, then `shoal wasm run examples/hello.wat` in
/// another. Bacalhau job files work unchanged with `shoal job run FILE`.
#[derive(Parser)]
#[command(name = "shoal", version, disable_version_flag = true)]
struct Cli {
    #[command(flatten)]
    endpoint: Endpoint,
    /// Log level for the orchestrator and agents (error, warn, info, debug, trace).
    #[arg(long, global = true, env = "SHOAL_LOG", default_value = "warn")]
    log_level: String,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Start an orchestrator, a compute node, or both (hybrid).
    Serve(Box<commands::serve::ServeArgs>),
    /// Start an orchestrator and N compute agents in one process: the zero-setup way to try Shoal.
    Devstack(commands::devstack::DevstackArgs),
    /// Submit and inspect jobs.
    #[command(subcommand)]
    Job(commands::job::JobCommand),
    /// Run WebAssembly modules.
    #[command(subcommand)]
    Wasm(commands::wasm::WasmCommand),
    /// Run container images with the docker engine.
    #[command(subcommand)]
    Docker(commands::docker::DockerCommand),
    /// List and manage compute nodes.
    #[command(subcommand)]
    Node(commands::node::NodeCommand),
    /// Run a host command on every node (or a labelled subset) whose policy allows it, and
    /// print each node's exit code and output.
    ///
    /// Example: shoal exec --constraints region=eu -- systemctl restart nginx
    Exec(commands::exec::ExecArgs),
    /// Ask every node (or a labelled subset) one question in SQL: osquery's host tables, or
    /// (--engine analytics) the node's Parquet/CSV/JSON files; answers stream back tagged
    /// with node_id, then the fleet coverage.
    ///
    /// Example: shoal query "SELECT hostname FROM system_info" --output csv
    Query(commands::query::QueryArgs),
    /// Generate demo data (the data warehouse example's sales).
    #[command(subcommand)]
    Demo(commands::demo::DemoCommand),
    /// Check credentials: who you are to the orchestrator, what is set, hash a password.
    #[command(subcommand)]
    Auth(commands::auth::AuthCommand),
    /// Read the audit log: every write call and every refusal (needs the `admin` grant).
    #[command(subcommand)]
    Audit(commands::auth::AuditCommand),
    /// Print the client's and the orchestrator's versions.
    Version,
}

fn main() -> ExitCode {
    restore_default_sigpipe();
    let cli = Cli::parse();
    let filter = tracing_subscriber::EnvFilter::try_new(format!(
        "{},hyper=warn,tungstenite=warn",
        cli.log_level
    ))
    .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async move {
        match cli.command {
            Command::Serve(args) => commands::serve::run(&cli.endpoint, *args).await,
            Command::Devstack(args) => commands::devstack::run(&cli.endpoint, args).await,
            Command::Job(cmd) => commands::job::run(&cli.endpoint, cmd).await,
            Command::Wasm(cmd) => commands::wasm::run(&cli.endpoint, cmd).await,
            Command::Docker(cmd) => commands::docker::run(&cli.endpoint, cmd).await,
            Command::Node(cmd) => commands::node::run(&cli.endpoint, cmd).await,
            Command::Exec(args) => commands::exec::run(&cli.endpoint, args).await,
            Command::Query(args) => commands::query::run(&cli.endpoint, args).await,
            Command::Demo(cmd) => commands::demo::run(cmd).await,
            Command::Auth(cmd) => commands::auth::run(&cli.endpoint, cmd).await,
            Command::Audit(cmd) => commands::auth::run_audit(&cli.endpoint, cmd).await,
            Command::Version => commands::version(&cli.endpoint).await,
        }
    });
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// `shoal job list | head` must end quietly when `head` closes the pipe, as Unix tools do,
/// instead of panicking on the failed write: Rust ignores SIGPIPE by default.
fn restore_default_sigpipe() {
    // SAFETY: called first thing in main, before any thread exists; SIG_DFL is a valid handler.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    #[test]
    fn command_line_definition_is_consistent() {
        super::Cli::command().debug_assert();
    }
}
