//! Every job file of the shared compatibility corpus gives the outcome its README states.
//!
//! The corpus lives outside the repository (`../shared/corpus`); without it these tests pass
//! without checking anything and say so on stderr.

use std::collections::BTreeMap;
use std::path::PathBuf;

use shoal_types::spec::{self, LEGACY_ENTRY_TARGET};
use shoal_types::{JobType, template};

/// What a corpus file must do.
enum Expect {
    /// RUN and ENV files: parse, and pass full validation.
    Valid,
    /// An engine no node has: accepted on submit (placement reports it), rejected by `validate`.
    UnknownEngine(&'static str),
    /// Rejected while reading, with every fragment in the message.
    Rejected(&'static [&'static str]),
    /// A Go template: fails to render without these variables, renders with them, then gives
    /// the inner outcome.
    Template(&'static [(&'static str, &'static str)], Box<Expect>),
}

use Expect::*;

fn tmpl(vars: &'static [(&'static str, &'static str)], then: Expect) -> Expect {
    Template(vars, Box::new(then))
}

fn expectations() -> BTreeMap<&'static str, Expect> {
    BTreeMap::from([
        (
            "bacalhau__schemas_test_vectors_invalid-input-source",
            Rejected(&["InputSources[0].Source.Type", "\"InvalidType\""]),
        ),
        ("bacalhau__test-integration_example-jobs_s3-job", Valid),
        ("bacalhau__test_integration_19-basic-daemon-job-v1", Valid),
        ("bacalhau__test_integration_19-basic-daemon-job-v2", Valid),
        ("bacalhau__test_integration_19-basic-hello-world-v1", Valid),
        ("bacalhau__test_integration_19-basic-hello-world-v2", Valid),
        ("bacalhau__test_integration_20-s3managed-publisher", Valid),
        ("bacalhau__test_integration_hello_world", Valid),
        ("bacalhau__test_integration_log_emitter", Valid),
        (
            "bacalhau__test_integration_unsupported_engine_type",
            UnknownEngine("vroomvroom"),
        ),
        (
            "bacalhau__testdata_jobs_custom-task-type",
            UnknownEngine("flibble"),
        ),
        ("bacalhau__testdata_jobs_docker-hello", Valid),
        (
            "bacalhau__testdata_jobs_docker-invalid",
            Rejected(&[
                "missing job type",
                "Coun: unknown field (did you mean Count?)",
            ]),
        ),
        ("bacalhau__testdata_jobs_docker-output", Valid),
        ("bacalhau__testdata_jobs_docker-s3", Valid),
        ("bacalhau__testdata_jobs_docker", Valid),
        ("bacalhau__testdata_jobs_nameless", Valid),
        ("bacalhau__testdata_jobs_noop", Valid),
        ("bacalhau__testdata_jobs_wasm", Valid),
        ("bacalhau__testdata_jobs_wasm_legacy", Valid),
        ("docs__guides_partitioning", Valid),
        ("docs__guides_queueing", Valid),
        ("docs__specifications_job_type_batch", Valid),
        (
            "docs__specifications_job_type_daemon",
            tmpl(
                &[
                    ("query", "SELECT 1"),
                    ("OpenSearchEndpoint", "http://os:9200"),
                    ("AccessLogBucket", "logs"),
                    ("AWSRegion", "us-east-1"),
                ],
                Valid,
            ),
        ),
        (
            "docs__specifications_job_type_ops",
            tmpl(&[("query", "SELECT 1")], Valid),
        ),
        ("docs__specifications_job_type_service", Valid),
        (
            "examples__distributed-datawarehouse_data-generator",
            tmpl(
                &[
                    ("Region", "us"),
                    ("Events", "3000"),
                    ("StartDate", "2024-01-01"),
                    ("EndDate", "2024-12-31"),
                    ("RotateInterval", "month"),
                ],
                Valid,
            ),
        ),
        (
            "examples__edge_wasm-sensors_deploy-eu-v1",
            tmpl(&[("count", "3")], Valid),
        ),
        (
            "examples__edge_wasm-sensors_helpers_dir-lister",
            tmpl(&[], Valid),
        ),
        ("examples__edge_wasm-sensors_helpers_env", Valid),
        (
            "examples__edge_wasm-sensors_sqs-proxy",
            tmpl(&[("queue_url", "https://sqs.example/q")], Valid),
        ),
        (
            "examples__log-orchestration_batch_api-usage",
            tmpl(
                &[
                    ("AccessLogBucket", "logs"),
                    ("AccessLogPrefix", "nginx/"),
                    ("AWSRegion", "us-east-1"),
                ],
                Valid,
            ),
        ),
        ("examples__log-orchestration_log-generator", Valid),
        ("examples__log-processing_queries_error-analysis", Valid),
        (
            "examples__model-inference_yolo_template-job-publish",
            tmpl(
                &[
                    ("model_url", "https://example.com/yolo.pt"),
                    ("input_bucket", "videos"),
                    ("classes", "0"),
                    ("model_name", "yolo.pt"),
                    ("adb_password", "pw"),
                ],
                Valid,
            ),
        ),
        (
            "examples__multi-sqlite_job_multizone",
            Rejected(&["pre-v1 job spec", "v1 job format"]),
        ),
        ("examples__queuing_job", Valid),
        ("examples__queuing_stress_job", Valid),
        (
            "examples__spot_demo_job",
            tmpl(&[("greeting", "hi"), ("name", "x")], Valid),
        ),
        (
            "examples__using-duckdb_download_data_job",
            tmpl(
                &[
                    ("filename", "data.csv"),
                    ("url_to_download", "https://example.com/data.csv"),
                ],
                Rejected(&["Tasks[0].Constraits: unknown field (did you mean Constraints?"]),
            ),
        ),
    ])
}

