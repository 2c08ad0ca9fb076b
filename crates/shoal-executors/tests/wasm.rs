//! The `wasm` engine against real wasmtime, with modules written as WAT in `tests/fixtures`.
#![cfg(feature = "wasm")]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::{Value, json};
use shoal_executors::wasm::WasmExecutor;
use shoal_executors::{
    ExecutionRequest, Executor, ExecutorError, Exit, LogChunk, LogSink, PreparedInput, Stream,
};
use shoal_types::{JobType, Network, Resources, ResultPath, SpecConfig};
use tokio::sync::mpsc::UnboundedReceiver;
use tokio_util::sync::CancellationToken;

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

/// A request running `module` (a fixture file) staged as a file input at `/app/<module>`.
fn request(module: &Path, params: Value, results_dir: &Path) -> ExecutionRequest {
    let name = module.file_name().unwrap().to_str().unwrap();
    let mut engine = SpecConfig::of("wasm");
    engine.params = params.as_object().cloned().unwrap_or_default();
    engine
        .params
        .entry("EntryModule")
        .or_insert(json!(format!("/app/{name}")));
    ExecutionRequest {
        job_id: "j-test".into(),
        execution_id: "e-test".into(),
        job_type: JobType::Batch,
        engine,
        env: BTreeMap::new(),
        inputs: vec![PreparedInput {
            host_path: module.to_path_buf(),
            target: format!("/app/{name}"),
            read_write: false,
        }],
        results_dir: results_dir.to_path_buf(),
        result_paths: Vec::new(),
        resources: Resources::default(),
        network: Network::default(),
        timeout: None,
    }
}

async fn run(request: ExecutionRequest) -> (Result<Exit, ExecutorError>, Vec<LogChunk>) {
    let executor = WasmExecutor::new().unwrap();
    let (sink, mut rx) = LogSink::channel();
    let outcome = executor.run(request, sink, CancellationToken::new()).await;
    (outcome, drain(&mut rx))
}

fn drain(rx: &mut UnboundedReceiver<LogChunk>) -> Vec<LogChunk> {
    std::iter::from_fn(|| rx.try_recv().ok()).collect()
}

fn stdout(chunks: &[LogChunk]) -> String {
    chunks
        .iter()
        .filter(|c| c.stream == Stream::Stdout)
        .map(|c| c.text.as_str())
        .collect()
}

fn hello() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/hello.wat")
}

#[tokio::test]
async fn hello_world_prints_to_stdout_and_exits_zero() {
    let dir = tempfile::tempdir().unwrap();
    let (outcome, logs) = run(request(&hello(), json!({}), dir.path())).await;
    assert_eq!(outcome, Ok(Exit { code: 0 }));
    assert_eq!(stdout(&logs), "Hello, world!\n");
}

#[tokio::test]
async fn module_sees_its_parameters_and_the_task_environment() {
    let dir = tempfile::tempdir().unwrap();
    let mut req = request(
        &hello(),
        json!({"parameters": ["one", "two words"]}),
        dir.path(),
    );
    req.env
        .insert("BACALHAU_PARTITION_INDEX".into(), "2".into());
    req.env.insert("OTHER".into(), "x".into());
    let (outcome, logs) = run(req).await;
    assert_eq!(outcome, Ok(Exit { code: 0 }));
    assert_eq!(
        stdout(&logs),
        "Hello, world!\none\ntwo words\nBACALHAU_PARTITION_INDEX=2\n"
    );
}

#[tokio::test]
async fn output_is_streamed_while_the_module_runs() {
    let dir = tempfile::tempdir().unwrap();
    let executor = WasmExecutor::new().unwrap();
    let (sink, mut rx) = LogSink::channel();
    let cancel = CancellationToken::new();
    let req = request(&fixture("print_then_spin.wat"), json!({}), dir.path());
    let running = tokio::spawn(executor.run(req, sink, cancel.clone()));
    // The module never returns, so this line can only have come through while it ran.
    let first = rx.recv().await.unwrap();
    assert_eq!(
        first,
        LogChunk {
            stream: Stream::Stdout,
            text: "ready\n".into()
        }
    );
    cancel.cancel();
    assert_eq!(running.await.unwrap(), Err(ExecutorError::Cancelled));
}

