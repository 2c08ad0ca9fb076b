//! Admission: whether this node takes an execution the orchestrator sent it.
//!
//! [`decide`] is the whole policy, a function of the node's settings, its free capacity, its
//! engines and the execution. It changes nothing: opening the execution's log channel,
//! reserving its resources and storing the answer are the caller's (`inbox.rs`). The checks
//! run in this order and the first that fails is the answer, so its message is the one the
//! user reads:
//!
//! 1. the job is embedded: every check below reads it;
//! 2. the engine is offered here: without it the spec cannot even be validated;
//! 3. the networked-job policy: a node-wide rule that needs nothing but the task's network;
//! 4. the engine accepts the spec: a spec it rejects would be rejected by every node, so this
//!    one ends the execution ([`Refusal::Invalid`]) instead of sending it elsewhere;
//! 5. this node's policy for the engine allows it (the `exec` allowlist and users): after the
//!    spec check, since only a valid spec can be matched against rules, and declined rather
//!    than invalid, since another node's policy may allow it;
//! 6. local inputs are allowed and present here (data locality): the only check that reads
//!    anything outside its arguments besides the engine's policy, the metadata of the input
//!    paths;
//! 7. the resources fit: last, since it is the only answer that changes from one moment to
//!    the next on the same node.
//!
//! The scheduler checks most of this before it places an execution; the agent checks again
//! because its own view (engines, allow-list, free capacity) is the one that holds.

use shoal_executors::ExecutorRegistry;
use shoal_transport::ExecutionReport;
use shoal_types::{ComputeStateType, Execution, NetworkType, Resources};

use crate::config::AllowedPath;
use crate::lifecycle::report;

/// The node's settings that admission applies.
pub(crate) struct Policy<'a> {
    /// Named in every refusal, so a user reading a job's history knows which node said no.
    pub node_id: &'a str,
    /// Refuse tasks that ask for a network.
    pub reject_networked_jobs: bool,
    /// Host paths `local` and `localDirectory` inputs may use.
    pub allowed_paths: &'a [AllowedPath],
}

/// What an admitted execution holds on the node until it ends.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Reservation {
    /// The sum of the execution's allocated resources over its tasks.
    pub resources: Resources,
}

/// Why the node does not run an execution. The message is the report's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Refusal {
    /// Not on this node; another node may take it (`AskForBidRejected`, retryable).
    Declined(String),
    /// The engine rejects the spec, so no node would run it (`Failed`, not retryable).
    Invalid(String),
}

impl Refusal {
    /// The report that announces the refusal.
    pub fn into_report(self, execution: &Execution) -> ExecutionReport {
        match self {
            Refusal::Declined(m) => {
                report(execution, ComputeStateType::AskForBidRejected, &m, true)
            }
            Refusal::Invalid(m) => report(execution, ComputeStateType::Failed, &m, false),
        }
    }
}

