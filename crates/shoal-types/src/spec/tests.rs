//! Behaviour of the whole reading pipeline and of each validation rule.

use super::*;

const MINIMAL: &str = "Type: batch\nTasks:\n  - Name: main\n    Engine:\n      Type: docker\n      Params:\n        Image: ubuntu\n";

fn messages(err: SpecError) -> Vec<String> {
    match err {
        SpecError::Invalid(errs) => errs.iter().map(ToString::to_string).collect(),
        SpecError::Syntax(s) => vec![s],
    }
}

fn parse_err(text: &str) -> Vec<String> {
    messages(parse_job(text).unwrap_err())
}

/// Parses `extra` appended to a minimal valid task and returns the full validation's errors.
fn task_errors(task_yaml: &str) -> Vec<String> {
    let text = format!("{MINIMAL}{task_yaml}");
    let job = read_job(&text).unwrap_or_else(|e| panic!("{e}"));
    validate(&job).iter().map(ToString::to_string).collect()
}

#[test]
fn lower_case_keys_read_like_pascal_case() {
    let lower = "type: batch\ncount: 2\ntasks:\n  - name: t\n    engine:\n      type: docker\n      params: {Image: x}\n";
    let upper = "Type: batch\nCount: 2\nTasks:\n  - Name: t\n    Engine:\n      Type: docker\n      Params: {Image: x}\n";
    assert_eq!(parse_job(lower).unwrap(), parse_job(upper).unwrap());
}

#[test]
fn json_input_is_read_too() {
    let json = r#"{"Type":"batch","Tasks":[{"Name":"main","Engine":{"Type":"docker","Params":{"Image":"ubuntu"}}}]}"#;
    assert_eq!(parse_job(json).unwrap(), parse_job(MINIMAL).unwrap());
    let tabbed = "{\n\t\"Type\": \"ops\",\n\t\"Tasks\": [{\"Engine\": {\"Type\": \"noop\"}}]\n}";
    assert_eq!(parse_job(tabbed).unwrap().job_type, JobType::Ops);
}

#[test]
fn yaml_syntax_errors_give_line_and_column() {
    let err = parse_job("Type: batch\nTasks:\n  - Name: [unclosed\n").unwrap_err();
    let SpecError::Syntax(msg) = err else {
        panic!("expected a syntax error, got {err:?}")
    };
    assert!(
        msg.starts_with("line 4, column 1: did not find expected ',' or ']'"),
        "{msg}"
    );
    assert!(
        !msg.contains("at line 4 column 1"),
        "location given twice: {msg}"
    );
}

#[test]
fn syntax_error_in_an_unrendered_template_says_to_pass_variables() {
    let err = parse_job("Type: batch\ncount: {{.count}}\n  x: [\n")
        .unwrap_err()
        .to_string();
    assert!(err.contains("-V key=value"), "{err}");
}

#[test]
fn missing_type_is_reported() {
    let errs = parse_err("Tasks:\n  - Engine: {Type: docker}\n");
    assert_eq!(
        errs,
        ["Type: missing job type (one of batch, ops, daemon, service)"]
    );
}

#[test]
fn every_shape_error_is_reported_at_once() {
    let errs = parse_err("Coun: 1\nTasks:\n  - Engine: {Typ: docker}\n");
    assert_eq!(
        errs,
        [
            "Coun: unknown field (did you mean Count?)",
            "Tasks[0].Engine.Typ: unknown field (did you mean Type?)",
            "Type: missing job type (one of batch, ops, daemon, service)",
        ]
    );
}

#[test]
fn count_defaults_to_one_for_batch_and_zero_for_ops() {
    assert_eq!(parse_job(MINIMAL).unwrap().count, 1);
    let explicit_zero = MINIMAL.replace("Type: batch\n", "Type: batch\nCount: 0\n");
    assert_eq!(parse_job(&explicit_zero).unwrap().count, 0);
    let ops = MINIMAL.replace("batch", "ops");
    assert_eq!(parse_job(&ops).unwrap().count, 0);
}

