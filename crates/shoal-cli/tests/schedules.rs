//! Scheduled jobs end to end: the real `shoal` binary as a devstack, a job with a per-second
//! `Schedule`, the commands an operator uses on it, and a `kill -9` of the orchestrator right
//! after a tick's run was created (SC3: no tick runs twice after the restart).

mod common;
use common::*;

const EVERY_SECOND: &str = "Name: ticker
Type: ops
Schedule:
  Cron: \"*/1 * * * * *\"
  CatchUp: none
Tasks:
  - Name: main
    Engine: {Type: noop}
";

/// The names of the runs of `parent`, as `job list --parent` gives them.
fn runs(d: &Devstack, parent: &str) -> Vec<String> {
    let listed = json(
        d.port,
        &["job", "list", "--parent", parent, "--limit", "1000"],
    );
    let mut names: Vec<String> = listed
        .as_array()
        .cloned()
        .unwrap_or_default()
        .iter()
        .filter_map(|j| j["Name"].as_str().map(str::to_string))
        .collect();
    names.sort();
    names
}

#[test]
fn a_scheduled_job_makes_one_run_per_tick_and_a_kill_during_a_tick_runs_none_twice() {
    let mut d = Devstack::start(1, &[]);
    let out = d.run_file("ticker.yaml", EVERY_SECOND);
    assert!(out.status.success(), "{}", text(&out));

    let scheduled =
        String::from_utf8_lossy(&d.shoal(&["job", "list", "--scheduled"]).stdout).into_owned();
    assert!(
        scheduled.contains("ticker") && scheduled.contains("*/1 * * * * *"),
        "{scheduled}"
    );
    eventually("two runs", || runs(&d, "ticker").len() >= 2);
    for name in runs(&d, "ticker") {
        assert!(
            name.starts_with("ticker@20"),
            "runs are named after their tick: {name}"
        );
    }

    // Kill the orchestrator as soon as a new run appears: within a tick's transaction or just
    // after it.
    let before = runs(&d, "ticker").len();
    eventually("a new run", || runs(&d, "ticker").len() > before);
    d.restart();
    eventually("runs after the restart", || {
        runs(&d, "ticker").len() > before + 2
    });

    let out = d.shoal(&["job", "stop", "ticker"]);
    assert!(out.status.success(), "{}", text(&out));
    let names = runs(&d, "ticker");
    let mut unique = names.clone();
    unique.dedup();
    assert_eq!(names, unique, "no tick ran twice");

    let child = d.shoal(&["job", "run-now", "ticker"]);
    let said = text(&child);
    assert!(!said.is_empty(), "run-now answers: {said}");
    let described =
        String::from_utf8_lossy(&d.shoal(&["job", "describe", "ticker"]).stdout).into_owned();
    assert!(described.contains("Schedule"), "{described}");
}

#[test]
fn a_malformed_schedule_is_refused_naming_the_field_and_the_fix() {
    let d = Devstack::start(1, &[]);
    let bad = EVERY_SECOND.replace("*/1 * * * * *", "* * *");
    let out = d.run_file("bad.yaml", &bad);
    assert!(!out.status.success());
    let said = text(&out);
    assert!(
        said.contains("Schedule.Cron") && said.contains("has 3 fields"),
        "{said}"
    );
    let zone = EVERY_SECOND.replace("CatchUp: none", "TimeZone: Mars/Olympus");
    let out = d.run_file("zone.yaml", &zone);
    assert!(!out.status.success());
    assert!(text(&out).contains("Schedule.TimeZone"), "{}", text(&out));
}
