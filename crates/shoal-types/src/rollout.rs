//! The `Rollout` block: how an ops, daemon or service job reaches its nodes a few at a time.
//!
//! ```yaml
//! Rollout:
//!   Batch: 25%            # or 5; at most this many nodes run at once
//!   Mode: waves           # waves (default): the next batch starts when the last one settled
//!                         # window: Salt's sliding window, a node starts as soon as one ends
//!   Canary: 1             # or 5%; rolled first, then the rollout waits for promotion
//!   AutoPromote: false    # promote by itself once every canary succeeded
//!   Pause: 30s            # between waves (waves mode only)
//!   MaxFailures: 2%       # cumulative over the whole rollout, not per batch
//!   Unreachable: skip     # or count_as_failure; offline nodes are never waited for
//!   OnFailure: stop       # or revert (daemon and service jobs)
//!   Health: {Type: command, Command: "systemctl is-active nginx", MinHealthy: 10s, Deadline: 5m}
//! ```
//!
//! Keys are PascalCase on the wire, like the rest of the job, and the block is optional.
//! Bacalhau's server ignores unknown top-level keys, so a job file with a `Rollout` still
//! submits there (all at once). Reading a user's file goes through [`crate::spec`], which
//! reports a malformed value with its path; [`Rollout::check`] adds the rules that need the
//! job type or several fields at once. The planner that acts on this block is
//! `shoal_scheduler::rollout`.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::NodeId;
use crate::job::JobType;
use crate::spec::FieldError;
use crate::time::{GoDuration, UnixNanos};

/// A number of nodes, either absolute or as a share of the nodes in the rollout.
///
/// On the wire an integer (`5`) or a percentage in whole percent (`"25%"`, 0–100).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Amount {
    /// This many nodes.
    Count(u32),
    /// This share of the targeted nodes, in percent (0–100).
    Percent(u8),
}

impl Amount {
    /// The number of nodes this amount stands for out of `n_nodes`: a percentage rounds up
    /// (`25%` of 18 is 5), a count is taken as written. The result may exceed `n_nodes` for a
    /// count; callers that need a bound clamp it.
    pub fn resolve(self, n_nodes: usize) -> usize {
        match self {
            Amount::Count(c) => c as usize,
            Amount::Percent(p) => (n_nodes * p as usize).div_ceil(100),
        }
    }

    /// [`Amount::resolve`], but never below 1: a batch or a canary wave of 0 nodes would never
    /// finish, so `1%` of 10 nodes is 1.
    pub fn resolve_at_least_one(self, n_nodes: usize) -> usize {
        self.resolve(n_nodes).max(1)
    }

    /// Whether the amount is zero nodes (`0` or `0%`).
    pub fn is_zero(&self) -> bool {
        matches!(self, Amount::Count(0) | Amount::Percent(0))
    }
}

impl Default for Amount {
    fn default() -> Self {
        Amount::Count(0)
    }
}

impl fmt::Display for Amount {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Amount::Count(c) => write!(f, "{c}"),
            Amount::Percent(p) => write!(f, "{p}%"),
        }
    }
}

impl FromStr for Amount {
    type Err = String;

    /// Reads `5`, `25%` or `25 %`. The error says what to write instead.
    fn from_str(s: &str) -> Result<Self, String> {
        let t = s.trim();
        if let Some(num) = t.strip_suffix('%') {
            return match num.trim().parse::<u32>() {
                Ok(p) if p <= 100 => Ok(Amount::Percent(p as u8)),
                Ok(_) => Err(format!(
                    "{s:?} is over 100%; a percentage is of the targeted nodes"
                )),
                Err(_) => Err(format!("{s:?} is not a whole percentage; write e.g. 25%")),
            };
        }
        t.parse::<u32>().map(Amount::Count).map_err(|_| {
            format!("expected a number of nodes or a percentage such as 25%, got {s:?}")
        })
    }
}

impl Serialize for Amount {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Amount::Count(c) => s.serialize_u32(*c),
            Amount::Percent(_) => s.collect_str(self),
        }
    }
}

impl<'de> Deserialize<'de> for Amount {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        match Value::deserialize(d)? {
            Value::String(s) => s.parse().map_err(serde::de::Error::custom),
            Value::Number(n) => n
                .as_u64()
                .and_then(|c| u32::try_from(c).ok())
                .map(Amount::Count)
                .ok_or_else(|| {
                    serde::de::Error::custom(format!("expected a whole number ≥ 0, got {n}"))
                }),
            other => Err(serde::de::Error::custom(format!(
                "expected a number of nodes or a percentage such as 25%, got {other}"
            ))),
        }
    }
}