#[test]
fn ops_and_daemon_jobs_reject_count_above_one() {
    let errs = parse_err(&MINIMAL.replace("Type: batch\n", "Type: daemon\nCount: 3\n"));
    assert_eq!(errs.len(), 1);
    assert!(
        errs[0].starts_with("Count: daemon jobs run once on every matching node"),
        "{errs:?}"
    );
    let one = MINIMAL.replace("Type: batch\n", "Type: ops\nCount: 1\n");
    assert_eq!(parse_job(&one).unwrap().count, 0);
}

#[test]
fn system_keys_are_ignored_on_submit() {
    let text = format!(
        "ID: j-123\nState: {{StateType: Running}}\nVersion: 4\nRevision: 9\nCreateTime: 5\n{MINIMAL}"
    );
    let job = parse_job(&text).unwrap();
    assert_eq!(
        (job.id.as_str(), job.version, job.revision, job.create_time),
        ("", 0, 0, 0)
    );
    assert_eq!(job.state.state_type, JobStateType::Undefined);
}

#[test]
fn numeric_resources_become_text() {
    let job = parse_job(&format!(
        "{MINIMAL}    Resources: {{CPU: 6, Memory: 0.5, GPU: 1}}\n"
    ))
    .unwrap();
    assert_eq!(
        (
            job.tasks[0].resources.cpu.as_str(),
            job.tasks[0].resources.gpu.as_str()
        ),
        ("6", "1")
    );
    let half = parse_job(&format!("{MINIMAL}    Resources: {{cpu: 0.5}}\n")).unwrap();
    assert_eq!(half.tasks[0].resources.cpu, "0.5");
}

#[test]
fn unknown_engine_passes_submission_but_not_full_validation() {
    let text = MINIMAL.replace("Type: docker", "Type: flibble");
    let job = parse_job(&text).expect("the orchestrator reports unknown engines at placement");
    let errs: Vec<String> = validate(&job).iter().map(ToString::to_string).collect();
    assert_eq!(
        errs,
        [
            "Tasks[0].Engine.Type: unknown engine \"flibble\" (known: wasm, docker, exec, query, noop)"
        ]
    );
}

#[test]
fn missing_engine_is_reported_with_an_example() {
    let errs = parse_err("Type: batch\nTasks:\n  - Name: main\n");
    assert_eq!(errs.len(), 1);
    assert!(
        errs[0].starts_with("Tasks[0].Engine: missing; say what runs the task"),
        "{errs:?}"
    );
}

#[test]
fn legacy_pre_v1_specs_are_rejected_with_directions() {
    let errs = parse_err("Job:\n  APIVersion: V1beta1\n  Spec:\n    Engine: Docker\n");
    assert_eq!(errs.len(), 1);
    assert!(
        errs[0].contains("pre-v1 job spec") && errs[0].contains("Type: batch"),
        "{errs:?}"
    );
    assert!(parse_err("APIVersion: V1beta1\nSpec: {}\n")[0].contains("pre-v1"));
}

#[test]
fn empty_or_scalar_documents_are_rejected() {
    assert_eq!(
        parse_err("# only a comment\n"),
        ["the spec is empty; a job needs at least Type and Tasks"]
    );
    assert!(parse_err("- a\n- b\n")[0].contains("expected a mapping of job fields"));
}

#[test]
fn input_sources_need_known_type_and_unique_target_and_alias() {
    let errs = task_errors(
        "    InputSources:\n      - {Target: /a, Alias: x, Source: {Type: InvalidType}}\n      - {Target: /a, Alias: x, Source: {Type: s3}}\n      - {Source: {Type: urlDownload}}\n",
    );
    assert_eq!(
        errs,
        [
            "Tasks[0].InputSources[0].Source.Type: unknown input source type \"InvalidType\" (known: urlDownload, s3, localDirectory, local, inline, ipfs, noop)",
            "Tasks[0].InputSources[1].Target: \"/a\" is the target of another input; each input needs its own",
            "Tasks[0].InputSources[1].Alias: \"x\" is the alias of another input; aliases must be unique",
            "Tasks[0].InputSources[2].Target: missing target; give the path inside the task where the data appears",
        ]
    );
}

