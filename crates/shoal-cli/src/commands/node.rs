//! `shoal node ...`

use std::process::ExitCode;

use clap::Subcommand;
use shoal_types::resources::{format_bytes, format_cpu};

use crate::endpoint::Endpoint;
use crate::output::{self, Format};

/// Node commands.
#[derive(Subcommand)]
pub enum NodeCommand {
    /// List nodes with status, membership, labels, running executions and free/total capacity.
    ///
    /// Free capacity is the orchestrator's live figure, the one placement uses: the node's
    /// total minus what its running executions reserve.
    List {
        /// Output format.
        #[arg(long, value_enum, default_value_t = Format::Table)]
        output: Format,
    },
    /// Show everything known about a node.
    Describe {
        /// Node id or unique prefix.
        id: String,
        /// Output format (yaml by default).
        #[arg(long, value_enum, default_value_t = Format::Yaml)]
        output: Format,
    },
    /// Let a pending node receive work.
    Approve {
        /// Node id or unique prefix.
        id: String,
    },
    /// Refuse a node: it is disconnected and gets no work.
    Reject {
        /// Node id or unique prefix.
        id: String,
    },
    /// Forget a node.
    Delete {
        /// Node id or unique prefix.
        id: String,
    },
    /// Set (`key=value`) or remove (`key-`) labels of a node from the control plane.
    ///
    /// They are kept across reconnects, override the node's own labels, and daemon jobs follow
    /// at once: they start where the node now matches and stop where it no longer does.
    Label {
        /// Node id or unique prefix.
        id: String,
        /// `key=value` to set, `key-` to remove.
        #[arg(required = true)]
        labels: Vec<String>,
    },
}

/// Runs a node command.
pub async fn run(endpoint: &Endpoint, cmd: NodeCommand) -> anyhow::Result<ExitCode> {
    let client = endpoint.client()?;
    match cmd {
        NodeCommand::List { output } => {
            let nodes = client.nodes().await?;
            if output != Format::Table {
                output::structured(output, &nodes)?;
                return Ok(ExitCode::SUCCESS);
            }
            let rows = nodes
                .iter()
                .map(|n| {
                    let c = &n.info.compute_node_info;
                    let labels = n
                        .info
                        .labels
                        .iter()
                        .map(|(k, v)| format!("{k}={v}"))
                        .collect::<Vec<_>>()
                        .join(" ");
                    vec![
                        n.info.node_id.clone(),
                        n.connection.to_string(),
                        n.membership.to_string(),
                        c.execution_engines.join(","),
                        c.running_executions.to_string(),
                        format!(
                            "{} / {}",
                            format_cpu(c.available_capacity.cpu),
                            format_cpu(c.max_capacity.cpu)
                        ),
                        format!(
                            "{} / {}",
                            format_bytes(c.available_capacity.memory),
                            format_bytes(c.max_capacity.memory)
                        ),
                        n.connection_state
                            .last_heartbeat
                            .get(11..19)
                            .unwrap_or("")
                            .to_string(),
                        labels,
                    ]
                })
                .collect();
            println!(
                "{}",
                output::table(
                    &[
                        "ID",
                        "STATUS",
                        "APPROVAL",
                        "ENGINES",
                        "RUNNING",
                        "CPU FREE/TOTAL",
                        "MEMORY FREE/TOTAL",
                        "HEARTBEAT",
                        "LABELS"
                    ],
                    rows
                )
            );
        }
        NodeCommand::Describe { id, output } => {
            let node = client.node(&id).await?;
            output::structured(
                if output == Format::Table {
                    Format::Yaml
                } else {
                    output
                },
                &node,
            )?;
        }
        NodeCommand::Approve { id } => {
            client.node_action(&id, "approve").await?;
            println!("node {id} approved");
        }
        NodeCommand::Reject { id } => {
            client.node_action(&id, "reject").await?;
            println!("node {id} rejected");
        }
        NodeCommand::Delete { id } => {
            client.node_action(&id, "delete").await?;
            println!("node {id} deleted");
        }
        NodeCommand::Label { id, labels } => {
            let (mut set, mut remove) = (std::collections::BTreeMap::new(), Vec::new());
            for l in &labels {
                if l.contains('=') {
                    let (k, v) = super::key_value::parse_pair("label", l)?;
                    set.insert(k, v.trim().to_string());
                } else if let Some(k) = l.strip_suffix('-') {
                    remove.push(k.trim().to_string());
                } else {
                    anyhow::bail!("label {l:?}: use key=value to set it or key- to remove it");
                }
            }
            client.node_labels(&id, &set, &remove).await?;
            println!("node {id} labels updated");
        }
    }
    Ok(ExitCode::SUCCESS)
}