/// How batches follow each other.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RolloutMode {
    /// Fixed waves of `Batch` nodes in node order; a wave starts when the previous one has
    /// settled (and `Pause` has passed).
    #[default]
    Waves,
    /// Salt's sliding window: `Batch` nodes run at any time, and a node starts as soon as
    /// another settles.
    Window,
}

/// What a node that cannot be reached means for the rollout. Either way the rollout never
/// waits for it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum UnreachablePolicy {
    /// Report it as unreachable and go on; it does not count against `MaxFailures`.
    #[default]
    Skip,
    /// Count it as a failure against `MaxFailures`.
    CountAsFailure,
}

/// What happens when failures exceed `MaxFailures`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OnFailure {
    /// Start no further node; nodes already updated keep the new version.
    #[default]
    Stop,
    /// Stop, and put the previous job version back on the nodes that got the new one.
    Revert,
}

/// How a node's update is judged healthy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum HealthType {
    /// The task itself: an ops command exits 0; a daemon or service task is running and has not
    /// exited for `MinHealthy`.
    #[default]
    ExitCode,
    /// `Command` is run on the node and must exit 0.
    Command,
    /// `Command` is a URL that must answer a GET with a 2xx status.
    Http,
}

/// The health check that decides whether a node counts as succeeded.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Health {
    /// What is checked.
    #[serde(rename = "Type", default)]
    pub kind: HealthType,
    /// The command line (`Type: command`) or the URL (`Type: http`); empty for `exit_code`.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub command: String,
    /// How long the check must keep passing before the node counts as healthy (Nomad's
    /// `min_healthy_time`; default 10s).
    #[serde(default = "Health::default_min_healthy")]
    pub min_healthy: GoDuration,
    /// How long a node has to become healthy before it counts as failed (Nomad's
    /// `healthy_deadline`; default 5m).
    #[serde(default = "Health::default_deadline")]
    pub deadline: GoDuration,
}

impl Health {
    fn default_min_healthy() -> GoDuration {
        GoDuration::from_secs(10)
    }

    fn default_deadline() -> GoDuration {
        GoDuration::from_secs(5 * 60)
    }
}

impl Default for Health {
    fn default() -> Self {
        Health {
            kind: HealthType::ExitCode,
            command: String::new(),
            min_healthy: Health::default_min_healthy(),
            deadline: Health::default_deadline(),
        }
    }
}

/// A job's rollout settings (see the module docs for the wire form).
///
/// Every field has a default, so `Rollout: {}` means one node at a time, in waves, stopping
/// at the first failure.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Rollout {
    /// At most this many nodes run at once, and the size of a wave (default 1, Nomad's
    /// `max_parallel`). A percentage rounds up and is never below one node.
    #[serde(default = "Rollout::default_batch")]
    pub batch: Amount,
    /// Waves or a sliding window.
    #[serde(default)]
    pub mode: RolloutMode,
    /// Nodes rolled first; then the rollout waits for `shoal job promote` unless
    /// `AutoPromote`. `0` (the default) means no canary.
    #[serde(default, skip_serializing_if = "Amount::is_zero")]
    pub canary: Amount,
    /// Promote by itself once every canary succeeded.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub auto_promote: bool,
    /// Wait between waves (waves mode only).
    #[serde(default, skip_serializing_if = "GoDuration::is_zero")]
    pub pause: GoDuration,
    /// Failures allowed over the whole rollout before it stops; the rollout stops when they
    /// *exceed* this (default 0: the first failure stops it). A percentage rounds up.
    #[serde(default)]
    pub max_failures: Amount,
    /// Whether an unreachable node counts as a failure.
    #[serde(default)]
    pub unreachable: UnreachablePolicy,
    /// What to do when the rollout stops on failures.
    #[serde(default)]
    pub on_failure: OnFailure,
    /// How a node's update is judged.
    #[serde(default)]
    pub health: Health,
}

impl Rollout {
    fn default_batch() -> Amount {
        Amount::Count(1)
    }