#[test]
fn ipfs_inputs_parse_for_nodes_to_refuse() {
    assert!(
        task_errors(
            "    InputSources:\n      - {Target: /d, Source: {Type: ipfs, Params: {CID: Qm}}}\n"
        )
        .is_empty()
    );
}

#[test]
fn result_paths_need_unique_names_and_absolute_unique_paths() {
    let errs = task_errors(
        "    Publisher: {Type: local}\n    ResultPaths:\n      - {Name: out, Path: out}\n      - {Name: out, Path: /o}\n      - {Name: b, Path: /o}\n",
    );
    assert_eq!(
        errs,
        [
            "Tasks[0].ResultPaths[0].Path: \"out\" must be an absolute path (start with /)",
            "Tasks[0].ResultPaths[1].Name: \"out\" names another result path; names must be unique",
            "Tasks[0].ResultPaths[2].Path: \"/o\" is listed twice; each result path must be unique",
        ]
    );
}

#[test]
fn result_paths_need_a_publisher_in_full_validation_only() {
    let text = format!("{MINIMAL}    ResultPaths:\n      - {{Name: out, Path: /out}}\n");
    let job = parse_job(&text).expect("the server may add a default publisher");
    let errs = validate(&job);
    assert_eq!(errs.len(), 1);
    assert_eq!(errs[0].path, "Tasks[0].Publisher");
}

#[test]
fn unknown_publisher_is_rejected_and_empty_means_none() {
    assert!(task_errors("    Publisher: {Type: \"\"}\n").is_empty());
    let errs = task_errors("    Publisher: {Type: dropbox}\n");
    assert_eq!(
        errs,
        [
            "Tasks[0].Publisher.Type: unknown publisher \"dropbox\" (known: local, s3, s3managed, ipfs, noop)"
        ]
    );
}

#[test]
fn env_names_are_upper_case_and_not_reserved() {
    let errs =
        task_errors("    Env: {lower: x, BACALHAU_JOB_ID: y, SHOAL_X: z, GOOD_1: \"\", _OK: v}\n");
    assert_eq!(errs.len(), 4, "{errs:?}");
    assert!(errs.iter().any(|e| e.starts_with("Tasks[0].Env.lower: environment variable names use upper-case")));
    assert!(
        errs.iter()
            .any(|e| e.starts_with("Tasks[0].Env.BACALHAU_JOB_ID: names starting with BACALHAU_"))
    );
    assert!(
        errs.iter()
            .any(|e| e.starts_with("Tasks[0].Env.SHOAL_X: names starting with"))
    );
    assert!(
        errs.iter()
            .any(|e| e.starts_with("Tasks[0].Env.GOOD_1: empty value"))
    );
}

#[test]
fn timeouts_must_fit_in_the_total() {
    let errs = task_errors(
        "    Timeouts: {ExecutionTimeout: 200, QueueTimeout: 200, TotalTimeout: 300}\n",
    );
    assert_eq!(errs.len(), 1);
    assert!(errs[0].starts_with(
        "Tasks[0].Timeouts: ExecutionTimeout (200) + QueueTimeout (200) exceed TotalTimeout (300)"
    ));
    assert!(task_errors("    Timeouts: {QueueTimeout: 1800}\n").is_empty());
}

#[test]
fn network_domains_need_http_and_ports_need_host_full_or_bridge() {
    let errs = task_errors("    Network: {Type: Full, Domains: [example.com]}\n");
    assert_eq!(
        errs,
        [
            "Tasks[0].Network.Domains: domains only apply to Type: HTTP; set Type: HTTP or remove Domains"
        ]
    );
    let errs = task_errors("    Network: {Type: None, Ports: [{Name: http, Static: 8080}]}\n");
    assert_eq!(
        errs,
        [
            "Tasks[0].Network.Ports: ports need Type: Host, Full or Bridge; set one of them or remove Ports"
        ]
    );
    assert!(
        task_errors(
            "    network: {type: bridge, ports: [{name: http, static: 9090, target: 80}]}\n"
        )
        .is_empty()
    );
    let errs = task_errors(
        "    Network: {Type: Host, Ports: [{Name: web-ui, Static: 80, Target: 8080}]}\n",
    );
    assert_eq!(errs.len(), 3, "{errs:?}");
}

