//! The environment every task sees, resolved on the node that runs it.
//!
//! A job's `Env` value may name something only the node has:
//!
//! - `secret:NAME` — the contents of the file `NAME` in the node's secrets folder
//!   (`--secrets-dir`, default `<data-dir>/compute/secrets/`). The job spec, and so the
//!   orchestrator's store, `describe` and history, only ever hold the reference; the value is
//!   masked as `***` in everything the task prints.
//! - `env:HOST_VAR` — the agent's own environment variable, as in Bacalhau, when the node's
//!   allow-list (`--env-allow`, Bacalhau's `Compute.Env.AllowList`) names it.

use std::collections::BTreeMap;
use std::path::Path;

use shoal_types::{Execution, Job};

use crate::config::ComputeConfig;

/// A task's environment and the secret values in it (to mask in its output).
#[derive(Debug, Default)]
pub(crate) struct TaskEnv {
    /// Name to value.
    pub vars: BTreeMap<String, String>,
    /// The values that came from `secret:` references.
    pub secrets: Vec<String>,
}

/// Task env (references resolved) plus the system variables Bacalhau defines, each with a
/// `SHOAL_*` twin. An unresolvable reference is an error naming the variable, the reference
/// and what to do.
pub(crate) fn task_env(
    job: &Job,
    execution: &Execution,
    cfg: &ComputeConfig,
) -> Result<TaskEnv, String> {
    let node = execution.node_id.as_str();
    let mut env = TaskEnv::default();
    for (name, value) in &job.task().env {
        let resolved = if let Some(secret) = value.strip_prefix("secret:") {
            let v = read_secret(&cfg.secrets_dir(), secret.trim())
                .map_err(|why| format!("env {name}: secret {secret:?} {why} on node {node}"))?;
            env.secrets.push(v.clone());
            v
        } else if let Some(host) = value.strip_prefix("env:") {
            let host = host.trim();
            if !allowed(&cfg.env_allow, host) {
                return Err(format!(
                    "env {name}: host variable {host} is not in node {node}'s allow-list; start the agent with --env-allow {host} (or a pattern such as 'AWS_*')"
                ));
            }
            std::env::var(host).map_err(|_| {
                format!("env {name}: host variable {host} is not set on node {node}")
            })?
        } else {
            value.clone()
        };
        env.vars.insert(name.clone(), resolved);
    }
    let system = [
        ("JOB_ID", job.id.clone()),
        ("EXECUTION_ID", execution.id.to_string()),
        ("JOB_TYPE", job.job_type.to_string()),
        ("PARTITION_INDEX", execution.partition_index.to_string()),
        ("PARTITION_COUNT", job.count.max(1).to_string()),
        ("NODE_ID", execution.node_id.to_string()),
    ];
    for (name, value) in system {
        env.vars.insert(format!("BACALHAU_{name}"), value.clone());
        env.vars.insert(format!("SHOAL_{name}"), value);
    }
    Ok(env)
}