    /// Checks the rules a reader cannot: the job type, the field ranges, and fields that only
    /// make sense together. Paths start with `Rollout.`; every message says what to write.
    pub fn check(&self, job_type: JobType) -> Vec<FieldError> {
        let mut errs = Vec::new();
        let mut add = |path: &str, message: String| {
            errs.push(FieldError::new(&format!("Rollout{path}"), message));
        };
        if !matches!(job_type, JobType::Ops | JobType::Daemon | JobType::Service) {
            add(
                "",
                format!(
                    "{job_type} jobs cannot have a Rollout: it applies to ops, daemon and service jobs, which update nodes; remove Rollout, or use Count and Constraints to place a batch job"
                ),
            );
        }
        match self.batch {
            Amount::Percent(0) => add(
                ".Batch",
                "\"0%\" must be 1–100%; write e.g. Batch: 25%, or a number of nodes".into(),
            ),
            Amount::Count(0) => add(
                ".Batch",
                "0 must be at least 1 node; write e.g. Batch: 5, or a percentage".into(),
            ),
            _ => {}
        }
        if self.canary == Amount::Percent(0) {
            add(
                ".Canary",
                "\"0%\" must be 1–100%; remove Canary (or write 0) for no canary".into(),
            );
        }
        if self.auto_promote && self.canary.is_zero() {
            add(
                ".AutoPromote",
                "only applies with a Canary; set Canary (e.g. Canary: 1) or remove AutoPromote"
                    .into(),
            );
        }
        if self.mode == RolloutMode::Window && !self.pause.is_zero() {
            add(
                ".Pause",
                format!(
                    "{} has no effect with Mode: window, where a node starts as soon as another ends; use Mode: waves or remove Pause",
                    self.pause
                ),
            );
        }
        if self.on_failure == OnFailure::Revert && job_type == JobType::Ops {
            add(
                ".OnFailure",
                "ops jobs have no previous version to revert to; use OnFailure: stop".into(),
            );
        }
        self.check_health(&mut add);
        errs
    }

    fn check_health(&self, add: &mut impl FnMut(&str, String)) {
        let h = &self.health;
        let command = h.command.trim();
        match h.kind {
            HealthType::ExitCode if !command.is_empty() => add(
                ".Health.Command",
                "is only used with Type: command or http; set the Type or remove Command".into(),
            ),
            HealthType::Command if command.is_empty() => add(
                ".Health.Command",
                "missing; give the command that must exit 0, e.g. Command: \"systemctl is-active nginx\"".into(),
            ),
            HealthType::Http
                if !(command.starts_with("http://") || command.starts_with("https://")) =>
            {
                add(
                    ".Health.Command",
                    format!(
                        "{command:?} is not a URL; with Type: http give the URL to check, e.g. Command: http://localhost:8080/health"
                    ),
                )
            }
            _ => {}
        }
        if h.deadline.is_zero() {
            add(
                ".Health.Deadline",
                "must be more than 0s; give the time a node has to become healthy, e.g. 5m".into(),
            );
        } else if h.min_healthy >= h.deadline {
            add(
                ".Health.Deadline",
                format!(
                    "{} is not longer than MinHealthy ({}), so no node could pass; raise Deadline or lower MinHealthy",
                    h.deadline, h.min_healthy
                ),
            );
        }
    }
}

impl Default for Rollout {
    fn default() -> Self {
        Rollout {
            batch: Rollout::default_batch(),
            mode: RolloutMode::default(),
            canary: Amount::Count(0),
            auto_promote: false,
            pause: GoDuration::default(),
            max_failures: Amount::Count(0),
            unreachable: UnreachablePolicy::default(),
            on_failure: OnFailure::default(),
            health: Health::default(),
        }
    }
}

/// What is known about one targeted node of a rollout.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NodeProgress {
    /// Not started yet.
    NotStarted,
    /// Started and not settled: running, or waiting for its health check.
    Running,
    /// Done and healthy: an ops command exited 0, or a daemon or service task passed its
    /// health check.
    Succeeded,
    /// Done and not healthy.
    Failed,
    /// Did not answer (before or after it was started); never waited for.
    Unreachable,
    /// The node refused the work (its policy or admission said no).
    Rejected,
}

impl NodeProgress {
    /// Every progress, in the order accounts list them: settled outcomes first, then what is
    /// still to come.
    pub const ALL: [NodeProgress; 6] = [
        NodeProgress::Succeeded,
        NodeProgress::Failed,
        NodeProgress::Unreachable,
        NodeProgress::Rejected,
        NodeProgress::Running,
        NodeProgress::NotStarted,
    ];

    /// Whether nothing more is expected from the node in this rollout.
    pub fn is_settled(self) -> bool {
        !matches!(self, NodeProgress::NotStarted | NodeProgress::Running)
    }

    /// The word `rollout-status` prints: `not-started`, `running`, `succeeded`, ...
    pub fn as_str(self) -> &'static str {
        match self {
            NodeProgress::NotStarted => "not-started",
            NodeProgress::Running => "running",
            NodeProgress::Succeeded => "succeeded",
            NodeProgress::Failed => "failed",
            NodeProgress::Unreachable => "unreachable",
            NodeProgress::Rejected => "rejected",
        }
    }
}