#[test]
fn constraints_are_checked_with_the_selector_rules() {
    let text = format!(
        "Constraints:\n  - {{Key: region, Operator: in}}\n  - {{Key: a, Operator: '~', Values: [x]}}\n{MINIMAL}"
    );
    let errs = parse_err(&text);
    assert_eq!(errs.len(), 2, "{errs:?}");
    assert!(
        errs[0].starts_with("Constraints[0].Operator: operator \"in\" takes at least one value"),
        "{errs:?}"
    );
    assert!(
        errs[1].starts_with("Constraints[1].Operator: unknown operator"),
        "{errs:?}"
    );
}

#[test]
fn resources_that_cannot_be_read_are_reported_with_their_field() {
    let errs = task_errors("    Resources: {Memory: lots}\n");
    assert_eq!(errs.len(), 1);
    assert!(
        errs[0].starts_with("Tasks[0].Resources.Memory: Memory: cannot read \"lots\""),
        "{errs:?}"
    );
}

#[test]
fn legacy_wasm_parameters_become_the_v1_shape_in_a_parsed_job() {
    let text = "Type: batch\nTasks:\n  - Name: main\n    Engine:\n      Type: wasm\n      Params:\n        EntryModule:\n          Source: {Type: inline, Params: {URL: \"data:,x\"}}\n        Entrypoint: _start\n";
    let job = parse_job(text).unwrap();
    assert_eq!(
        job.tasks[0].engine.str_param("EntryModule"),
        Some(LEGACY_ENTRY_TARGET)
    );
    assert_eq!(job.tasks[0].input_sources[0].target, LEGACY_ENTRY_TARGET);
    assert!(job.tasks[0].input_sources[0].source.is("inline"));
}

#[test]
fn yaml_merge_keys_are_applied() {
    let text = "x-res: &r {CPU: 1}\n";
    // A merge key in a task expands before the schema sees it; the anchor holder itself is
    // still an unknown top-level key, which is what a user of x- keys would expect to fix.
    assert!(parse_err(text)[0].starts_with("x-res: unknown field"));
    let text = "Type: batch\nTasks:\n  - <<: {Name: main}\n    Engine: {Type: noop}\n";
    assert_eq!(parse_job(text).unwrap().tasks[0].name, "main");
}

const ROLLOUT_EXAMPLE: &str = include_str!("../../../../examples/rollout-restart-nginx.yaml");

#[test]
fn a_rollout_block_reads_into_typed_settings() {
    use crate::rollout::*;
    use crate::time::GoDuration;
    let job = parse_job(ROLLOUT_EXAMPLE).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        job.rollout,
        Some(Rollout {
            batch: Amount::Percent(25),
            mode: RolloutMode::Waves,
            canary: Amount::Count(1),
            auto_promote: true,
            pause: GoDuration::from_secs(30),
            max_failures: Amount::Percent(2),
            unreachable: UnreachablePolicy::Skip,
            on_failure: OnFailure::Stop,
            health: Health::default(),
        })
    );
    assert!(validate(&job).is_empty(), "{:?}", validate(&job));
}

#[test]
fn a_rollout_job_file_round_trips_through_yaml_and_json() {
    let job = parse_job(ROLLOUT_EXAMPLE).unwrap_or_else(|e| panic!("{e}"));
    let yaml = serde_yaml::to_string(&job).unwrap();
    assert!(yaml.contains("Rollout:"), "{yaml}");
    assert!(yaml.contains("Batch: 25%"), "{yaml}");
    assert_eq!(
        parse_job(&yaml).unwrap_or_else(|e| panic!("{e}\n{yaml}")),
        job
    );
    let json = serde_json::to_string(&job).unwrap();
    assert_eq!(parse_job(&json).unwrap(), job);
}

#[test]
fn a_job_without_rollout_writes_no_rollout_key() {
    let job = parse_job(MINIMAL).unwrap();
    assert_eq!(job.rollout, None);
    let json = serde_json::to_value(&job).unwrap();
    assert!(json.get("Rollout").is_none(), "{json}");
}

