//! The jobs the scenarios submit, and submitting one to completion.

use std::time::{Duration, Instant};

use anyhow::bail;
use serde_json::json;
use shoal_client::Client;
use shoal_types::{Job, JobStateType, spec};

/// Hello world in WebAssembly text: writes "hi\n" to stdout through WASI.
pub const HELLO_WAT: &str = r#"(module
  (import "wasi_snapshot_preview1" "fd_write" (func $w (param i32 i32 i32 i32) (result i32)))
  (memory (export "memory") 1)
  (data (i32.const 16) "hi\n")
  (func (export "_start")
    (i32.store (i32.const 0) (i32.const 16))
    (i32.store (i32.const 4) (i32.const 3))
    (drop (call $w (i32.const 1) (i32.const 0) (i32.const 1) (i32.const 8)))))"#;

fn read(value: serde_json::Value) -> Job {
    spec::parse_job_value(value).expect("bench jobs are valid")
}

/// A batch job running [`HELLO_WAT`], uploaded inline.
pub fn hello_wasm() -> Job {
    read(json!({
        "Type": "batch", "Count": 1,
        "Tasks": [{
            "Name": "main",
            "Engine": { "Type": "wasm", "Params": { "EntryModule": "/app/hello.wat" } },
            "InputSources": [{ "Target": "/app/hello.wat",
                               "Source": { "Type": "inline", "Params": { "URL": HELLO_WAT } } }],
        }],
    }))
}

/// A batch job on the no-op engine with `count` partitions, small enough to pack many per node.
pub fn noop(count: u64) -> Job {
    read(json!({
        "Type": "batch", "Count": count,
        "Tasks": [{
            "Name": "main",
            "Engine": { "Type": "noop" },
            "Resources": { "CPU": "1m", "Memory": "1Mi" },
        }],
    }))
}

/// Polls a job until it is terminal; errors unless it completed.
pub async fn wait_completed(client: &Client, id: &str, limit: Duration) -> anyhow::Result<()> {
    let t0 = Instant::now();
    loop {
        let view = client.job(id, "").await?;
        match view.job.state.state_type {
            JobStateType::Completed => return Ok(()),
            s if s.is_terminal() => bail!("job {id} ended {s}: {}", view.job.state.message),
            _ => {}
        }
        if t0.elapsed() > limit {
            bail!("job {id} did not complete within {limit:?}");
        }
    }
}
