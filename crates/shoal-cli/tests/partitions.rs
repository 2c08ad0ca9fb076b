//! Real partitions between real processes.
//!
//! An orchestrator and two compute agents run as separate `shoal` processes. Each agent dials
//! the orchestrator through its own [`LinkProxy`] running in this test process, so a test cuts
//! one node's link for real (both sockets close, redials are held unanswered) while the client
//! commands keep talking to the orchestrator directly. The work is a WASI module that sleeps on
//! a clock subscription: long enough to be partitioned mid-run, no Docker needed.
//!
//! What must hold, from the edge's point of view: a node keeps working while it is away; what it
//! did is delivered once when it returns; a stop issued while it was away reaches it; a node gone
//! longer than the job's grace has its work re-placed, and when it returns exactly one result
//! counts and its own copy is stopped.

mod common;
use common::*;

use std::path::PathBuf;
use std::process::{Command, Output};

use shoal_testkit::LinkProxy;
use shoal_types::{ComputeStateType, DesiredStateType, Execution, JobHistory};

const AGENTS: [&str; 2] = ["n-a", "n-b"];

/// The cluster: an orchestrator process, two agent processes behind proxies, and the runtime
/// the proxies run on.
struct Fleet {
    dir: tempfile::TempDir,
    port: u16,
    orchestrator_args: Vec<String>,
    orchestrator: Proc,
    agents: Vec<(String, Proc)>,
    proxies: Vec<LinkProxy>,
    _rt: tokio::runtime::Runtime,
}