#[test]
fn rollout_keys_and_names_are_matched_ignoring_case() {
    let text = "type: daemon\nrollout:\n  batch: 3\n  mode: WINDOW\n  unreachable: count-as-failure\n  onfailure: Revert\n  autopromote: \"true\"\n  canary: 10%\n  maxfailures: \"4\"\n  health: {type: HTTP, command: \"http://localhost/h\", deadline: 90}\ntasks:\n  - engine: {type: docker, params: {Image: nginx}}\n";
    let r = parse_job(text)
        .unwrap_or_else(|e| panic!("{e}"))
        .rollout
        .unwrap();
    use crate::rollout::*;
    assert_eq!(r.batch, Amount::Count(3));
    assert_eq!(r.mode, RolloutMode::Window);
    assert_eq!(r.unreachable, UnreachablePolicy::CountAsFailure);
    assert_eq!(r.on_failure, OnFailure::Revert);
    assert!(r.auto_promote);
    assert_eq!(r.canary, Amount::Percent(10));
    assert_eq!(r.max_failures, Amount::Count(4));
    assert_eq!(r.health.kind, HealthType::Http);
    assert_eq!(r.health.deadline, crate::time::GoDuration::from_secs(90));
}

#[test]
fn malformed_rollout_values_are_reported_with_their_path() {
    // Keys are walked in sorted order, so the errors come sorted by path.
    let text = "Type: ops\nRollout:\n  Batch: lots\n  Canary: 150%\n  MaxFailures: -1\n  Mode: sliding\n  Pause: soon\n  AutoPromote: maybe\n  Health: {Type: tcp, Deadlin: 5m}\n  Bach: 1\nTasks:\n  - Engine: {Type: noop}\n";
    assert_eq!(
        parse_err(text),
        [
            "Rollout.AutoPromote: expected true or false, got \"maybe\"",
            "Rollout.Bach: unknown field (did you mean Batch?)",
            "Rollout.Batch: expected a number of nodes or a percentage such as 25%, got \"lots\"",
            "Rollout.Canary: \"150%\" is over 100%; a percentage is of the targeted nodes",
            "Rollout.Health.Deadlin: unknown field (did you mean Deadline?)",
            "Rollout.Health.Type: unknown value \"tcp\" (one of exit_code, command, http)",
            "Rollout.MaxFailures: expected a whole number ≥ 0, got -1",
            "Rollout.Mode: unknown value \"sliding\" (one of waves, window)",
            "Rollout.Pause: \"soon\" is not a duration; use e.g. 90s, 30m or 2h",
        ]
    );
}

#[test]
fn a_batch_job_with_a_rollout_is_refused_at_submission() {
    let errs = parse_err(&format!("{MINIMAL}Rollout: {{Batch: 2}}\n"));
    assert_eq!(errs.len(), 1, "{errs:?}");
    assert!(
        errs[0].starts_with("Rollout: batch jobs cannot have a Rollout"),
        "{errs:?}"
    );
}

#[test]
fn a_zero_percent_batch_is_refused_with_the_fix() {
    let text = "Type: service\nRollout: {Batch: 0%}\nTasks:\n  - Engine: {Type: docker, Params: {Image: x}}\n";
    assert_eq!(
        parse_err(text),
        ["Rollout.Batch: \"0%\" must be 1–100%; write e.g. Batch: 25%, or a number of nodes"]
    );
}

#[test]
fn every_rollout_choice_reads_into_its_enum() {
    use crate::rollout::*;
    for m in schema::ROLLOUT_MODES {
        serde_json::from_value::<RolloutMode>((*m).into()).unwrap();
    }
    for u in schema::UNREACHABLE_POLICIES {
        serde_json::from_value::<UnreachablePolicy>((*u).into()).unwrap();
    }
    for o in schema::ON_FAILURE {
        serde_json::from_value::<OnFailure>((*o).into()).unwrap();
    }
    for h in schema::HEALTH_TYPES {
        serde_json::from_value::<HealthType>((*h).into()).unwrap();
    }
}

const CRON_EXAMPLE: &str = include_str!("../../../../examples/cron-disk-check.yaml");

