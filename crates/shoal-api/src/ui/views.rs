//! What each page shows, as plain rows of text built from the domain types: pure functions,
//! so the pages' content is tested without a server or a browser.

use shoal_orchestrator::{JobDetails, Placement};
use shoal_types::resources::{format_bytes, format_cpu};
use shoal_types::rollout::RolloutState;
use shoal_types::{Execution, Job, JobHistory, NodeState};

/// `j-01a2b3c4-...` shortened as the CLI shows ids; names that are not UUID ids stay whole.
pub fn short(id: &str) -> String {
    match id.split_once('-') {
        Some((prefix, rest)) if rest.len() >= 32 && rest.is_ascii() => {
            format!("{prefix}-{}", &rest[..8])
        }
        _ => id.to_string(),
    }
}

/// `2026-12-03 10:04:05` (UTC) from Unix nanoseconds.
pub fn time(nanos: i64) -> String {
    let s = shoal_types::time::rfc3339(nanos);
    s.get(..19).map(|t| t.replace('T', " ")).unwrap_or(s)
}

/// A row of the jobs table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobRow {
    /// Full id (for the link).
    pub id: String,
    /// Short id (shown).
    pub short_id: String,
    /// Name.
    pub name: String,
    /// `batch`, `ops`, ...
    pub job_type: String,
    /// `Completed`, `Failed`, ...
    pub state: String,
    /// Lowercase state, for the CSS class.
    pub state_class: String,
    /// Namespace.
    pub namespace: String,
    /// Creation time.
    pub created: String,
    /// The state's message.
    pub message: String,
}

impl JobRow {
    /// The row of `job`.
    pub fn of(job: &Job) -> Self {
        let state = job.state.state_type.to_string();
        JobRow {
            id: job.id.clone(),
            short_id: short(&job.id),
            name: if job.name.is_empty() || job.name == job.id {
                String::new()
            } else {
                job.name.clone()
            },
            job_type: job.job_type.to_string(),
            state_class: state.to_ascii_lowercase(),
            state,
            namespace: job.namespace.clone(),
            created: time(job.create_time),
            message: job.state.message.clone(),
        }
    }
}

/// A row of a job's executions table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExecutionRow {
    /// Short id.
    pub short_id: String,
    /// The node.
    pub node: String,
    /// Compute state.
    pub state: String,
    /// Lowercase state, for the CSS class.
    pub state_class: String,
    /// Exit code, when it ran to the end.
    pub exit_code: String,
    /// The state's message.
    pub message: String,
}

impl ExecutionRow {
    /// The row of `e`.
    pub fn of(e: &Execution) -> Self {
        let state = e.compute_state.state_type.to_string();
        ExecutionRow {
            short_id: short(e.id.as_ref()),
            node: e.node_id.to_string(),
            state_class: state.to_ascii_lowercase(),
            state,
            exit_code: e
                .run_output
                .as_ref()
                .map(|o| o.exit_code.to_string())
                .unwrap_or_default(),
            message: e.compute_state.message.clone(),
        }
    }
}

/// One history line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HistoryRow {
    /// When.
    pub time: String,
    /// The execution, when it is about one.
    pub execution: String,
    /// What happened.
    pub message: String,
}

impl HistoryRow {
    /// The row of `h`.
    pub fn of(h: &JobHistory) -> Self {
        HistoryRow {
            time: h
                .event
                .timestamp
                .get(..19)
                .unwrap_or_default()
                .replace('T', " "),
            execution: short(&h.execution_id),
            message: h.event.message.clone(),
        }
    }
}

/// Everything the job page shows.
#[derive(Debug, Clone)]
pub struct JobView {
    /// The job's row.
    pub job: JobRow,
    /// Its version.
    pub version: u64,
    /// The engine of its task.
    pub engine: String,
    /// Counts per execution state, for the outcome bar: `(state, count)`.
    pub outcome: Vec<(String, usize)>,
    /// Executions.
    pub executions: Vec<ExecutionRow>,
    /// Nodes not chosen and why.
    pub not_placed: Vec<Placement>,
    /// History, oldest first.
    pub history: Vec<HistoryRow>,
    /// The spec as YAML.
    pub spec: String,
    /// Where its rollout stands, for a job with a `Rollout`.
    pub rollout: Option<RolloutView>,
}

/// The rollout panel of the job page.
#[derive(Debug, Clone)]
pub struct RolloutView {
    /// The job version being rolled out.
    pub version: u64,
    /// The planner's last decision in words (`wave 2 of 4: 5 running`).
    pub phase: String,
    /// How it ended, once it has.
    pub outcome: String,
    /// Whether it waits for `promote` (the page offers the button to writers).
    pub awaiting_promotion: bool,
    /// Nodes per progress, in the planner's order of buckets: `(progress, count)`, zeros left
    /// out.
    pub counts: Vec<(String, usize)>,
    /// Every targeted node in rollout order: `(node, progress, detail)`.
    pub nodes: Vec<(String, String, String)>,
}

impl RolloutView {
    /// The panel for `state`.
    pub fn of(state: &RolloutState) -> Self {
        let counts = state
            .counts()
            .into_iter()
            .filter(|(_, n)| *n > 0)
            .map(|(p, n)| (p.as_str().to_string(), n))
            .collect();
        RolloutView {
            version: state.job_version,
            phase: state.phase.clone(),
            outcome: state.outcome.clone().unwrap_or_default(),
            awaiting_promotion: state.awaiting_promotion(),
            counts,
            nodes: state
                .nodes
                .iter()
                .map(|n| {
                    (
                        n.node_id.to_string(),
                        n.progress.as_str().to_string(),
                        n.message.clone(),
                    )
                })
                .collect(),
        }
    }
}

