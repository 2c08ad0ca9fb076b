//! Process-level crash tests: `kill -9` an agent or the orchestrator while a job is running.
//!
//! The job is a WASI module that sleeps on a clock subscription (`poll_oneoff`), so it runs
//! long enough to be interrupted and needs no Docker.

mod common;
use common::*;

use std::path::{Path, PathBuf};

use shoal_types::resources::format_cpu;
use shoal_types::{ComputeStateType, Execution, JobHistory};

fn executions(port: u16, job: &str) -> Vec<Execution> {
    serde_json::from_value(json(port, &["job", "executions", job])).unwrap_or_default()
}

fn history(port: u16, job: &str) -> Vec<JobHistory> {
    serde_json::from_value(json(port, &["job", "history", job])).unwrap_or_default()
}

fn job_state(port: u16, job: &str) -> String {
    json(port, &["job", "describe", job])["Job"]["State"]["StateType"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

/// A batch job file running the sleep module with 1 CPU and 1 GiB reserved.
fn sleep_job(dir: &Path, ms: u64) -> PathBuf {
    use base64::Engine as _;
    let url = format!(
        "data:text/plain;base64,{}",
        base64::engine::general_purpose::STANDARD.encode(sleep_wat(ms))
    );
    let path = dir.join("sleep.yaml");
    std::fs::write(
        &path,
        format!(
            "Name: sleeper
Type: batch
Count: 1
Tasks:
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
    path
}

fn submit(port: u16, file: &Path) -> String {
    let out = shoal(
        port,
        &[
            "job",
            "run",
            file.to_str().unwrap(),
            "--wait=false",
            "--id-only",
        ],
    );
    assert!(out.status.success(), "{}", text(&out));
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// Waits until the job has a running execution; returns its node.
fn running_on(port: u16, job: &str) -> String {
    let mut node = String::new();
    eventually("the execution to run", || {
        executions(port, job)
            .iter()
            .find(|e| e.compute_state.state_type == ComputeStateType::Running)
            .map(|e| node = e.node_id.to_string())
            .is_some()
    });
    node
}

struct Fleet {
    dir: tempfile::TempDir,
    port: u16,
    orchestrator_args: Vec<String>,
    orchestrator: Proc,
    agents: Vec<(String, Proc)>,
}

impl Fleet {
    /// An orchestrator with `grace` as node-lost grace and agents `n-a`, `n-b`.
    fn start(grace: &str) -> Fleet {
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
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        let args: Vec<&str> = orchestrator_args.iter().map(String::as_str).collect();
        let orchestrator = spawn(&args, &dir.path().join("o"));
        let mut fleet = Fleet {
            dir,
            port,
            orchestrator_args,
            orchestrator,
            agents: Vec::new(),
        };
        for name in ["n-a", "n-b"] {
            let p = fleet.spawn_agent(name);
            fleet.agents.push((name.to_string(), p));
        }
        eventually("two agents to connect", || connected_nodes(port) == 2);
        fleet
    }

    fn spawn_agent(&self, name: &str) -> Proc {
        let url = format!("ws://127.0.0.1:{}", self.port);
        spawn(
            &[
                "serve",
                "--compute",
                "--orchestrators",
                &url,
                "--token",
                "t",
                "--name",
                name,
            ],
            &self.dir.path().join(name),
        )
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
        let args: Vec<&str> = self.orchestrator_args.iter().map(String::as_str).collect();
        self.orchestrator = spawn(&args, &self.dir.path().join("o"));
    }
}

#[test]
fn killed_agent_that_restarts_reports_its_execution_failed_and_the_job_is_retried() {
    let mut fleet = Fleet::start("10m");
    let port = fleet.port;
    let job = submit(port, &sleep_job(fleet.dir.path(), 2000));
    let victim = running_on(port, &job);

    fleet.agent(&victim).kill9();
    fleet.restart_agent(&victim);

    eventually("the job to complete", || {
        job_state(port, &job) == "Completed"
    });
    let execs = executions(port, &job);
    let interrupted = execs
        .iter()
        .find(|e| e.compute_state.state_type == ComputeStateType::Failed)
        .expect("the interrupted execution is kept, failed");
    assert_eq!(interrupted.node_id.as_str(), victim);
    assert!(
        interrupted.compute_state.message.contains("restarted"),
        "{:?}",
        interrupted.compute_state
    );
    assert!(
        execs
            .iter()
            .any(|e| e.compute_state.state_type == ComputeStateType::Completed),
        "a retry completed: {execs:?}"
    );
    let events = history(port, &job);
    assert!(
        events.iter().any(|h| h
            .event
            .message
            .contains("restarted while the execution was running")),
        "the history says why the first attempt failed: {events:?}"
    );
}

#[test]
fn killed_agent_that_stays_down_has_its_work_replaced_after_the_node_lost_grace() {
    let mut fleet = Fleet::start("1s");
    let port = fleet.port;
    let job = submit(port, &sleep_job(fleet.dir.path(), 2000));
    let victim = running_on(port, &job);

    fleet.agent(&victim).kill9();

    eventually("the job to complete", || {
        job_state(port, &job) == "Completed"
    });
    let execs = executions(port, &job);
    let done = execs
        .iter()
        .find(|e| e.compute_state.state_type == ComputeStateType::Completed)
        .expect("a completed execution");
    assert_ne!(
        done.node_id.as_str(),
        victim,
        "re-placed on the surviving node"
    );
    assert!(
        execs
            .iter()
            .any(|e| e.node_id.as_str() == victim && e.is_terminal()),
        "the lost execution is settled, not left running: {execs:?}"
    );
}

#[test]
fn orchestrator_killed_while_a_job_runs_restarts_and_the_job_completes_with_its_history() {
    let mut fleet = Fleet::start("10m");
    let port = fleet.port;
    let job = submit(port, &sleep_job(fleet.dir.path(), 4000));
    let node = running_on(port, &job);

    // While it runs, node list shows the orchestrator's live accounting: 1 CPU and 1 GiB of
    // the node are reserved by the execution.
    let nodes = json(port, &["node", "list"]);
    let n = nodes
        .as_array()
        .unwrap()
        .iter()
        .find(|n| n["Info"]["NodeID"] == node.as_str())
        .expect("the node is listed")
        .clone();
    let info = &n["Info"]["ComputeNodeInfo"];
    let (max, free) = (&info["MaxCapacity"], &info["AvailableCapacity"]);
    assert_eq!(
        free["CPU"].as_f64().unwrap(),
        max["CPU"].as_f64().unwrap() - 1.0,
        "{info}"
    );
    assert_eq!(
        free["Memory"].as_u64().unwrap(),
        max["Memory"].as_u64().unwrap() - (1 << 30),
        "{info}"
    );
    assert_eq!(info["RunningExecutions"], 1, "{info}");
    let table = String::from_utf8_lossy(&shoal(port, &["node", "list"]).stdout).to_string();
    let row = table
        .lines()
        .find(|l| l.contains(node.as_str()))
        .expect("the node has a row")
        .to_string();
    let cpu = |v: &serde_json::Value| format_cpu(v["CPU"].as_f64().unwrap());
    assert!(
        row.contains(&format!("{} / {}", cpu(free), cpu(max))),
        "the table shows live free/total CPU: {row}"
    );

    let before = history(port, &job);
    assert!(
        !before.iter().any(|h| h.event.message.contains("completed")),
        "the job must still be running when the orchestrator is killed: {before:?}"
    );
    fleet.orchestrator.kill9();
    fleet.restart_orchestrator();
    eventually("agents to reconnect", || connected_nodes(port) == 2);
    eventually("the job to complete", || {
        job_state(port, &job) == "Completed"
    });

    let after = history(port, &job);
    assert!(
        after.len() > before.len(),
        "completion was added to the history"
    );
    for (old, new) in before.iter().zip(&after) {
        assert_eq!(
            (old.seq_num, &old.event.message),
            (new.seq_num, &new.event.message),
            "history from before the kill is intact"
        );
    }
    let execs = executions(port, &job);
    assert_eq!(execs.len(), 1, "the running execution was not re-placed");
    assert_eq!(
        execs[0].run_output.as_ref().map(|o| o.stdout.as_str()),
        Some("slept\n")
    );

    // Finished work frees its reservation.
    let nodes = json(port, &["node", "list"]);
    for n in nodes.as_array().unwrap() {
        let info = &n["Info"]["ComputeNodeInfo"];
        assert_eq!(info["AvailableCapacity"], info["MaxCapacity"], "{info}");
    }
}

/// An orchestrator (with API auth) and one exec-enabled agent `n-log`, for the log tests.
struct LogFleet {
    dir: tempfile::TempDir,
    port: u16,
    env: [(&'static str, String); 1],
    agent: Proc,
    _orchestrator: Proc,
}

impl LogFleet {
    fn start(agent_args: &[&str]) -> LogFleet {
        let dir = tempfile::tempdir().unwrap();
        let port = free_port();
        let o = dir.path().join("o");
        let orchestrator = spawn(
            &[
                "serve",
                "--orchestrator",
                "--api-port",
                &port.to_string(),
                "--token",
                "t",
            ],
            &o,
        );
        let env = [("SHOAL_API_KEY", admin_key(&o))];
        let url = format!("ws://127.0.0.1:{port}");
        let mut args = vec![
            "serve",
            "--compute",
            "--orchestrators",
            &url,
            "--token",
            "t",
            "--name",
            "n-log",
            "--enable-exec",
        ];
        args.extend_from_slice(agent_args);
        let agent = spawn(&args, &dir.path().join("n-log"));
        let fleet = LogFleet {
            dir,
            port,
            env,
            agent,
            _orchestrator: orchestrator,
        };
        eventually("the agent to connect", || fleet.connected() == 1);
        fleet
    }

    fn run(&self, args: &[&str]) -> std::process::Output {
        shoal_env(self.port, args, &self.env)
    }

    fn connected(&self) -> usize {
        connected_nodes_env(self.port, &self.env)
    }

    /// Submits an exec job running `command` with `arguments`, returning its id.
    fn submit_exec(&self, command: &str, arguments: &str, wait: bool) -> String {
        let job = self.dir.path().join("job.yaml");
        std::fs::write(
            &job,
            format!(
                "Name: logged\nType: batch\nTasks:\n  - Name: main\n    Engine:\n      Type: exec\n      \
                 Params:\n        Command: {command}\n        Arguments: {arguments}\n"
            ),
        )
        .unwrap();
        let wait = if wait { "--wait=true" } else { "--wait=false" };
        let out = self.run(&["job", "run", job.to_str().unwrap(), wait, "--id-only"]);
        assert!(out.status.success(), "{}", text(&out));
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }

    /// Kills the agent with SIGKILL, deletes its node, and returns what `job logs` then
    /// prints (the orchestrator's copy, as the node is gone).
    fn logs_once_the_node_is_killed_and_deleted(&mut self, id: &str) -> String {
        self.agent.kill9();
        eventually("the agent to disconnect", || self.connected() == 0);
        let out = self.run(&["node", "delete", "n-log"]);
        assert!(out.status.success(), "{}", text(&out));
        let kept = self.run(&["job", "logs", id]);
        assert!(kept.status.success(), "{}", text(&kept));
        String::from_utf8_lossy(&kept.stdout).into_owned()
    }
}

/// LG1: a job's logs outlive its node. The node ships each execution's log when it ends; after
/// the node is killed and deleted, `shoal job logs` prints every line from the orchestrator's
/// copy, in order.
#[test]
fn a_jobs_logs_are_kept_after_its_node_is_killed_and_deleted() {
    let mut fleet = LogFleet::start(&["--exec-allow", "/usr/bin/seq"]);
    let id = fleet.submit_exec("/usr/bin/seq", "['1', '1000']", true);
    let want: String = (1..=1000).map(|i| format!("{i}\n")).collect();
    let live = fleet.run(&["job", "logs", &id]);
    assert_eq!(
        String::from_utf8_lossy(&live.stdout),
        want,
        "{}",
        text(&live)
    );

    assert_eq!(
        fleet.logs_once_the_node_is_killed_and_deleted(&id),
        want,
        "every line, in order, from the orchestrator's copy"
    );
}

/// A running execution's log reaches the orchestrator while it runs (every
/// `--log-ship-interval`), so a node killed in the middle of a long job loses none of what
/// it printed: `job logs --kept` shows the lines before the execution ends, and after the
/// node is killed and deleted `job logs` still prints them.
#[test]
fn a_running_executions_log_is_shipped_while_it_runs_and_survives_a_kill() {
    let mut fleet = LogFleet::start(&["--exec-allow", "/bin/sh", "--log-ship-interval", "200ms"]);
    let before = fleet.run(&["job", "logs", "--kept", "no-such-job"]);
    assert!(!before.status.success(), "an unknown job is an error");

    let id = fleet.submit_exec("/bin/sh", "['-c', 'seq 1 300; exec sleep 600']", false);
    let want: String = (1..=300).map(|i| format!("{i}\n")).collect();
    eventually("the running execution's lines in the kept copy", || {
        let kept = fleet.run(&["job", "logs", &id, "--kept"]);
        kept.status.success() && String::from_utf8_lossy(&kept.stdout) == want
    });
    let describe = fleet.run(&["job", "describe", &id, "--output", "json"]);
    let view: serde_json::Value = serde_json::from_slice(&describe.stdout).expect("describe JSON");
    assert_eq!(
        view["Job"]["State"]["StateType"], "Running",
        "the lines came while the job still ran"
    );

    assert_eq!(
        fleet.logs_once_the_node_is_killed_and_deleted(&id),
        want,
        "every line printed before the kill, once and in order"
    );
}