fn corpus_dir() -> Option<PathBuf> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/corpus/jobs");
    if dir.is_dir() {
        Some(dir)
    } else {
        eprintln!("corpus not found at {}; skipping", dir.display());
        None
    }
}

fn read(name: &str) -> Option<String> {
    let path = corpus_dir()?.join(format!("{name}.yaml"));
    Some(std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display())))
}

fn check(text: &str, expect: &Expect) -> Result<(), String> {
    match expect {
        Valid => {
            let job = spec::parse_job(text).map_err(|e| format!("does not parse:\n{e}"))?;
            let errs = spec::validate(&job);
            if !errs.is_empty() {
                return Err(format!("fails validation: {errs:?}"));
            }
        }
        UnknownEngine(engine) => {
            let job = spec::parse_job(text)
                .map_err(|e| format!("must be accepted for submission:\n{e}"))?;
            let errs = spec::validate(&job);
            let want = format!("unknown engine {engine:?}");
            if !errs
                .iter()
                .any(|e| e.path == "Tasks[0].Engine.Type" && e.message.starts_with(&want))
            {
                return Err(format!("validate must report {want}, got {errs:?}"));
            }
        }
        Rejected(fragments) => {
            let err = match spec::parse_job(text) {
                Ok(job) => return Err(format!("must be rejected, parsed as {job:?}")),
                Err(e) => e.to_string(),
            };
            if let Some(f) = fragments.iter().find(|f| !err.contains(**f)) {
                return Err(format!("error lacks {f:?}:\n{err}"));
            }
        }
        Template(vars, then) => {
            if !vars.is_empty() {
                let missing = template::render(text, &BTreeMap::new())
                    .map(|_| ())
                    .unwrap_err()
                    .to_string();
                if !missing.contains(vars[0].0) || !missing.contains("-V key=value") {
                    return Err(format!(
                        "render without -V must name the variables, got: {missing}"
                    ));
                }
            }
            let vars: BTreeMap<String, String> = vars
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect();
            let rendered =
                template::render(text, &vars).map_err(|e| format!("does not render: {e}"))?;
            if template::has_actions(&rendered) {
                return Err("actions left after rendering".into());
            }
            return check(&rendered, then);
        }
    }
    Ok(())
}