impl Fleet {
    /// An orchestrator with `grace` as its default node-lost grace, quick disconnect detection,
    /// and agents `n-a`, `n-b`, each behind its own proxy.
    fn start(grace: &str) -> Fleet {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        let dir = tempfile::tempdir().unwrap();
        let port = free_port();
        let orchestrator_args: Vec<String> = [
            "serve",
            "--orchestrator",
            "--allow-anonymous",
            "write",
            "--api-port",
            &port.to_string(),
            "--token",
            "t",
            "--node-lost-grace",
            grace,
            "--disconnect-timeout",
            "3s",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        let orchestrator = spawn(&orchestrator_args, &dir.path().join("o"));
        let upstream = format!("127.0.0.1:{port}").parse().unwrap();
        let proxies = AGENTS
            .iter()
            .map(|_| rt.block_on(LinkProxy::start(upstream)).unwrap())
            .collect();
        let mut fleet = Fleet {
            dir,
            port,
            orchestrator_args,
            orchestrator,
            agents: Vec::new(),
            proxies,
            _rt: rt,
        };
        for name in AGENTS {
            let p = fleet.spawn_agent(name);
            fleet.agents.push((name.to_string(), p));
        }
        eventually("two agents to connect", || fleet.connected() == 2);
        fleet
    }

    fn index(name: &str) -> usize {
        AGENTS
            .iter()
            .position(|n| *n == name)
            .expect("a known agent")
    }

    fn spawn_agent(&self, name: &str) -> Proc {
        let url = format!("ws://{}", self.proxies[Self::index(name)].addr());
        let args: Vec<String> = [
            "serve",
            "--compute",
            "--orchestrators",
            &url,
            "--token",
            "t",
            "--name",
            name,
            "--heartbeat-interval",
            "500ms",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        spawn(&args, &self.agent_dir(name))
    }

    fn agent_dir(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn proxy(&self, name: &str) -> &LinkProxy {
        &self.proxies[Self::index(name)]
    }

    fn agent(&mut self, name: &str) -> &mut Proc {
        &mut self
            .agents
            .iter_mut()
            .find(|(n, _)| n == name)
            .expect("a known agent")
            .1
    }

    fn restart_agent(&mut self, name: &str) {
        let p = self.spawn_agent(name);
        *self.agent(name) = p;
    }

    fn restart_orchestrator(&mut self) {
        self.orchestrator = spawn(&self.orchestrator_args, &self.dir.path().join("o"));
    }

    fn shoal(&self, args: &[&str]) -> Output {
        Command::new(BIN)
            .args(["--api-port", &self.port.to_string()])
            .args(args)
            .output()
            .expect("shoal runs")
    }

    fn json(&self, args: &[&str]) -> serde_json::Value {
        let mut all = args.to_vec();
        all.extend(["--output", "json"]);
        serde_json::from_slice(&self.shoal(&all).stdout).unwrap_or_default()
    }

    fn node_status(&self, node: &str) -> String {
        self.json(&["node", "list"])
            .as_array()
            .and_then(|a| a.iter().find(|n| n["Info"]["NodeID"] == node).cloned())
            .and_then(|n| n["Connection"].as_str().map(str::to_string))
            .unwrap_or_default()
    }

    fn connected(&self) -> usize {
        self.json(&["node", "list"])
            .as_array()
            .map(|a| a.iter().filter(|n| n["Connection"] == "CONNECTED").count())
            .unwrap_or(0)
    }

    fn executions(&self, job: &str) -> Vec<Execution> {
        serde_json::from_value(self.json(&["job", "executions", job])).unwrap_or_default()
    }

    fn history(&self, job: &str) -> Vec<JobHistory> {
        serde_json::from_value(self.json(&["job", "history", job])).unwrap_or_default()
    }

    fn job_state(&self, job: &str) -> String {
        self.json(&["job", "describe", job])["Job"]["State"]["StateType"]
            .as_str()
            .unwrap_or_default()
            .to_string()
    }

    /// Submits a batch job running the sleep module; `meta` lines go under `Meta:`.
    fn submit_sleep(&self, ms: u64, meta: &[(&str, &str)]) -> String {
        use base64::Engine as _;
        let url = format!(
            "data:text/plain;base64,{}",
            base64::engine::general_purpose::STANDARD.encode(sleep_wat(ms))
        );
        let meta: String = meta
            .iter()
            .map(|(k, v)| format!("  {k}: \"{v}\"\n"))
            .collect();
        let meta = if meta.is_empty() {
            String::new()
        } else {
            format!("Meta:\n{meta}")
        };
        let path = self.dir.path().join(format!("sleep-{}.yaml", free_port()));
        std::fs::write(
            &path,
            format!(
                "Type: batch
Count: 1
{meta}Tasks:
  - Name: main
    Engine:
      Type: wasm
      Params:
        EntryModule: /app/sleep.wat
    InputSources:
      - Target: /app/sleep.wat
        Source:
          Type: inline
          Params:
            URL: \"{url}\"
    Resources:
      CPU: \"1\"
      Memory: 1Gi
"
            ),
        )
        .unwrap();
        let out = self.shoal(&[
            "job",
            "run",
            path.to_str().unwrap(),
            "--wait=false",
            "--id-only",
        ]);
        assert!(out.status.success(), "{}", text(&out));
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }

    /// Waits until the job has a running execution; returns it.
    fn running(&self, job: &str) -> Execution {
        self.running_besides(job, None)
    }

    /// Waits until the job has a running execution other than `other`; returns it.
    fn running_besides(&self, job: &str, other: Option<&Execution>) -> Execution {
        let mut found = None;
        eventually("an execution to run", || {
            found = self.executions(job).into_iter().find(|e| {
                e.compute_state.state_type == ComputeStateType::Running
                    && other.is_none_or(|o| o.id != e.id)
            });
            found.is_some()
        });
        found.unwrap()
    }

    /// Cuts `node`'s link and waits until the orchestrator shows it disconnected.
    fn partition(&self, node: &str) {
        self.proxy(node).cut();
        eventually(&format!("{node} to be seen disconnected"), || {
            self.node_status(node) == "DISCONNECTED"
        });
    }

    fn heal(&self, node: &str) {
        self.proxy(node).restore();
        eventually(&format!("{node} to reconnect"), || {
            self.node_status(node) == "CONNECTED"
        });
    }

    /// What the execution wrote to stdout on its node, read from the node's own disk.
    fn stdout_on_node(&self, e: &Execution) -> Option<String> {
        let file = self
            .agent_dir(e.node_id.as_str())
            .join("compute/executions")
            .join(e.id.as_str())
            .join("results/stdout");
        std::fs::read_to_string(file).ok()
    }
}

fn count_events(history: &[JobHistory], needle: &str) -> usize {
    history
        .iter()
        .filter(|h| h.event.message.contains(needle))
        .count()
}

fn completed(execs: &[Execution]) -> Vec<&Execution> {
    execs
        .iter()
        .filter(|e| e.compute_state.state_type == ComputeStateType::Completed)
        .collect()
}

#[test]
fn a_job_that_finishes_during_a_partition_is_recorded_once_when_the_link_returns() {
    let fleet = Fleet::start("10m");
    let job = fleet.submit_sleep(1500, &[]);
    let exec = fleet.running(&job);
    let node = exec.node_id.to_string();

    fleet.partition(&node);
    // The node finishes the work on its own while the orchestrator cannot hear it.
    eventually("the node to finish the work while cut off", || {
        fleet.stdout_on_node(&exec).as_deref() == Some("slept\n")
    });
    assert_eq!(
        fleet.job_state(&job),
        "Running",
        "nothing reached the orchestrator during the cut"
    );

    fleet.heal(&node);
    eventually("the job to complete", || {
        fleet.job_state(&job) == "Completed"
    });
    let execs = fleet.executions(&job);
    assert_eq!(execs.len(), 1, "no duplicate execution: {execs:#?}");
    assert_eq!(execs[0].id, exec.id);
    assert_eq!(
        execs[0].run_output.as_ref().map(|o| o.stdout.as_str()),
        Some("slept\n")
    );
    assert_eq!(
        count_events(&fleet.history(&job), "execution completed"),
        1,
        "the result is applied once"
    );
}

#[test]
fn a_stop_issued_during_a_partition_reaches_the_node_when_it_returns() {
    let fleet = Fleet::start("10m");
    let job = fleet.submit_sleep(120_000, &[]);
    let exec = fleet.running(&job);
    let node = exec.node_id.to_string();

    fleet.partition(&node);
    let out = fleet.shoal(&["job", "stop", &job]);
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(fleet.job_state(&job), "Stopped");
    let during = &fleet.executions(&job)[0];
    assert_eq!(during.desired_state.state_type, DesiredStateType::Stopped);
    assert_eq!(
        during.compute_state.state_type,
        ComputeStateType::Running,
        "the orchestrator does not pretend the node stopped"
    );

    fleet.heal(&node);
    eventually("the node to cancel the execution", || {
        fleet.executions(&job)[0].compute_state.state_type == ComputeStateType::Cancelled
    });
    assert_eq!(fleet.executions(&job).len(), 1);
    assert_eq!(
        fleet.stdout_on_node(&exec).unwrap_or_default(),
        "",
        "the work was stopped, not run to its end"
    );
}

#[test]
fn an_orchestrator_killed_during_a_partition_gets_the_result_once_after_both_return() {
    let mut fleet = Fleet::start("10m");
    let job = fleet.submit_sleep(2000, &[]);
    let exec = fleet.running(&job);
    let node = exec.node_id.to_string();

    fleet.partition(&node);
    fleet.orchestrator.kill9();
    eventually("the node to finish the work alone", || {
        fleet.stdout_on_node(&exec).as_deref() == Some("slept\n")
    });
    fleet.restart_orchestrator();
    eventually("the other agent to reconnect", || fleet.connected() == 1);
    assert_eq!(fleet.job_state(&job), "Running", "{node} is still cut off");

    fleet.heal(&node);
    eventually("the job to complete", || {
        fleet.job_state(&job) == "Completed"
    });
    let execs = fleet.executions(&job);
    assert_eq!(execs.len(), 1, "not re-placed: {execs:#?}");
    assert_eq!(completed(&execs).len(), 1);
    assert_eq!(count_events(&fleet.history(&job), "execution completed"), 1);
}

#[test]
fn an_agent_killed_during_a_partition_reports_the_interruption_when_it_returns() {
    let mut fleet = Fleet::start("10m");
    let job = fleet.submit_sleep(1500, &[]);
    let exec = fleet.running(&job);
    let node = exec.node_id.to_string();

    fleet.partition(&node);
    fleet.agent(&node).kill9();
    fleet.restart_agent(&node);
    // The restarted agent settles the interrupted execution in its ledger; the report waits
    // in its outbox while the link is still cut.
    assert_eq!(fleet.job_state(&job), "Running");

    fleet.heal(&node);
    eventually("the job to complete", || {
        fleet.job_state(&job) == "Completed"
    });
    let execs = fleet.executions(&job);
    let first = execs.iter().find(|e| e.id == exec.id).unwrap();
    assert_eq!(first.compute_state.state_type, ComputeStateType::Failed);
    assert!(
        first.compute_state.message.contains("restarted"),
        "{:?}",
        first.compute_state
    );
    assert_eq!(
        completed(&execs).len(),
        1,
        "one retry completed: {execs:#?}"
    );
    assert_eq!(execs.len(), 2);
    assert!(
        fleet.stdout_on_node(first).unwrap_or_default().is_empty(),
        "the interrupted execution was not run again after the restart"
    );
}

#[test]
fn a_node_lost_beyond_the_grace_has_its_work_replaced_and_its_return_is_reconciled() {
    let fleet = Fleet::start("10m");
    // The job's own grace overrides the orchestrator's 10 minutes.
    let job = fleet.submit_sleep(8000, &[("shoal.io/node-lost-grace", "1s")]);
    let first = fleet.running(&job);
    let lost = first.node_id.to_string();

    fleet.partition(&lost);
    let replacement = fleet.running_besides(&job, Some(&first));
    assert_ne!(replacement.node_id.as_str(), lost, "re-placed elsewhere");
    let settled = fleet
        .executions(&job)
        .into_iter()
        .find(|e| e.id == first.id)
        .unwrap();
    assert_eq!(settled.compute_state.state_type, ComputeStateType::Failed);
    assert!(
        settled.compute_state.message.contains("lost"),
        "{:?}",
        settled.compute_state
    );

    // The node returns while its copy still runs: the durable stop reaches it, and what it
    // reports is recorded as late, not counted.
    fleet.heal(&lost);
    eventually("the late report from the returning node", || {
        count_events(&fleet.history(&job), "not counted") > 0
    });
    let history = fleet.history(&job);
    let late = history
        .iter()
        .find(|h| h.event.message.contains("not counted"))
        .unwrap();
    assert_eq!(late.execution_id, first.id.as_str());
    assert!(
        late.event.message.starts_with("late cancelled report"),
        "the returning node's copy was stopped: {}",
        late.event.message
    );

    eventually("the job to complete", || {
        fleet.job_state(&job) == "Completed"
    });
    let execs = fleet.executions(&job);
    let done = completed(&execs);
    assert_eq!(done.len(), 1, "exactly one result counts: {execs:#?}");
    assert_eq!(done[0].id, replacement.id);
    assert_eq!(execs.len(), 2);
    assert_eq!(count_events(&fleet.history(&job), "execution completed"), 1);
}
