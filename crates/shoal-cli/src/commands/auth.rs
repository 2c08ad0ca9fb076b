//! `shoal auth ...` (who am I, what is set, hash a password) and `shoal audit list`.

use std::io::BufRead;
use std::process::ExitCode;

use clap::Subcommand;
use serde_json::Value;

use crate::endpoint::Endpoint;
use crate::output::{self, Format};

/// Auth commands.
#[derive(Subcommand)]
pub enum AuthCommand {
    /// Show who the orchestrator takes your credentials for, and what you may do.
    ///
    /// Credentials come from SHOAL_API_KEY (or BACALHAU_API_KEY), or from
    /// BACALHAU_API_USERNAME and BACALHAU_API_PASSWORD (or their SHOAL_ twins).
    Whoami {
        /// Output format.
        #[arg(long, value_enum, default_value_t = Format::Table)]
        output: Format,
    },
    /// Ask the orchestrator whether your credentials hold a capability: prints `yes`, or
    /// `no` and why; exits 0 or 1 (`shoal auth can-i exec && shoal exec -- ...`).
    #[command(
        after_help = "Capabilities: read:job, write:job, read:node, write:node, read:agent, write:agent, query, exec, exec:shell, admin.\n\nExamples:\n\n  shoal auth can-i exec\n  shoal auth can-i write:job --namespace team-a"
    )]
    CanI {
        /// The capability, e.g. exec, write:job, query.
        capability: String,
        /// Also check that you may use this namespace.
        #[arg(long)]
        namespace: Option<String>,
    },
    /// Show which credential variables are set (never their values) and where they go.
    Info,
    /// Read a password on stdin and print its bcrypt hash, for `Password:` in a config file.
    HashPassword,
}

/// Audit commands.
#[derive(Subcommand)]
pub enum AuditCommand {
    /// The newest audit entries: every write call, every refusal (needs the `admin` grant).
    List {
        /// Only entries of this principal (alias, username, `API key ending in ...X`,
        /// `anonymous`, `unauthenticated`).
        #[arg(long)]
        principal: Option<String>,
        /// How many entries.
        #[arg(long, default_value_t = 50)]
        limit: usize,
        /// Output format.
        #[arg(long, value_enum, default_value_t = Format::Table)]
        output: Format,
    },
}

fn set(name: &str) -> &'static str {
    if std::env::var(name).is_ok_and(|v| !v.is_empty()) {
        "Set"
    } else {
        "Not Set"
    }
}

/// Runs an auth command.
pub async fn run(endpoint: &Endpoint, cmd: AuthCommand) -> anyhow::Result<ExitCode> {
    match cmd {
        AuthCommand::Whoami { output } => {
            let me = endpoint.client()?.whoami().await?;
            if output != Format::Table {
                output::structured(output, &me)?;
                return Ok(ExitCode::SUCCESS);
            }
            let list = |v: &Value| {
                v.as_array()
                    .map(|a| {
                        a.iter()
                            .filter_map(Value::as_str)
                            .collect::<Vec<_>>()
                            .join(", ")
                    })
                    .unwrap_or_default()
            };
            let namespaces = list(&me["Namespaces"]);
            println!("Name:        {}", me["Name"].as_str().unwrap_or_default());
            println!("Kind:        {}", me["Kind"].as_str().unwrap_or_default());
            println!("Grants:      {}", list(&me["Grants"]));
            println!(
                "Namespaces:  {}",
                if namespaces.is_empty() {
                    "all".to_string()
                } else {
                    namespaces
                }
            );
            Ok(ExitCode::SUCCESS)
        }
        AuthCommand::CanI {
            capability,
            namespace,
        } => {
            let answer = endpoint
                .client()?
                .can_i(&capability, namespace.as_deref())
                .await?;
            if answer["Allowed"].as_bool() == Some(true) {
                println!("yes");
                Ok(ExitCode::SUCCESS)
            } else {
                println!("no: {}", answer["Reason"].as_str().unwrap_or_default());
                Ok(ExitCode::FAILURE)
            }
        }
        AuthCommand::Info => {
            let client = endpoint.client()?;
            println!("Target environment: {}", client.url());
            println!("Environment Variables:");
            let key = if set("SHOAL_API_KEY") == "Set" {
                "Set"
            } else {
                set("BACALHAU_API_KEY")
            };
            let pick = |a: &str, b: &str| if set(a) == "Set" { "Set" } else { set(b) };
            println!("  API Key: {key}");
            println!(
                "  Username: {}",
                pick("SHOAL_API_USERNAME", "BACALHAU_API_USERNAME")
            );
            println!(
                "  Password: {}",
                pick("SHOAL_API_PASSWORD", "BACALHAU_API_PASSWORD")
            );
            println!("Node SSO Authentication:");
            println!("  Server does not support SSO login");
            Ok(ExitCode::SUCCESS)
        }
        AuthCommand::HashPassword => {
            let mut line = String::new();
            std::io::stdin().lock().read_line(&mut line)?;
            let password = line.trim_end_matches(['\n', '\r']);
            anyhow::ensure!(
                (10..=255).contains(&password.len()),
                "a password must be 10 to 255 characters long (got {}); type it on stdin",
                password.len()
            );
            println!("{}", bcrypt::hash(password, bcrypt::DEFAULT_COST)?);
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// Runs an audit command.
pub async fn run_audit(endpoint: &Endpoint, cmd: AuditCommand) -> anyhow::Result<ExitCode> {
    match cmd {
        AuditCommand::List {
            principal,
            limit,
            output,
        } => {
            let entries = endpoint
                .client()?
                .audit(principal.as_deref(), limit)
                .await?;
            if output != Format::Table {
                output::structured(output, &entries)?;
                return Ok(ExitCode::SUCCESS);
            }
            let text = |v: &Value, k: &str| v[k].as_str().unwrap_or_default().to_string();
            let rows = entries
                .iter()
                .map(|e| {
                    vec![
                        output::time(e["Time"].as_i64().unwrap_or_default()),
                        text(e, "Principal"),
                        text(e, "Action"),
                        text(e, "Target"),
                        text(e, "Outcome"),
                    ]
                })
                .collect();
            println!(
                "{}",
                output::table(&["TIME", "PRINCIPAL", "ACTION", "TARGET", "OUTCOME"], rows)
            );
            Ok(ExitCode::SUCCESS)
        }
    }
}
