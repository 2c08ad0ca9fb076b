//! `shoal node ...`

use std::process::ExitCode;

use clap::Subcommand;
use shoal_types::enrolment::JoinTokenRequest;
use shoal_types::resources::{format_bytes, format_cpu};
use shoal_types::time::rfc3339;

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
    /// Show each node's CPU, memory, disk, load and temperature, busiest first, refreshing in
    /// place.
    ///
    /// The figures are the host samples agents send with every heartbeat; a node that
    /// disconnects drops out. With --by, one row per value of a label (`--by region`) instead.
    /// The same data is served to Prometheus at `/metrics/fleet?by=region`.
    ///
    /// Example: shoal node top --by region --interval 5s
    Top(super::node_top::TopArgs),
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
    /// Give a node no new work (maintenance, incident); what runs there keeps running, and
    /// jobs that could only run there wait for it.
    Cordon {
        /// Node id or unique prefix.
        id: String,
    },
    /// Cordon a node and move its batch and service work to other nodes (stopped here,
    /// placed again elsewhere); daemon and ops work stays.
    Drain {
        /// Node id or unique prefix.
        id: String,
    },
    /// Let a cordoned or drained node take new work again.
    Uncordon {
        /// Node id or unique prefix.
        id: String,
    },
    /// Forget a node's key and close its link: it cannot connect again until an operator
    /// deletes it (`shoal node delete`) and it enrols with a new join token. Other nodes are
    /// not touched.
    Revoke {
        /// Node id or unique prefix.
        id: String,
    },
    /// Forget a node (and its enrolment: it may enrol again with a join token).
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
    /// Join tokens: what a new compute node presents (`--token`) to enrol.
    #[command(subcommand)]
    Token(TokenCommand),
}

/// `shoal node token ...`
#[derive(Subcommand)]
pub enum TokenCommand {
    /// Create a join token and print it with the line that starts a node with it.
    ///
    /// A node presents it once, on its first connect, and is enrolled with its own node key;
    /// it keeps working after the token expires or is deleted. Needs the `admin` grant.
    ///
    /// Example: shoal node token create --ttl 1h --uses 10 --description "rack 4"
    Create {
        /// How long the token lets new nodes in (Go duration: 30m, 24h).
        #[arg(long, default_value = "24h")]
        ttl: String,
        /// How many nodes it may enrol (default: any number until it expires).
        #[arg(long)]
        uses: Option<u32>,
        /// A note for operators.
        #[arg(long, default_value = "")]
        description: String,
        /// Output format (table prints the token and the join line).
        #[arg(long, value_enum, default_value_t = Format::Table)]
        output: Format,
    },
    /// List join tokens (never their secrets).
    List {
        /// Output format.
        #[arg(long, value_enum, default_value_t = Format::Table)]
        output: Format,
    },
    /// Delete a join token; nodes it enrolled keep working.
    Delete {
        /// The token's id (the part before the dot).
        id: String,
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
                        if n.drained {
                            format!("{} (drained)", n.membership)
                        } else if n.cordoned {
                            format!("{} (cordoned)", n.membership)
                        } else {
                            n.membership.to_string()
                        },
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
        NodeCommand::Top(args) => return super::node_top::run(&client, args).await,
        NodeCommand::Describe { id, output } => {
            let (node, enrolment) = client.node_details(&id).await?;
            let mut node = serde_json::to_value(node)?;
            // Shoal's own addition beside Bacalhau's node fields.
            node["Enrolment"] = enrolment;
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
        NodeCommand::Cordon { id } => {
            client.node_action(&id, "cordon").await?;
            println!("node {id} cordoned: it gets no new work until `shoal node uncordon {id}`");
        }
        NodeCommand::Drain { id } => {
            client.node_action(&id, "drain").await?;
            println!(
                "node {id} drained: its batch and service work moves to other nodes; `shoal node uncordon {id}` ends it"
            );
        }
        NodeCommand::Uncordon { id } => {
            client.node_action(&id, "uncordon").await?;
            println!("node {id} uncordoned: it takes new work again");
        }
        NodeCommand::Revoke { id } => {
            client.node_action(&id, "revoke").await?;
            println!("node {id} revoked: its link is closed and its key no longer lets it in");
        }
        NodeCommand::Token(cmd) => return token(&client, endpoint, cmd).await,
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

/// Runs a join-token command.
async fn token(
    client: &shoal_client::Client,
    endpoint: &Endpoint,
    cmd: TokenCommand,
) -> anyhow::Result<ExitCode> {
    match cmd {
        TokenCommand::Create {
            ttl,
            uses,
            description,
            output,
        } => {
            let created = client
                .create_join_token(&JoinTokenRequest {
                    ttl,
                    uses,
                    description,
                })
                .await?;
            if output != Format::Table {
                output::structured(output, &created)?;
                return Ok(ExitCode::SUCCESS);
            }
            let t = &created.token;
            println!(
                "join token {} (expires {}, {}):",
                t.id,
                rfc3339(t.expires_at),
                uses_text(t.uses_left)
            );
            println!("  {}", created.secret);
            println!("start a compute node with it:");
            println!(
                "  shoal serve --compute --orchestrators {} --token {}",
                endpoint.link_url(),
                created.secret
            );
        }
        TokenCommand::List { output } => {
            let tokens = client.join_tokens().await?;
            if output != Format::Table {
                output::structured(output, &tokens)?;
                return Ok(ExitCode::SUCCESS);
            }
            let now = shoal_types::time::to_unix_nanos(std::time::SystemTime::now());
            let rows = tokens
                .iter()
                .map(|t| {
                    let state = if t.expires_at <= now {
                        "expired"
                    } else if t.uses_left == Some(0) {
                        "used up"
                    } else {
                        "valid"
                    };
                    vec![
                        t.id.clone(),
                        state.to_string(),
                        rfc3339(t.expires_at),
                        uses_text(t.uses_left),
                        t.description.clone(),
                    ]
                })
                .collect();
            println!(
                "{}",
                output::table(&["ID", "STATE", "EXPIRES", "USES", "DESCRIPTION"], rows)
            );
        }
        TokenCommand::Delete { id } => {
            client.delete_join_token(&id).await?;
            println!("join token {id} deleted; nodes it enrolled keep working");
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn uses_text(uses_left: Option<u32>) -> String {
    match uses_left {
        Some(n) => format!("{n} uses left"),
        None => "any number of uses".into(),
    }
}
