//! Rules a job must meet that can be checked without a cluster.
//!
//! Two levels, as in Bacalhau (`Task.ValidateSubmission` and `Task.Validate`):
//! [`validate_for_submit`] is what the orchestrator checks on submit, and [`validate`] adds the
//! checks that only make sense once the server has applied its defaults or that Shoal can
//! answer alone: the engine name (a submitted job with an unknown engine must instead reach
//! placement and fail there with `does not support <engine>` from every node) and a publisher
//! for result paths (the server may add a default publisher).

use std::collections::BTreeSet;

use super::{FieldError, KNOWN_ENGINES, KNOWN_INPUT_SOURCES, KNOWN_PUBLISHERS};
use crate::job::{Job, JobType, NetworkType, Task};
use crate::resources::Resources;
use crate::selector;

/// Checks a job for everything that can be known without a cluster: [`validate_for_submit`]
/// plus known engine names and a publisher wherever result paths are set.
pub fn validate(job: &Job) -> Vec<FieldError> {
    check(job, true)
}

/// Checks a submitted job as Bacalhau's orchestrator does, leaving the engine name to
/// placement (so that an unknown engine yields per-node `does not support X` reasons) and the
/// publisher to the server's defaults.
pub fn validate_for_submit(job: &Job) -> Vec<FieldError> {
    check(job, false)
}

struct Errors(Vec<FieldError>);

impl Errors {
    fn add(&mut self, path: impl AsRef<str>, message: impl Into<String>) {
        self.0.push(FieldError::new(path.as_ref(), message));
    }
}

fn check(job: &Job, strict: bool) -> Vec<FieldError> {
    let mut errs = Errors(Vec::new());
    if let Some(grace) = job.meta.get(crate::time::NODE_LOST_GRACE_META)
        && grace != "never"
        && let Err(why) = crate::time::parse_duration(grace)
    {
        errs.add(
            format!("Meta.{}", crate::time::NODE_LOST_GRACE_META),
            format!("{why}, or `never` to wait for the node however long it is away"),
        );
    }
    if job.tasks.is_empty() {
        errs.add(
            "Tasks",
            "a job needs exactly one task; add a Tasks list with one entry",
        );
    } else if job.tasks.len() > 1 {
        errs.add(
            "Tasks",
            format!("a job has exactly one task, found {}", job.tasks.len()),
        );
    }
    if matches!(job.job_type, JobType::Ops | JobType::Daemon) && job.count > 1 {
        errs.add(
            "Count",
            format!(
                "{} jobs run once on every matching node, so Count must be 0 or 1, got {}; use Constraints to choose nodes",
                job.job_type, job.count
            ),
        );
    }
    for (i, r) in job.constraints.iter().enumerate() {
        if r.key.trim().is_empty() {
            errs.add(format!("Constraints[{i}].Key"), "missing node label name");
        }
        if let Err(m) = selector::check(r) {
            errs.add(format!("Constraints[{i}].Operator"), m);
        }
    }
    for (i, task) in job.tasks.iter().enumerate() {
        check_task(task, &format!("Tasks[{i}]"), strict, &mut errs);
    }
    if let Some(rollout) = &job.rollout {
        errs.0.extend(rollout.check(job.job_type));
    }
    if let Some(schedule) = &job.schedule {
        errs.0.extend(schedule.check(job.job_type));
    }
    errs.0
}

fn check_task(task: &Task, p: &str, strict: bool, errs: &mut Errors) {
    if task.name.trim().is_empty() {
        errs.add(format!("{p}.Name"), "missing task name");
    }
    let engine = task.engine.kind.trim();
    if engine.is_empty() {
        errs.add(
            format!("{p}.Engine.Type"),
            format!("missing engine type (known: {})", KNOWN_ENGINES.join(", ")),
        );
    } else if strict && !KNOWN_ENGINES.iter().any(|k| k.eq_ignore_ascii_case(engine)) {
        errs.add(
            format!("{p}.Engine.Type"),
            format!(
                "unknown engine {engine:?} (known: {})",
                KNOWN_ENGINES.join(", ")
            ),
        );
    }
    let publisher = task.publisher.as_ref().map(|s| s.kind.trim()).unwrap_or("");
    if !publisher.is_empty()
        && !KNOWN_PUBLISHERS
            .iter()
            .any(|k| k.eq_ignore_ascii_case(publisher))
    {
        errs.add(
            format!("{p}.Publisher.Type"),
            format!(
                "unknown publisher {publisher:?} (known: {})",
                KNOWN_PUBLISHERS.join(", ")
            ),
        );
    }
    if strict && publisher.is_empty() && !task.result_paths.is_empty() {
        errs.add(
            format!("{p}.Publisher"),
            "result paths are set but no publisher; add Publisher: {Type: local} (or s3, s3managed, ipfs) so results have somewhere to go",
        );
    }
    check_env(task, p, errs);
    check_inputs(task, p, errs);
    check_results(task, p, errs);
    if let Err(e) = Resources::parse(&task.resources) {
        errs.add(format!("{p}.Resources.{}", e.field), e.to_string());
    }
    check_network(task, p, errs);
    let t = task.timeouts;
    if t.total_timeout > 0 && t.execution_timeout + t.queue_timeout > t.total_timeout {
        errs.add(
            format!("{p}.Timeouts"),
            format!(
                "ExecutionTimeout ({}) + QueueTimeout ({}) exceed TotalTimeout ({}); raise TotalTimeout or lower the others",
                t.execution_timeout, t.queue_timeout, t.total_timeout
            ),
        );
    }
}

