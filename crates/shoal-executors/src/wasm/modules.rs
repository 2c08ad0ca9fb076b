//! Compiled modules, cached by the SHA-256 of their bytes.
//!
//! Compiling even a small module with Cranelift takes tens of milliseconds, far above the
//! engine's budget per job, while the same module is typically run by thousands of executions
//! (each staged at its own host path, hence the content key). A burst of executions of a new
//! module compiles it once: the others wait on the same cell.

use std::collections::{HashMap, VecDeque};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use sha2::{Digest, Sha256};
use tokio::sync::OnceCell;
use wasmtime::{Engine, InstancePre, Linker, Module};

use super::TaskState;
use crate::ExecutorError;

/// How many compiled modules are kept; past that the oldest is dropped.
const CAPACITY: usize = 256;

/// Longest compiler message quoted to users; wat errors quote source lines.
const MAX_MESSAGE: usize = 600;

/// A module ready to instantiate.
pub struct Compiled {
    /// The compiled module.
    pub module: Module,
    /// The module pre-linked against WASI, when it imports nothing else (the common case);
    /// instantiating from it skips import resolution.
    pub pre: Option<InstancePre<TaskState>>,
}

type Key = [u8; 32];

#[derive(Default)]
struct Entries {
    cells: HashMap<Key, Arc<OnceCell<Arc<Compiled>>>>,
    order: VecDeque<Key>,
}

/// A bounded cache of compiled modules shared by all executions of one executor.
#[derive(Default)]
pub struct ModuleCache {
    entries: Mutex<Entries>,
}

impl ModuleCache {
    /// Reads, hashes and (on a miss) compiles the module at `host_path`.
    ///
    /// `role` and `task_path` name the module in errors (`entry module /app/main.wasm`). All
    /// file reading, hashing and compiling happens on blocking threads.
    pub async fn load(
        &self,
        engine: &Engine,
        linker: &Linker<TaskState>,
        role: &str,
        task_path: &str,
        host_path: PathBuf,
    ) -> Result<Arc<Compiled>, ExecutorError> {
        let (bytes, key) = tokio::task::spawn_blocking(move || {
            std::fs::read(&host_path).map(|bytes| {
                let key: Key = Sha256::digest(&bytes).into();
                (bytes, key)
            })
        })
        .await
        .map_err(|e| ExecutorError::transient(format!("wasm engine: module reader failed: {e}")))?
        .map_err(|e| {
            ExecutorError::user(format!(
                "wasm engine: cannot read {role} {task_path}: {e}; check that the input staged \
                 at that path is the .wasm file"
            ))
        })?;
        let cell = self.cell(key);
        let compiled = cell
            .get_or_try_init(|| async {
                let engine = engine.clone();
                let linker = linker.clone();
                tokio::task::spawn_blocking(move || {
                    let module = Module::new(&engine, &bytes)?;
                    let pre = linker.instantiate_pre(&module).ok();
                    Ok::<_, wasmtime::Error>(Arc::new(Compiled { module, pre }))
                })
                .await
                .map_err(|e| {
                    ExecutorError::transient(format!("wasm engine: module compiler failed: {e}"))
                })?
                .map_err(|e| {
                    let mut message = format!("{e:#}");
                    if message.len() > MAX_MESSAGE {
                        let cut = message.floor_char_boundary(MAX_MESSAGE);
                        message.truncate(cut);
                        message.push_str("...");
                    }
                    ExecutorError::user(format!(
                        "wasm engine: {role} {task_path} is not a valid WebAssembly module: \
                         {message}; give a .wasm binary or .wat text built for wasm32-wasip1"
                    ))
                })
            })
            .await?;
        Ok(compiled.clone())
    }

    fn cell(&self, key: Key) -> Arc<OnceCell<Arc<Compiled>>> {
        let mut entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(cell) = entries.cells.get(&key) {
            return cell.clone();
        }
        let cell = Arc::new(OnceCell::new());
        entries.cells.insert(key, cell.clone());
        entries.order.push_back(key);
        while entries.order.len() > CAPACITY {
            if let Some(oldest) = entries.order.pop_front() {
                entries.cells.remove(&oldest);
            }
        }
        cell
    }
}