#[test]
fn the_cron_example_reads_into_a_schedule() {
    use crate::schedule::*;
    let job = parse_job(CRON_EXAMPLE).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        job.schedule,
        Some(Schedule {
            time_zone: "Europe/Berlin".into(),
            starting_deadline: crate::time::GoDuration::from_secs(600),
            ..Schedule::every("*/15 * * * *")
        })
    );
    let yaml = serde_yaml::to_string(&job).unwrap();
    assert_eq!(parse_job(&yaml).unwrap(), job);
}

#[test]
fn schedule_keys_and_kubernetes_names_are_read_ignoring_case() {
    use crate::schedule::*;
    let text = format!(
        "{MINIMAL}schedule: {{cron: '@hourly', concurrencyPolicy: Forbid, catchup: ALL, maxcatchup: '3', suspend: 'true'}}\n"
    );
    let s = parse_job(&text)
        .unwrap_or_else(|e| panic!("{e}"))
        .schedule
        .unwrap();
    assert_eq!(s.overlap, Overlap::Skip);
    assert_eq!(s.catch_up, CatchUp::All);
    assert_eq!(s.max_catch_up, 3);
    assert!(s.suspend);
    let replace = format!("{MINIMAL}Schedule: {{Cron: '@hourly', ConcurrencyPolicy: Replace}}\n");
    assert_eq!(
        parse_job(&replace).unwrap().schedule.unwrap().overlap,
        Overlap::Replace
    );
}

#[test]
fn malformed_schedule_values_are_reported_with_their_path() {
    let text = format!(
        "{MINIMAL}Schedule:\n  Cron: '*/5 * * *'\n  TimeZone: Mars/Olympus\n  Overlap: sometimes\n  CatchUp: most\n  StartingDeadline: soon\n  Cronn: x\n"
    );
    assert_eq!(
        parse_err(&text),
        [
            "Schedule.CatchUp: unknown value \"most\" (one of none, last, all)",
            "Schedule.Cronn: unknown field (did you mean Cron?)",
            "Schedule.Overlap: unknown value \"sometimes\" (one of skip, allow, replace, forbid)",
            "Schedule.StartingDeadline: \"soon\" is not a duration; use e.g. 90s, 30m or 2h",
        ]
    );
    let text = format!("{MINIMAL}Schedule:\n  Cron: '*/5 * * *'\n  TimeZone: Mars/Olympus\n");
    let errs = parse_err(&text);
    assert_eq!(errs.len(), 2, "{errs:?}");
    assert!(
        errs[0].starts_with("Schedule.Cron: \"*/5 * * *\" has 4 fields"),
        "{errs:?}"
    );
    assert!(
        errs[1].starts_with("Schedule.TimeZone: unknown time zone \"Mars/Olympus\""),
        "{errs:?}"
    );
    let both =
        format!("{MINIMAL}Schedule: {{Cron: '@daily', Overlap: skip, ConcurrencyPolicy: allow}}\n");
    assert_eq!(
        parse_err(&both),
        [
            "Schedule.ConcurrencyPolicy: given together with Overlap, which it is another name for; keep one"
        ]
    );
    assert_eq!(
        parse_err(&format!("{MINIMAL}Schedule: {{TimeZone: UTC}}\n")),
        [
            "Schedule.Cron: missing; give the cron pattern, e.g. Cron: \"*/5 * * * *\" (or 6 fields with seconds first)"
        ]
    );
}

#[test]
fn a_daemon_job_with_a_schedule_is_refused_at_submission() {
    let text = "Type: daemon\nSchedule: {Cron: '@daily'}\nTasks:\n  - Engine: {Type: docker, Params: {Image: x}}\n";
    let errs = parse_err(text);
    assert_eq!(errs.len(), 1, "{errs:?}");
    assert!(
        errs[0].starts_with("Schedule: daemon jobs cannot have a Schedule"),
        "{errs:?}"
    );
}

#[test]
fn every_schedule_choice_reads_into_its_enum() {
    use crate::schedule::*;
    for o in schema::OVERLAPS {
        serde_json::from_value::<Overlap>((*o).into()).unwrap();
    }
    for c in schema::CATCH_UPS {
        serde_json::from_value::<CatchUp>((*c).into()).unwrap();
    }
}