#[test]
fn every_corpus_job_file_gives_its_stated_outcome() {
    let Some(dir) = corpus_dir() else { return };
    let table = expectations();
    let mut failures = Vec::new();
    let mut seen = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        let Some(name) = path.file_stem().and_then(|s| s.to_str()) else {
            continue;
        };
        let Some(expect) = table.get(name) else {
            failures.push(format!(
                "{name}: no expectation; add it to the table in tests/corpus.rs"
            ));
            continue;
        };
        seen += 1;
        let text = std::fs::read_to_string(&path).unwrap();
        if let Err(e) = check(&text, expect) {
            failures.push(format!("{name}: {e}"));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
    assert_eq!(
        seen,
        table.len(),
        "some files named in the table are missing from the corpus"
    );
}

#[test]
fn corpus_details_survive_parsing() {
    let Some(hello) = read("bacalhau__testdata_jobs_docker-hello") else {
        return;
    };
    let job = spec::parse_job(&hello).unwrap();
    assert_eq!(
        (job.name.as_str(), job.tasks[0].name.as_str()),
        ("A Simple Docker Job", "My main task")
    );
    assert_eq!(
        job.tasks[0].engine.str_param("Image"),
        Some("busybox:1.37.0")
    );

    let nameless = spec::parse_job(&read("bacalhau__testdata_jobs_nameless").unwrap()).unwrap();
    assert_eq!(nameless.name, "", "the server names it after its id");
    assert_eq!(nameless.namespace, "default");

    let partitions = spec::parse_job(&read("docs__guides_partitioning").unwrap()).unwrap();
    assert_eq!(partitions.count, 3);
    let queued = spec::parse_job(&read("docs__guides_queueing").unwrap()).unwrap();
    assert_eq!(queued.tasks[0].timeouts.queue_timeout, 1800);

    let batch = spec::parse_job(&read("docs__specifications_job_type_batch").unwrap()).unwrap();
    assert_eq!((batch.priority, batch.count), (100, 2));
    assert_eq!(
        batch.meta.get("Job purpose").map(String::as_str),
        Some("Provide detailed example of the batch job")
    );
    let r = &batch.tasks[0].resources;
    assert_eq!(
        (
            r.cpu.as_str(),
            r.memory.as_str(),
            r.disk.as_str(),
            r.gpu.as_str()
        ),
        ("250m", "1Gb", "100mb", "0")
    );
    assert_eq!(batch.tasks[0].network.domains, ["example.com", "ghcr.io"]);

    let daemon =
        spec::parse_job(&read("bacalhau__test_integration_19-basic-daemon-job-v1").unwrap())
            .unwrap();
    assert_eq!((daemon.job_type, daemon.count), (JobType::Daemon, 0));
}

#[test]
fn legacy_wasm_file_reads_as_the_v1_wasm_file() {
    let (Some(legacy), Some(v1)) = (
        read("bacalhau__testdata_jobs_wasm_legacy"),
        read("bacalhau__testdata_jobs_wasm"),
    ) else {
        return;
    };
    let legacy = spec::parse_job(&legacy).unwrap();
    let v1 = spec::parse_job(&v1).unwrap();
    let (lt, vt) = (&legacy.tasks[0], &v1.tasks[0]);
    assert_eq!(
        lt.engine.str_param("EntryModule"),
        Some(LEGACY_ENTRY_TARGET)
    );
    assert_eq!(lt.input_sources.len(), 1);
    assert_eq!(lt.input_sources[0].target, LEGACY_ENTRY_TARGET);
    assert!(lt.input_sources[0].source.is("inline"));
    assert_eq!(
        lt.input_sources[0].source.param("URL"),
        vt.input_sources[0].source.param("URL"),
        "same module"
    );
}

#[test]
fn unrendered_template_fails_with_a_hint_to_pass_variables() {
    let Some(text) = read("docs__specifications_job_type_ops") else {
        return;
    };
    let err = spec::parse_job(&text).unwrap_err().to_string();
    assert!(err.contains("-V key=value"), "{err}");
}
