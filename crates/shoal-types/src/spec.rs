//! Reading and validating job specs written by people (YAML or JSON).
//!
//! Bacalhau matches keys case-insensitively (Go's `encoding/json`), so `name:` and `Name:` both
//! work; Shoal does the same, and additionally rejects unknown keys with their path so that a
//! typo never silently drops a setting.

use crate::job::{Job, JobStateType, JobType};
use crate::resources::Resources;
use crate::selector;

/// One problem with a spec, located by its path (`Tasks[0].Engine.Type`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldError {
    /// Path of the offending field.
    pub path: String,
    /// What is wrong and how to fix it.
    pub message: String,
}

impl std::fmt::Display for FieldError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.path.is_empty() {
            f.write_str(&self.message)
        } else {
            write!(f, "{}: {}", self.path, self.message)
        }
    }
}

/// Why a spec could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SpecError {
    /// The text is not valid YAML/JSON.
    #[error("{0}")]
    Syntax(String),
    /// The document has the wrong shape or invalid values.
    #[error("{}", .0.iter().map(|e| e.to_string()).collect::<Vec<_>>().join("\n"))]
    Invalid(Vec<FieldError>),
}

/// Engine types this build knows of; used in error messages.
pub const KNOWN_ENGINES: &[&str] = &["wasm", "docker", "exec", "query", "noop"];

/// Reads a job from YAML or JSON text, then applies defaults and validates it.
pub fn parse_job(text: &str) -> Result<Job, SpecError> {
    let value: serde_json::Value =
        serde_yaml::from_str(text).map_err(|e| SpecError::Syntax(e.to_string()))?;
    let mut job: Job = serde_json::from_value(value)
        .map_err(|e| SpecError::Invalid(vec![FieldError { path: String::new(), message: e.to_string() }]))?;
    apply_defaults(&mut job);
    let errors = validate(&job);
    if errors.is_empty() { Ok(job) } else { Err(SpecError::Invalid(errors)) }
}

/// Fills in what Bacalhau fills in on submit: namespace, task name, count.
pub fn apply_defaults(job: &mut Job) {
    if job.namespace.is_empty() {
        job.namespace = "default".into();
    }
    if matches!(job.job_type, JobType::Ops | JobType::Daemon) {
        job.count = 0;
    }
    for task in &mut job.tasks {
        if task.name.is_empty() {
            task.name = "main".into();
        }
    }
    job.state.state_type = JobStateType::Undefined;
}

/// Checks a job for everything that can be known without a cluster.
pub fn validate(job: &Job) -> Vec<FieldError> {
    let mut errs = Vec::new();
    let mut err = |path: String, message: String| errs.push(FieldError { path, message });
    if job.tasks.is_empty() {
        err("Tasks".into(), "a job needs exactly one task; add a Tasks list with one entry".into());
    } else if job.tasks.len() > 1 {
        err("Tasks".into(), format!("a job has exactly one task, found {}", job.tasks.len()));
    }
    for (i, r) in job.constraints.iter().enumerate() {
        if let Err(m) = selector::check(r) {
            err(format!("Constraints[{i}].Operator"), m);
        }
    }
    for (i, task) in job.tasks.iter().enumerate() {
        let p = format!("Tasks[{i}]");
        if task.engine.kind.is_empty() {
            err(format!("{p}.Engine.Type"), format!("missing engine type (known: {})", KNOWN_ENGINES.join(", ")));
        }
        if let Err(e) = Resources::parse(&task.resources) {
            err(format!("{p}.Resources.{}", e.field), e.to_string());
        }
        for (j, rp) in task.result_paths.iter().enumerate() {
            if !rp.path.starts_with('/') {
                err(format!("{p}.ResultPaths[{j}].Path"), format!("{:?} must be an absolute path", rp.path));
            }
        }
        let t = task.timeouts;
        if t.total_timeout > 0 && t.execution_timeout + t.queue_timeout > t.total_timeout {
            err(
                format!("{p}.Timeouts"),
                "ExecutionTimeout + QueueTimeout must not exceed TotalTimeout".into(),
            );
        }
    }
    errs
}