#[tokio::test]
async fn cancelling_a_module_blocked_in_a_host_call_stops_it_with_cancelled() {
    let dir = tempfile::tempdir().unwrap();
    let executor = WasmExecutor::new().unwrap();
    let (sink, mut rx) = LogSink::channel();
    let cancel = CancellationToken::new();
    let req = request(&fixture("sleep_forever.wat"), json!({}), dir.path());
    let running = tokio::spawn(executor.run(req, sink, cancel.clone()));
    assert_eq!(rx.recv().await.unwrap().text, "sleeping\n");
    cancel.cancel();
    assert_eq!(running.await.unwrap(), Err(ExecutorError::Cancelled));
}

#[tokio::test]
async fn an_already_cancelled_execution_does_not_start() {
    let dir = tempfile::tempdir().unwrap();
    let executor = WasmExecutor::new().unwrap();
    let (sink, mut rx) = LogSink::channel();
    let cancel = CancellationToken::new();
    cancel.cancel();
    let outcome = executor
        .run(request(&hello(), json!({}), dir.path()), sink, cancel)
        .await;
    assert_eq!(outcome, Err(ExecutorError::Cancelled));
    assert!(drain(&mut rx).is_empty());
}

#[tokio::test]
async fn an_endless_loop_times_out_at_the_time_limit() {
    let dir = tempfile::tempdir().unwrap();
    let mut req = request(&fixture("print_then_spin.wat"), json!({}), dir.path());
    req.timeout = Some(Duration::from_secs(1));
    let (outcome, _) = run(req).await;
    assert_eq!(outcome, Err(ExecutorError::Timeout(Duration::from_secs(1))));
}

#[tokio::test]
async fn proc_exit_code_is_the_exit_code_and_stderr_is_captured() {
    let dir = tempfile::tempdir().unwrap();
    let (outcome, logs) = run(request(&fixture("exit_3.wat"), json!({}), dir.path())).await;
    assert_eq!(outcome, Ok(Exit { code: 3 }));
    assert_eq!(
        logs,
        [LogChunk {
            stream: Stream::Stderr,
            text: "failing with 3\n".into()
        }]
    );
}

#[tokio::test]
async fn growing_memory_past_the_limit_is_out_of_memory() {
    let dir = tempfile::tempdir().unwrap();
    let mut req = request(&fixture("grow_until_refused.wat"), json!({}), dir.path());
    req.resources.memory = 1 << 20;
    let (outcome, _) = run(req).await;
    assert_eq!(
        outcome,
        Err(ExecutorError::OutOfMemory {
            limit: "1 MiB".into()
        })
    );
}

#[tokio::test]
async fn a_trap_fails_with_a_user_error_naming_the_module_and_the_trap() {
    let dir = tempfile::tempdir().unwrap();
    let (outcome, _) = run(request(&fixture("trap.wat"), json!({}), dir.path())).await;
    let Err(ExecutorError::User { message }) = outcome else {
        panic!("{outcome:?}")
    };
    assert!(
        message.starts_with("wasm engine: entry module /app/trap.wat (_start) trapped"),
        "{message}"
    );
    assert!(message.contains("out of bounds memory access"), "{message}");
}

#[tokio::test]
async fn a_missing_entry_module_is_a_user_error_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let req = request(
        &hello(),
        json!({"EntryModule": "/app/missing.wasm"}),
        dir.path(),
    );
    let (outcome, _) = run(req).await;
    let Err(ExecutorError::User { message }) = outcome else {
        panic!("{outcome:?}")
    };
    assert!(
        message.contains("entry module /app/missing.wasm is not among the task's inputs"),
        "{message}"
    );
}

#[tokio::test]
async fn an_unreadable_staged_module_is_a_user_error_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let req = request(&dir.path().join("gone.wasm"), json!({}), dir.path());
    let (outcome, _) = run(req).await;
    let Err(ExecutorError::User { message }) = outcome else {
        panic!("{outcome:?}")
    };
    assert!(
        message.starts_with("wasm engine: cannot read entry module /app/gone.wasm"),
        "{message}"
    );
}

#[tokio::test]
async fn a_file_that_is_not_wasm_is_a_user_error_saying_so() {
    let dir = tempfile::tempdir().unwrap();
    let module = dir.path().join("main.wasm");
    std::fs::write(&module, b"#!/bin/sh\necho hi\n").unwrap();
    let (outcome, _) = run(request(&module, json!({}), dir.path())).await;
    let Err(ExecutorError::User { message }) = outcome else {
        panic!("{outcome:?}")
    };
    assert!(
        message.contains("/app/main.wasm is not a valid WebAssembly module"),
        "{message}"
    );
}