impl JobView {
    /// The view of `d`.
    pub fn of(d: &JobDetails) -> Self {
        let mut outcome: Vec<(String, usize)> = Vec::new();
        for e in &d.executions {
            let s = e.compute_state.state_type.to_string();
            match outcome.iter_mut().find(|(k, _)| *k == s) {
                Some((_, n)) => *n += 1,
                None => outcome.push((s, 1)),
            }
        }
        JobView {
            job: JobRow::of(&d.job),
            version: d.job.version,
            engine: d
                .job
                .tasks
                .first()
                .map(|t| t.engine.kind.clone())
                .unwrap_or_default(),
            outcome,
            executions: d.executions.iter().map(ExecutionRow::of).collect(),
            not_placed: d.placement.clone(),
            history: d.history.iter().map(HistoryRow::of).collect(),
            spec: serde_yaml::to_string(&d.job).unwrap_or_default(),
            rollout: d.rollout.as_ref().map(RolloutView::of),
        }
    }
}

/// A row of the nodes table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeRow {
    /// Node id.
    pub id: String,
    /// `CONNECTED` or `DISCONNECTED`.
    pub connection: String,
    /// Lowercase connection, for the CSS class.
    pub connection_class: String,
    /// `APPROVED`, `PENDING`, ...
    pub membership: String,
    /// `k=v` labels.
    pub labels: Vec<String>,
    /// Free / total CPU.
    pub cpu: String,
    /// Free / total memory.
    pub memory: String,
    /// Free / total disk.
    pub disk: String,
    /// Free share of the node's CPU, 0 to 100, for the capacity bar.
    pub cpu_free_pct: u32,
    /// Running executions.
    pub running: u32,
    /// Engines offered.
    pub engines: String,
    /// Last heartbeat.
    pub heartbeat: String,
}

impl NodeRow {
    /// The row of `n`.
    pub fn of(n: &NodeState) -> Self {
        let c = &n.info.compute_node_info;
        let (free, max) = (&c.available_capacity, &c.max_capacity);
        let connection = n.connection.to_string();
        NodeRow {
            id: n.info.node_id.clone(),
            connection_class: connection.to_ascii_lowercase(),
            connection,
            membership: n.membership.to_string(),
            labels: n
                .info
                .labels
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect(),
            cpu: format!("{} / {}", format_cpu(free.cpu), format_cpu(max.cpu)),
            memory: format!(
                "{} / {}",
                format_bytes(free.memory),
                format_bytes(max.memory)
            ),
            disk: format!("{} / {}", format_bytes(free.disk), format_bytes(max.disk)),
            cpu_free_pct: if max.cpu > 0.0 {
                ((free.cpu / max.cpu) * 100.0).clamp(0.0, 100.0) as u32
            } else {
                0
            },
            running: c.running_executions,
            engines: c.execution_engines.join(", "),
            heartbeat: n
                .connection_state
                .last_heartbeat
                .get(..19)
                .unwrap_or_default()
                .replace('T', " "),
        }
    }
}

/// Everything the node page shows.
#[derive(Debug, Clone)]
pub struct NodeView {
    /// The row the nodes list shows.
    pub row: NodeRow,
    /// `cordoned`, `drained`, or empty.
    pub cordon: String,
    /// Labels the operator set from the control plane (`shoal node label`).
    pub operator_labels: Vec<String>,
    /// Engines the node would offer but cannot now, with why.
    pub unavailable: Vec<(String, String)>,
    /// What the node's engine policies allow (`exec: allowlist 2 rules`).
    pub policies: Vec<(String, String)>,
    /// Publishers offered.
    pub publishers: String,
    /// Input sources offered.
    pub sources: String,
    /// Host paths local inputs may come from.
    pub local_paths: String,
    /// Whether the node waits for approval (the page offers approve and reject).
    pub pending: bool,
}

impl NodeView {
    /// The view of `n`.
    pub fn of(n: &NodeState) -> Self {
        let c = &n.info.compute_node_info;
        let cordon = if n.drained {
            "drained"
        } else if n.cordoned {
            "cordoned"
        } else {
            ""
        };
        NodeView {
            row: NodeRow::of(n),
            cordon: cordon.to_string(),
            operator_labels: n
                .operator_labels
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect(),
            unavailable: c
                .unavailable_engines
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
            policies: c
                .engine_policies
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
            publishers: c.publishers.join(", "),
            sources: c.storage_sources.join(", "),
            local_paths: c.allow_listed_local_paths.join(", "),
            pending: n.membership == shoal_types::Membership::Pending,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_shortened_as_the_cli_shortens_them() {
        assert_eq!(
            short("j-01a23b41-811f-7512-9260-5815c4464ee5"),
            "j-01a23b41"
        );
        assert_eq!(short("n-devstack-0"), "n-devstack-0");
    }

    #[test]
    fn a_node_row_shows_free_over_total_and_its_labels() {
        let mut n = NodeState::default();
        n.info.node_id = "n-1".into();
        n.info.labels.insert("region".into(), "eu".into());
        n.info.compute_node_info.max_capacity.cpu = 4.0;
        n.info.compute_node_info.available_capacity.cpu = 1.0;
        let row = NodeRow::of(&n);
        assert_eq!(row.labels, vec!["region=eu"]);
        assert!(row.cpu.contains(" / "), "{}", row.cpu);
        assert_eq!(row.cpu_free_pct, 25);
    }
}