fn check_env(task: &Task, p: &str, errs: &mut Errors) {
    for (name, value) in &task.env {
        let path = format!("{p}.Env.{name}");
        let mut chars = name.chars();
        let well_formed = chars
            .next()
            .is_some_and(|c| c.is_ascii_uppercase() || c == '_')
            && chars.all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_');
        if !well_formed {
            errs.add(
                &path,
                "environment variable names use upper-case letters, digits and _ and do not start with a digit (e.g. MY_VAR)",
            );
        } else if name.starts_with("BACALHAU_") || name.starts_with("SHOAL_") {
            errs.add(
                &path,
                "names starting with BACALHAU_ or SHOAL_ are reserved for the system; rename it",
            );
        }
        if value.is_empty() {
            errs.add(
                &path,
                "empty value; give a value, or env:HOST_VAR to forward one from the node",
            );
        }
    }
}

fn check_inputs(task: &Task, p: &str, errs: &mut Errors) {
    let mut targets = BTreeSet::new();
    let mut aliases = BTreeSet::new();
    for (j, input) in task.input_sources.iter().enumerate() {
        let ip = format!("{p}.InputSources[{j}]");
        let kind = input.source.kind.trim();
        if kind.is_empty() {
            errs.add(
                format!("{ip}.Source.Type"),
                format!(
                    "missing input source type (known: {})",
                    KNOWN_INPUT_SOURCES.join(", ")
                ),
            );
        } else if !KNOWN_INPUT_SOURCES
            .iter()
            .any(|k| k.eq_ignore_ascii_case(kind))
        {
            errs.add(
                format!("{ip}.Source.Type"),
                format!(
                    "unknown input source type {kind:?} (known: {})",
                    KNOWN_INPUT_SOURCES.join(", ")
                ),
            );
        }
        if input.target.trim().is_empty() {
            errs.add(
                format!("{ip}.Target"),
                "missing target; give the path inside the task where the data appears",
            );
        } else if !targets.insert(input.target.as_str()) {
            errs.add(
                format!("{ip}.Target"),
                format!(
                    "{:?} is the target of another input; each input needs its own",
                    input.target
                ),
            );
        }
        if !input.alias.is_empty() && !aliases.insert(input.alias.as_str()) {
            errs.add(
                format!("{ip}.Alias"),
                format!(
                    "{:?} is the alias of another input; aliases must be unique",
                    input.alias
                ),
            );
        }
    }
}

fn check_results(task: &Task, p: &str, errs: &mut Errors) {
    let mut names = BTreeSet::new();
    let mut paths = BTreeSet::new();
    for (j, rp) in task.result_paths.iter().enumerate() {
        let rpp = format!("{p}.ResultPaths[{j}]");
        if rp.name.trim().is_empty() {
            errs.add(format!("{rpp}.Name"), "missing name of the result folder");
        } else if !names.insert(rp.name.as_str()) {
            errs.add(
                format!("{rpp}.Name"),
                format!(
                    "{:?} names another result path; names must be unique",
                    rp.name
                ),
            );
        }
        if rp.path.trim().is_empty() {
            errs.add(
                format!("{rpp}.Path"),
                "missing path; give the absolute path inside the task",
            );
        } else if !rp.path.starts_with('/') {
            errs.add(
                format!("{rpp}.Path"),
                format!("{:?} must be an absolute path (start with /)", rp.path),
            );
        } else if !paths.insert(rp.path.as_str()) {
            errs.add(
                format!("{rpp}.Path"),
                format!(
                    "{:?} is listed twice; each result path must be unique",
                    rp.path
                ),
            );
        }
    }
}

fn check_network(task: &Task, p: &str, errs: &mut Errors) {
    let net = &task.network;
    if !net.domains.is_empty() && net.kind != NetworkType::Http {
        errs.add(
            format!("{p}.Network.Domains"),
            "domains only apply to Type: HTTP; set Type: HTTP or remove Domains",
        );
    }
    let ports_allowed = matches!(
        net.kind,
        NetworkType::Host | NetworkType::Full | NetworkType::Bridge
    );
    if !net.ports.is_empty() && !ports_allowed {
        errs.add(
            format!("{p}.Network.Ports"),
            "ports need Type: Host, Full or Bridge; set one of them or remove Ports",
        );
    }
    let mut names = BTreeSet::new();
    for (j, port) in net.ports.iter().enumerate() {
        let pp = format!("{p}.Network.Ports[{j}]");
        let mut chars = port.name.chars();
        let safe = chars
            .next()
            .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
            && chars.all(|c| c.is_ascii_alphanumeric() || c == '_');
        if !safe {
            errs.add(
                format!("{pp}.Name"),
                format!(
                    "{:?} must be usable in an environment variable name (letters, digits, _)",
                    port.name
                ),
            );
        } else if !names.insert(port.name.to_ascii_lowercase()) {
            errs.add(
                format!("{pp}.Name"),
                format!(
                    "{:?} names another port; port names must be unique",
                    port.name
                ),
            );
        }
        if port.static_port != 0 && port.static_port < 1024 {
            errs.add(
                format!("{pp}.Static"),
                format!(
                    "host port {} is privileged; use 1024 or above, or 0 to have one allocated",
                    port.static_port
                ),
            );
        }
        if port.target != 0 && matches!(net.kind, NetworkType::Host | NetworkType::Full) {
            errs.add(format!("{pp}.Target"), "with the host network the task listens on the host port itself; remove Target or use Type: Bridge");
        }
    }
}