#[tokio::test]
async fn a_missing_entrypoint_lists_the_exported_functions() {
    let dir = tempfile::tempdir().unwrap();
    let (outcome, _) = run(request(&hello(), json!({"Entrypoint": "main"}), dir.path())).await;
    let Err(ExecutorError::User { message }) = outcome else {
        panic!("{outcome:?}")
    };
    assert_eq!(
        message,
        "wasm engine: entry module /app/hello.wat exports no function \"main\" \
         (exported functions: _start); set Entrypoint to one of them"
    );
}

#[tokio::test]
async fn module_reads_inputs_and_writes_results_under_the_result_name() {
    let inputs = tempfile::tempdir().unwrap();
    std::fs::write(inputs.path().join("data.txt"), "input bytes\n").unwrap();
    let results = tempfile::tempdir().unwrap();
    // The module is named by its host path (a module preinstalled on the node), so that the
    // only mounts are the ones the fixture expects at fds 3, 4 and 5.
    let module = fixture("copy_input.wat");
    let entry = json!({"EntryModule": module.to_str().unwrap()});
    let mut req = request(&module, entry, results.path());
    req.inputs = vec![PreparedInput {
        host_path: inputs.path().to_path_buf(),
        target: "/inputs".into(),
        read_write: false,
    }];
    req.result_paths.push(ResultPath {
        name: "out".into(),
        path: "/outputs".into(),
    });
    let (outcome, _) = run(req).await;
    assert_eq!(outcome, Ok(Exit { code: 0 }));
    let out = results.path().join("out");
    assert_eq!(
        std::fs::read_to_string(out.join("copy.txt")).unwrap(),
        "input bytes\n"
    );
    assert_eq!(
        std::fs::read_to_string(out.join("name.txt")).unwrap(),
        "input bytes\n"
    );
}

#[tokio::test]
async fn import_modules_are_linked_by_name_section_or_file_stem() {
    let dir = tempfile::tempdir().unwrap();
    let mut req = request(
        &fixture("uses_imports.wat"),
        json!({"ImportModules": ["/lib/consts.wat", "/lib/adder.wat"]}),
        dir.path(),
    );
    req.inputs.push(PreparedInput {
        host_path: fixture(""),
        target: "/lib".into(),
        read_write: false,
    });
    let (outcome, _) = run(req).await;
    assert_eq!(outcome, Ok(Exit { code: 42 }));
}

#[tokio::test]
async fn an_unlinked_import_names_the_import_and_points_at_import_modules() {
    let dir = tempfile::tempdir().unwrap();
    let (outcome, _) = run(request(&fixture("uses_imports.wat"), json!({}), dir.path())).await;
    let Err(ExecutorError::User { message }) = outcome else {
        panic!("{outcome:?}")
    };
    assert!(message.contains("consts::forty"), "{message}");
    assert!(message.contains("ImportModules"), "{message}");
}

#[tokio::test]
async fn many_executions_share_one_executor_concurrently() {
    let dir = tempfile::tempdir().unwrap();
    let executor = WasmExecutor::new().unwrap();
    let runs = (0..32).map(|i| {
        let (sink, rx) = LogSink::channel();
        let mut req = request(&hello(), json!({}), dir.path());
        req.env
            .insert("BACALHAU_PARTITION_INDEX".into(), i.to_string());
        let run = executor.run(req, sink, CancellationToken::new());
        async move { (run.await, rx) }
    });
    for (i, (outcome, mut rx)) in futures::future::join_all(runs)
        .await
        .into_iter()
        .enumerate()
    {
        assert_eq!(outcome, Ok(Exit { code: 0 }));
        assert_eq!(
            stdout(&drain(&mut rx)),
            format!("Hello, world!\nBACALHAU_PARTITION_INDEX={i}\n")
        );
    }
}

#[test]
fn validate_rejects_a_spec_without_entry_module() {
    let executor = WasmExecutor::new().unwrap();
    let err = executor.validate(&SpecConfig::of("wasm")).unwrap_err();
    assert!(
        err.to_string()
            .starts_with("wasm engine: EntryModule is required"),
        "{err}"
    );
}