/// Reads one secret file; the error says what is wrong (the caller names the variable).
fn read_secret(dir: &Path, name: &str) -> Result<String, String> {
    let valid = !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        && !name.starts_with('.');
    if !valid {
        return Err("is not a valid secret name (letters, digits, '-', '_', '.')".into());
    }
    let path = dir.join(name);
    match std::fs::read_to_string(&path) {
        Ok(v) => Ok(v.strip_suffix('\n').unwrap_or(&v).to_string()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Err(format!(
            "is not found (put its value in {})",
            path.display()
        )),
        Err(e) => Err(format!("cannot be read from {}: {e}", path.display())),
    }
}

/// Whether `var` matches one of the allow-list patterns (`*` matches any run of characters).
fn allowed(patterns: &[String], var: &str) -> bool {
    patterns.iter().any(|p| glob(p.as_bytes(), var.as_bytes()))
}

fn glob(p: &[u8], s: &[u8]) -> bool {
    match p.split_first() {
        None => s.is_empty(),
        Some((b'*', rest)) => (0..=s.len()).any(|i| glob(rest, &s[i..])),
        Some((c, rest)) => s.first() == Some(c) && glob(rest, &s[1..]),
    }
}

/// Replaces every secret value in `text` with `***`. Values shorter than 4 characters are left
/// alone: masking every `1` or `on` would garble output and hide nothing.
pub(crate) fn mask(secrets: &[String], text: &str) -> String {
    let mut out = text.to_string();
    for s in secrets.iter().filter(|s| s.len() >= 4) {
        if out.contains(s.as_str()) {
            out = out.replace(s.as_str(), "***");
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use shoal_types::spec;

    fn job(env: &[(&str, &str)]) -> (Job, Execution) {
        let mut job = spec::parse_job(
            "Name: e\nType: batch\nTasks:\n  - Name: main\n    Engine: { Type: noop }\n",
        )
        .unwrap();
        spec::apply_defaults(&mut job);
        for (k, v) in env {
            job.tasks[0].env.insert(k.to_string(), v.to_string());
        }
        let e = serde_json::from_value(serde_json::json!({
            "ID": "e-1", "NodeID": "n-1", "JobID": "j-1",
            "DesiredState": {"StateType": 1}, "ComputeState": {"StateType": 1},
        }))
        .unwrap();
        (job, e)
    }

    fn cfg(dir: &Path) -> ComputeConfig {
        let mut c = ComputeConfig::new(dir, "ws://x");
        c.env_allow = vec!["SHOAL_TEST_ALLOWED_*".into()];
        c
    }

    #[test]
    fn a_secret_reference_reads_the_nodes_file_and_is_listed_for_masking() {
        let dir = tempfile::tempdir().unwrap();
        let c = cfg(dir.path());
        std::fs::create_dir_all(c.secrets_dir()).unwrap();
        std::fs::write(c.secrets_dir().join("db-pass"), "hunter2-long\n").unwrap();
        let (job, e) = job(&[("DB_PASS", "secret:db-pass"), ("PLAIN", "secret")]);
        let env = task_env(&job, &e, &c).unwrap();
        assert_eq!(env.vars["DB_PASS"], "hunter2-long");
        assert_eq!(env.vars["PLAIN"], "secret");
        assert_eq!(env.secrets, vec!["hunter2-long".to_string()]);
        assert_eq!(env.vars["SHOAL_NODE_ID"], "n-1");
    }

    #[test]
    fn a_missing_or_badly_named_secret_names_the_variable_the_file_and_the_node() {
        let dir = tempfile::tempdir().unwrap();
        let c = cfg(dir.path());
        let (j, e) = job(&[("DB_PASS", "secret:db-pass")]);
        let err = task_env(&j, &e, &c).unwrap_err();
        assert!(
            err.contains("env DB_PASS: secret \"db-pass\" is not found"),
            "{err}"
        );
        assert!(
            err.contains("secrets/db-pass") && err.contains("n-1"),
            "{err}"
        );
        let (j, e) = job(&[("X", "secret:../../etc/passwd")]);
        let err = task_env(&j, &e, &c).unwrap_err();
        assert!(err.contains("not a valid secret name"), "{err}");
    }

    #[test]
    fn host_variables_pass_only_through_the_allow_list() {
        let dir = tempfile::tempdir().unwrap();
        let c = cfg(dir.path());
        // SAFETY: this test is the only one that reads or writes these variables.
        unsafe {
            std::env::set_var("SHOAL_TEST_ALLOWED_REGION", "eu-west-1");
            std::env::set_var("SHOAL_TEST_HIDDEN", "x");
        }
        let (j, e) = job(&[("REGION", "env:SHOAL_TEST_ALLOWED_REGION")]);
        assert_eq!(task_env(&j, &e, &c).unwrap().vars["REGION"], "eu-west-1");
        let (j, e) = job(&[("H", "env:SHOAL_TEST_HIDDEN")]);
        let err = task_env(&j, &e, &c).unwrap_err();
        assert!(
            err.contains("not in node n-1's allow-list") && err.contains("--env-allow"),
            "{err}"
        );
        let (j, e) = job(&[("U", "env:SHOAL_TEST_ALLOWED_UNSET")]);
        assert!(task_env(&j, &e, &c).unwrap_err().contains("is not set"));
    }

    #[test]
    fn masking_hides_each_secret_and_leaves_short_values_alone() {
        let secrets = vec!["hunter2-long".to_string(), "on".to_string()];
        assert_eq!(
            mask(&secrets, "pass=hunter2-long, again hunter2-long, on\n"),
            "pass=***, again ***, on\n"
        );
        assert!(glob(b"AWS_*", b"AWS_REGION") && !glob(b"AWS_*", b"XAWS_REGION"));
        assert!(
            glob(b"*_TOKEN", b"GH_TOKEN") && glob(b"HOME", b"HOME") && !glob(b"HOME", b"HOMES")
        );
    }
}