/// One targeted node and what is known about it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct RolloutNode {
    /// The node.
    #[serde(rename = "NodeID")]
    pub node_id: NodeId,
    /// Where it stands.
    pub progress: NodeProgress,
    /// When it reached `progress` (Unix nanos); for settled nodes, when they settled. `Pause`
    /// counts from the last settle of a wave.
    pub since: UnixNanos,
    /// Why it settled the way it did, in words (`exit code 1`, `node n-3 was disconnected when
    /// its wave started`); empty while not settled.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub message: String,
}

/// Where the rollout of one job version stands: what the orchestrator keeps in its store, so
/// that a restart continues the current wave. The node list is the planner's input, in
/// rollout order (canaries first); a settled node stays settled.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct RolloutState {
    /// The job version this rollout brings to the nodes.
    pub job_version: u64,
    /// The settings, as submitted with that version.
    pub rollout: Rollout,
    /// Every targeted node, in rollout order.
    pub nodes: Vec<RolloutNode>,
    /// Whether `shoal job promote` was given.
    #[serde(default)]
    pub promoted: bool,
    /// What the planner last decided, in words (`wave 2 of 4 running`, `awaiting promotion`).
    #[serde(default)]
    pub phase: String,
    /// Set once the rollout is over: how it ended (`done: 8 succeeded, 2 unreachable (…)`,
    /// `rollout stopped: 3 failures > 2`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub outcome: Option<String>,
}

/// How [`RolloutState::phase`] begins while the rollout waits for `shoal job promote`.
pub const PHASE_AWAITING_PROMOTION: &str = "awaiting promotion";
/// [`RolloutState::phase`] of a rollout that reached every node within its failure limit.
pub const PHASE_DONE: &str = "done";
/// How [`RolloutState::phase`] begins once a failed rollout put the earlier version back.
pub const PHASE_REVERTED: &str = "reverted";

impl RolloutState {
    /// Whether the rollout waits for `shoal job promote` now.
    pub fn awaiting_promotion(&self) -> bool {
        self.outcome.is_none() && !self.promoted && self.phase.starts_with(PHASE_AWAITING_PROMOTION)
    }

    /// Whether a failed rollout put the earlier version back.
    pub fn reverted(&self) -> bool {
        self.phase.starts_with(PHASE_REVERTED)
    }

    /// Whether the rollout is over without having reached every node within its failure
    /// limit (stopped, reverted, or ended with its job).
    pub fn ended_early(&self) -> bool {
        self.outcome.is_some() && self.phase != PHASE_DONE
    }

    /// The progress of one node, if it is targeted.
    pub fn node(&self, id: &str) -> Option<&RolloutNode> {
        self.nodes.iter().find(|n| n.node_id.as_str() == id)
    }

    /// How many nodes stand at each progress, in [`NodeProgress::ALL`] order (zeros kept).
    pub fn counts(&self) -> Vec<(NodeProgress, usize)> {
        NodeProgress::ALL
            .iter()
            .map(|p| (*p, self.count(*p)))
            .collect()
    }