/// Decides whether this node takes `execution`, given what is `free` on it now.
pub(crate) fn decide(
    policy: &Policy<'_>,
    free: Resources,
    executors: &ExecutorRegistry,
    execution: &Execution,
) -> Result<Reservation, Refusal> {
    let node = policy.node_id;
    let Some(job) = execution.job.as_deref() else {
        return Err(Refusal::Declined(
            "execution arrived without its job".into(),
        ));
    };
    let task = job.task();
    let engine = &task.engine;
    let Some(executor) = executors.get(&engine.kind) else {
        return Err(Refusal::Declined(format!(
            "node {node} does not support {}, only {}",
            engine.kind,
            executors.engines().join(", ")
        )));
    };
    let network = task.network.kind;
    if policy.reject_networked_jobs && network != NetworkType::None {
        return Err(Refusal::Declined(format!(
            "node {node} refuses networked jobs (reject networked jobs is set) and the task asks for network {network:?}; set the task's Network.Type to None (shoal docker run --network none) or run it on another node"
        )));
    }
    if let Err(e) = executor.validate(engine) {
        return Err(Refusal::Invalid(e.to_string()));
    }
    if let Err(refusal) = executor.check_policy(engine) {
        return Err(Refusal::Declined(format!("node {node}: {refusal}")));
    }
    for input in &task.input_sources {
        if (input.source.is("local") || input.source.is("localDirectory"))
            && let Err(e) = crate::inputs::local::stage(input, policy.allowed_paths)
        {
            return Err(Refusal::Declined(format!(
                "node {node} lacks the data: {e}"
            )));
        }
    }
    let want = execution
        .allocated_resources
        .tasks
        .values()
        .fold(Resources::default(), |a, r| a.add(r));
    if let Some((dim, need, have)) = want.shortfall(&free) {
        return Err(Refusal::Declined(format!(
            "node {node} is busy: job needs {need} {dim}, {have} free"
        )));
    }
    Ok(Reservation { resources: want })
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use futures::future::BoxFuture;
    use serde_json::json;
    use shoal_executors::noop::NoopExecutor;
    use shoal_executors::{ExecutionRequest, Executor, ExecutorError, Exit, LogSink};
    use shoal_types::SpecConfig;
    use tokio_util::sync::CancellationToken;

    use super::*;

    const GIB: u64 = 1 << 30;

    /// An engine that accepts no spec without a `Image` param.
    struct Picky;

    impl Executor for Picky {
        fn engine(&self) -> &'static str {
            "picky"
        }

        fn validate(&self, engine: &SpecConfig) -> Result<(), ExecutorError> {
            match engine.str_param("Image") {
                Some(_) => Ok(()),
                None => Err(ExecutorError::user(
                    "picky engine: Params.Image is required",
                )),
            }
        }

        fn run(
            &self,
            _: ExecutionRequest,
            _: LogSink,
            _: CancellationToken,
        ) -> BoxFuture<'static, Result<Exit, ExecutorError>> {
            Box::pin(async { Ok(Exit { code: 0 }) })
        }
    }

    /// An engine whose node policy allows only the command `/bin/true`.
    struct Guarded;

    impl Executor for Guarded {
        fn engine(&self) -> &'static str {
            "guarded"
        }

        fn validate(&self, _: &SpecConfig) -> Result<(), ExecutorError> {
            Ok(())
        }

        fn check_policy(&self, engine: &SpecConfig) -> Result<(), String> {
            match engine.str_param("Command") {
                Some("/bin/true") => Ok(()),
                other => Err(format!("not in exec allowlist: {}", other.unwrap_or(""))),
            }
        }

        fn run(
            &self,
            _: ExecutionRequest,
            _: LogSink,
            _: CancellationToken,
        ) -> BoxFuture<'static, Result<Exit, ExecutorError>> {
            Box::pin(async { Ok(Exit { code: 0 }) })
        }
    }

    fn engines() -> ExecutorRegistry {
        let mut r = ExecutorRegistry::new();
        r.register(Arc::new(NoopExecutor))
            .register(Arc::new(Picky))
            .register(Arc::new(Guarded));
        r
    }

    fn open_policy() -> Policy<'static> {
        Policy {
            node_id: "n-1",
            reject_networked_jobs: false,
            allowed_paths: &[],
        }
    }

    fn plenty() -> Resources {
        Resources {
            cpu: 8.0,
            memory: 16 * GIB,
            disk: 100 * GIB,
            gpu: 0,
        }
    }

    /// An execution of a one-task job; `task` is merged into a `noop` task with no network.
    fn execution(task: serde_json::Value, allocated: Resources) -> Execution {
        let mut t =
            json!({"Name": "main", "Engine": {"Type": "noop"}, "Network": {"Type": "None"}});
        for (k, v) in task.as_object().unwrap() {
            t[k] = v.clone();
        }
        serde_json::from_value(json!({
            "ID": "e-1", "NodeID": "n-1", "JobID": "j-1",
            "DesiredState": {"StateType": 1}, "ComputeState": {"StateType": 1},
            "Job": {"ID": "j-1", "Type": "batch", "Count": 1, "Tasks": [t]},
            "AllocatedResources": {"Tasks": {"main": allocated}},
        }))
        .unwrap()
    }

    fn small() -> Resources {
        Resources {
            cpu: 0.5,
            memory: GIB,
            ..Default::default()
        }
    }

    fn declined(message: &str) -> Result<Reservation, Refusal> {
        Err(Refusal::Declined(message.to_string()))
    }

    #[test]
    fn a_job_that_fits_is_admitted_and_reserves_its_allocated_resources() {
        let e = execution(json!({}), small());
        assert_eq!(
            decide(&open_policy(), plenty(), &engines(), &e),
            Ok(Reservation { resources: small() })
        );
    }

    #[test]
    fn the_reservation_is_the_sum_over_the_tasks_allocations() {
        let mut e = execution(json!({}), small());
        e.allocated_resources
            .tasks
            .insert("sidecar".into(), small());
        let got = decide(&open_policy(), plenty(), &engines(), &e).unwrap();
        assert_eq!(got.resources, small().add(&small()));
    }

    #[test]
    fn an_execution_that_arrives_without_its_job_is_declined() {
        let mut e = execution(json!({}), small());
        e.job = None;
        assert_eq!(
            decide(&open_policy(), plenty(), &engines(), &e),
            declined("execution arrived without its job")
        );
    }

    #[test]
    fn a_job_for_an_engine_the_node_lacks_is_declined_naming_the_engines_it_has() {
        let e = execution(json!({"Engine": {"Type": "docker"}}), small());
        assert_eq!(
            decide(&open_policy(), plenty(), &engines(), &e),
            declined("node n-1 does not support docker, only guarded, noop, picky")
        );
    }

    #[test]
    fn engines_are_matched_without_regard_to_case() {
        let e = execution(json!({"Engine": {"Type": "NoOp"}}), small());
        assert!(decide(&open_policy(), plenty(), &engines(), &e).is_ok());
    }

    #[test]
    fn a_networked_job_is_declined_where_networked_jobs_are_rejected_naming_the_setting_and_the_fix()
     {
        let policy = Policy {
            reject_networked_jobs: true,
            ..open_policy()
        };
        let e = execution(json!({"Network": {"Type": "Host"}}), small());
        assert_eq!(
            decide(&policy, plenty(), &engines(), &e),
            declined(
                "node n-1 refuses networked jobs (reject networked jobs is set) and the task asks for network Host; set the task's Network.Type to None (shoal docker run --network none) or run it on another node"
            )
        );
    }

    /// The engine's default network is a bridge for docker: it reaches outside the node.
    #[test]
    fn a_task_on_the_engines_default_network_counts_as_networked() {
        let policy = Policy {
            reject_networked_jobs: true,
            ..open_policy()
        };
        let e = execution(json!({"Network": {"Type": "Default"}}), small());
        let Err(Refusal::Declined(m)) = decide(&policy, plenty(), &engines(), &e) else {
            panic!("a task on the default network was admitted");
        };
        assert!(m.contains("asks for network Default"), "{m}");
    }

    #[test]
    fn a_task_without_network_is_admitted_where_networked_jobs_are_rejected() {
        let policy = Policy {
            reject_networked_jobs: true,
            ..open_policy()
        };
        let e = execution(json!({"Network": {"Type": "None"}}), small());
        assert!(decide(&policy, plenty(), &engines(), &e).is_ok());
    }

    #[test]
    fn networked_jobs_are_admitted_unless_the_node_rejects_them() {
        let e = execution(json!({"Network": {"Type": "Full"}}), small());
        assert!(decide(&open_policy(), plenty(), &engines(), &e).is_ok());
    }

    #[test]
    fn a_spec_the_engine_rejects_is_invalid_with_the_engines_message() {
        let e = execution(json!({"Engine": {"Type": "picky"}}), small());
        assert_eq!(
            decide(&open_policy(), plenty(), &engines(), &e),
            Err(Refusal::Invalid(
                "picky engine: Params.Image is required".into()
            ))
        );
        let ok = execution(
            json!({"Engine": {"Type": "picky", "Params": {"Image": "alpine"}}}),
            small(),
        );
        assert!(decide(&open_policy(), plenty(), &engines(), &ok).is_ok());
    }

    /// Another node's policy may allow what this one refuses: declined, not invalid.
    #[test]
    fn a_spec_this_nodes_policy_refuses_is_declined_naming_the_node() {
        let refused = execution(
            json!({"Engine": {"Type": "guarded", "Params": {"Command": "/bin/rm"}}}),
            small(),
        );
        assert_eq!(
            decide(&open_policy(), plenty(), &engines(), &refused),
            declined("node n-1: not in exec allowlist: /bin/rm")
        );
        let allowed = execution(
            json!({"Engine": {"Type": "guarded", "Params": {"Command": "/bin/true"}}}),
            small(),
        );
        assert!(decide(&open_policy(), plenty(), &engines(), &allowed).is_ok());
    }

    fn local_input(path: &str) -> serde_json::Value {
        json!({"InputSources": [{
            "Source": {"Type": "localDirectory", "Params": {"SourcePath": path}},
            "Target": "/data",
        }]})
    }

    #[test]
    fn a_local_input_outside_the_allow_list_is_declined_naming_the_list() {
        let dir = tempfile::tempdir().unwrap();
        let allowed = [AllowedPath::parse(&dir.path().display().to_string())];
        let policy = Policy {
            allowed_paths: &allowed,
            ..open_policy()
        };
        let e = execution(local_input("/etc"), small());
        assert_eq!(
            decide(&policy, plenty(), &engines(), &e),
            declined(&format!(
                "node n-1 lacks the data: local input /data: path /etc is not in this node's allow-list ({}:ro); add it with --allow-path on the node",
                dir.path().display()
            ))
        );
    }

    #[test]
    fn a_local_input_allowed_but_missing_on_this_node_is_declined_so_another_node_may_serve_it() {
        let dir = tempfile::tempdir().unwrap();
        let allowed = [AllowedPath::parse(&dir.path().display().to_string())];
        let policy = Policy {
            allowed_paths: &allowed,
            ..open_policy()
        };
        let missing = dir.path().join("absent");
        let e = execution(local_input(&missing.display().to_string()), small());
        let Err(Refusal::Declined(m)) = decide(&policy, plenty(), &engines(), &e) else {
            panic!("a missing local input was admitted");
        };
        assert!(
            m.starts_with(&format!(
                "node n-1 lacks the data: local input /data: source path {} is not on this node: ",
                missing.display()
            )),
            "{m}"
        );
    }

    #[test]
    fn a_local_input_present_under_the_allow_list_is_admitted() {
        let dir = tempfile::tempdir().unwrap();
        let allowed = [AllowedPath::parse(&dir.path().display().to_string())];
        let policy = Policy {
            allowed_paths: &allowed,
            ..open_policy()
        };
        let e = execution(local_input(&dir.path().display().to_string()), small());
        assert!(decide(&policy, plenty(), &engines(), &e).is_ok());
    }

    #[test]
    fn a_job_asking_more_memory_than_free_is_refused_with_both_figures() {
        let free = Resources {
            memory: GIB / 2,
            ..plenty()
        };
        let e = execution(json!({}), small());
        assert_eq!(
            decide(&open_policy(), free, &engines(), &e),
            declined("node n-1 is busy: job needs 1 GiB memory, 512 MiB free")
        );
    }

    #[test]
    fn a_job_asking_more_cpu_than_free_is_refused_with_both_figures() {
        let free = Resources {
            cpu: 0.25,
            ..plenty()
        };
        let e = execution(json!({}), small());
        let Err(Refusal::Declined(m)) = decide(&open_policy(), free, &engines(), &e) else {
            panic!("a job needing more cpu than free was admitted");
        };
        assert!(m.starts_with("node n-1 is busy: job needs "), "{m}");
        assert!(m.contains(" cpu, ") && m.ends_with(" free"), "{m}");
    }

    #[test]
    fn a_job_that_exactly_fills_the_node_is_admitted() {
        let e = execution(json!({}), small());
        assert!(decide(&open_policy(), small(), &engines(), &e).is_ok());
    }

    /// The first check that fails is the answer: a job that is wrong in several ways is told
    /// about the engine, then the network, then the spec, then the data, then the resources.
    #[test]
    fn the_first_failing_check_in_order_is_the_answer() {
        let policy = Policy {
            reject_networked_jobs: true,
            ..open_policy()
        };
        let none = Resources::default();
        let everything_wrong = json!({
            "Engine": {"Type": "docker"},
            "Network": {"Type": "Host"},
            "InputSources": [{"Source": {"Type": "local", "Params": {"SourcePath": "/etc"}}, "Target": "/data"}],
        });
        let answer =
            |task: serde_json::Value| decide(&policy, none, &engines(), &execution(task, small()));
        let message = |r: Result<Reservation, Refusal>| match r {
            Err(Refusal::Declined(m) | Refusal::Invalid(m)) => m,
            Ok(_) => panic!("admitted"),
        };
        assert!(message(answer(everything_wrong.clone())).contains("does not support docker"));
        let mut t = everything_wrong.clone();
        t["Engine"] = json!({"Type": "picky"});
        assert!(message(answer(t.clone())).contains("refuses networked jobs"));
        t["Network"] = json!({"Type": "None"});
        assert_eq!(
            answer(t.clone()),
            Err(Refusal::Invalid(
                "picky engine: Params.Image is required".into()
            ))
        );
        t["Engine"] = json!({"Type": "picky", "Params": {"Image": "alpine"}});
        assert!(message(answer(t.clone())).contains("lacks the data"));
        t["InputSources"] = json!([]);
        assert!(message(answer(t)).contains("is busy"));
    }

    #[test]
    fn a_declined_execution_is_reported_as_a_rejected_bid_another_node_may_take() {
        let e = execution(json!({}), small());
        let r = Refusal::Declined("node n-1 is busy".into()).into_report(&e);
        assert_eq!(r.state, ComputeStateType::AskForBidRejected);
        assert_eq!(r.message, "node n-1 is busy");
        assert!(r.retryable);
    }

    #[test]
    fn an_invalid_execution_is_reported_failed_and_not_retried() {
        let e = execution(json!({}), small());
        let r = Refusal::Invalid("bad params".into()).into_report(&e);
        assert_eq!(r.state, ComputeStateType::Failed);
        assert_eq!(r.message, "bad params");
        assert!(!r.retryable);
    }
}