    /// How many targeted nodes stand at `progress`.
    pub fn count(&self, progress: NodeProgress) -> usize {
        self.nodes.iter().filter(|n| n.progress == progress).count()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentages_round_up_and_batches_never_drop_below_one() {
        assert_eq!(Amount::Percent(25).resolve(20), 5);
        assert_eq!(Amount::Percent(25).resolve(18), 5);
        assert_eq!(Amount::Percent(2).resolve(20), 1);
        assert_eq!(Amount::Percent(0).resolve(20), 0);
        assert_eq!(Amount::Percent(1).resolve_at_least_one(10), 1);
        assert_eq!(Amount::Percent(50).resolve_at_least_one(0), 1);
        assert_eq!(Amount::Count(7).resolve(3), 7);
        assert_eq!(Amount::Percent(100).resolve(500), 500);
    }

    #[test]
    fn amounts_read_counts_and_percentages() {
        assert_eq!("5".parse(), Ok(Amount::Count(5)));
        assert_eq!("25%".parse(), Ok(Amount::Percent(25)));
        assert_eq!(" 25 % ".parse(), Ok(Amount::Percent(25)));
        assert!("150%".parse::<Amount>().unwrap_err().contains("over 100%"));
        assert!(
            "2.5%"
                .parse::<Amount>()
                .unwrap_err()
                .contains("whole percentage")
        );
        assert!(
            "lots"
                .parse::<Amount>()
                .unwrap_err()
                .contains("such as 25%")
        );
    }

    #[test]
    fn amounts_write_an_integer_or_a_percentage() {
        assert_eq!(serde_json::to_value(Amount::Count(3)).unwrap(), 3);
        assert_eq!(serde_json::to_value(Amount::Percent(10)).unwrap(), "10%");
        assert_eq!(
            serde_json::from_value::<Amount>("10%".into()).unwrap(),
            Amount::Percent(10)
        );
        assert_eq!(
            serde_json::from_value::<Amount>(3.into()).unwrap(),
            Amount::Count(3)
        );
    }

    #[test]
    fn an_empty_block_rolls_one_node_at_a_time_and_stops_at_the_first_failure() {
        let r: Rollout = serde_json::from_value(serde_json::json!({})).unwrap();
        assert_eq!(r, Rollout::default());
        assert_eq!(r.batch, Amount::Count(1));
        assert_eq!(r.max_failures, Amount::Count(0));
        assert_eq!(r.mode, RolloutMode::Waves);
        assert_eq!(r.health.deadline, GoDuration::from_secs(300));
        assert!(r.check(JobType::Daemon).is_empty());
    }

    fn errors(r: &Rollout, t: JobType) -> Vec<String> {
        r.check(t).iter().map(ToString::to_string).collect()
    }

    #[test]
    fn batch_jobs_cannot_have_a_rollout() {
        let errs = errors(&Rollout::default(), JobType::Batch);
        assert_eq!(errs.len(), 1, "{errs:?}");
        assert!(
            errs[0].starts_with(
                "Rollout: batch jobs cannot have a Rollout: it applies to ops, daemon and service jobs"
            ),
            "{errs:?}"
        );
        for t in [JobType::Ops, JobType::Daemon, JobType::Service] {
            assert!(errors(&Rollout::default(), t).is_empty(), "{t}");
        }
    }

    #[test]
    fn a_batch_of_zero_names_the_field_and_the_fix() {
        let r = Rollout {
            batch: Amount::Percent(0),
            ..Rollout::default()
        };
        assert_eq!(
            errors(&r, JobType::Ops),
            ["Rollout.Batch: \"0%\" must be 1–100%; write e.g. Batch: 25%, or a number of nodes"]
        );
        let r = Rollout {
            batch: Amount::Count(0),
            ..Rollout::default()
        };
        assert!(errors(&r, JobType::Ops)[0].starts_with("Rollout.Batch: 0 must be at least 1"));
    }

    #[test]
    fn settings_that_do_nothing_together_are_refused() {
        let r = Rollout {
            canary: Amount::Percent(0),
            auto_promote: true,
            mode: RolloutMode::Window,
            pause: GoDuration::from_secs(30),
            on_failure: OnFailure::Revert,
            ..Rollout::default()
        };
        let errs = errors(&r, JobType::Ops);
        let paths: Vec<&str> = errs.iter().map(|e| e.split(':').next().unwrap()).collect();
        assert_eq!(
            paths,
            [
                "Rollout.Canary",
                "Rollout.AutoPromote",
                "Rollout.Pause",
                "Rollout.OnFailure"
            ],
            "{errs:?}"
        );
        assert!(
            errs[2].contains("30s has no effect with Mode: window"),
            "{errs:?}"
        );
    }

    #[test]
    fn health_checks_need_what_their_type_runs() {
        let with = |kind, command: &str| Rollout {
            health: Health {
                kind,
                command: command.into(),
                ..Health::default()
            },
            ..Rollout::default()
        };
        assert!(
            errors(&with(HealthType::Command, ""), JobType::Daemon)[0]
                .starts_with("Rollout.Health.Command: missing")
        );
        assert!(
            errors(&with(HealthType::Http, "localhost"), JobType::Daemon)[0]
                .contains("\"localhost\" is not a URL")
        );
        assert!(
            errors(&with(HealthType::ExitCode, "true"), JobType::Daemon)[0]
                .contains("only used with Type: command or http")
        );
        assert!(errors(&with(HealthType::Http, "http://x/health"), JobType::Daemon).is_empty());
        let short = Rollout {
            health: Health {
                min_healthy: GoDuration::from_secs(60),
                deadline: GoDuration::from_secs(30),
                ..Health::default()
            },
            ..Rollout::default()
        };
        assert_eq!(
            errors(&short, JobType::Service),
            [
                "Rollout.Health.Deadline: 30s is not longer than MinHealthy (1m0s), so no node could pass; raise Deadline or lower MinHealthy"
            ]
        );
    }
}
