//! The `wasm` engine: runs WASI preview 1 modules with wasmtime, the way Bacalhau's wasm
//! executor does (params `EntryModule`, `Entrypoint`, `Parameters`, `ImportModules`).
//!
//! One [`WasmExecutor`] owns one wasmtime `Engine`, a WASI linker and a cache of compiled
//! modules, and runs any number of executions at once on the tokio runtime: wasm runs inside
//! `call_async` and yields to the runtime every epoch tick ([`EPOCH_TICK`]), so a busy module
//! never holds a runtime thread for long, and cancellation and time limits take effect within a
//! tick by dropping the running call.
//!
//! How an execution ends:
//!
//! | module does | result |
//! |---|---|
//! | returns from the entrypoint | `Exit { code: 0 }` |
//! | calls `proc_exit(n)` | `Exit { code: n }` |
//! | traps after a memory growth was refused by the memory limit | `OutOfMemory` |
//! | traps (unreachable, out-of-bounds, ...) | `User` error with the trap |
//! | runs past the time limit | `Timeout` |
//! | is cancelled | `Cancelled` |
//!
//! The task's filesystem is described in [`task_fs`].

use std::future;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use futures::future::BoxFuture;
use shoal_types::SpecConfig;
use shoal_types::resources::format_bytes;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;
use wasmtime::{Config, Engine, Instance, Linker, Store, Trap, UpdateDeadline, Val, WasmBacktrace};
use wasmtime_wasi::p1::{self, WasiP1Ctx};
use wasmtime_wasi::{I32Exit, WasiCtxBuilder};

use crate::{ExecutionRequest, Executor, ExecutorError, Exit, LogSink, Stream};

mod limits;
mod modules;
mod output;
pub mod params;
pub mod task_fs;

use limits::MemoryCap;
use modules::{Compiled, ModuleCache};
use output::LineForwarder;
use params::WasmParams;
use task_fs::{plan_mounts, resolve_module};

/// How often running modules yield to the runtime and check for cancellation and timeouts.
pub const EPOCH_TICK: Duration = Duration::from_millis(10);

/// What a wasmtime store holds for one execution.
pub(crate) struct TaskState {
    wasi: WasiP1Ctx,
    memory: MemoryCap,
}

/// Runs WebAssembly (WASI preview 1) tasks.
///
/// Cheap to clone: clones share the engine and the compiled-module cache.
#[derive(Clone)]
pub struct WasmExecutor {
    inner: Arc<Inner>,
}

struct Inner {
    engine: Engine,
    /// WASI preview 1 and nothing else; per-execution import modules go into a clone.
    linker: Linker<TaskState>,
    cache: ModuleCache,
}

impl WasmExecutor {
    /// Builds the engine and starts its epoch ticker thread (which ends when the last clone
    /// of the executor and every module it compiled are dropped).
    ///
    /// Fails only when wasmtime cannot run on this host (unsupported CPU or OS settings).
    pub fn new() -> Result<Self, ExecutorError> {
        let mut config = Config::new();
        config.epoch_interruption(true);
        let engine = Engine::new(&config).map_err(|e| {
            ExecutorError::transient(format!(
                "wasm engine: cannot start wasmtime on this node: {e:#}; \
                 run the node without the wasm engine or on a supported platform"
            ))
        })?;
        let mut linker = Linker::new(&engine);
        p1::add_to_linker_async(&mut linker, |s: &mut TaskState| &mut s.wasi).map_err(|e| {
            ExecutorError::transient(format!("wasm engine: cannot link WASI preview 1: {e:#}"))
        })?;
        start_epoch_ticker(&engine);
        Ok(WasmExecutor {
            inner: Arc::new(Inner {
                engine,
                linker,
                cache: ModuleCache::default(),
            }),
        })
    }
}

impl std::fmt::Debug for WasmExecutor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WasmExecutor").finish_non_exhaustive()
    }
}

/// One thread per engine advances its epoch, which makes running modules yield (see
/// [`EPOCH_TICK`]). It holds only a weak reference, so it stops with the engine.
fn start_epoch_ticker(engine: &Engine) {
    let weak = engine.weak();
    let spawned = std::thread::Builder::new()
        .name("wasm-epoch".into())
        .spawn(move || {
            loop {
                std::thread::sleep(EPOCH_TICK);
                match weak.upgrade() {
                    Some(engine) => engine.increment_epoch(),
                    None => break,
                }
            }
        });
    if let Err(e) = spawned {
        // Without ticks modules still run, but never yield: cancellation and timeouts would
        // wait for the module to return. Say so loudly rather than refuse to start.
        tracing::error!(error = %e, "wasm engine: cannot start the epoch ticker thread");
    }
}

impl Executor for WasmExecutor {
    fn engine(&self) -> &'static str {
        "wasm"
    }

    fn validate(&self, engine: &SpecConfig) -> Result<(), ExecutorError> {
        WasmParams::parse(engine).map(|_| ())
    }

    fn run(
        &self,
        request: ExecutionRequest,
        logs: LogSink,
        cancel: CancellationToken,
    ) -> BoxFuture<'static, Result<Exit, ExecutorError>> {
        let inner = self.inner.clone();
        let span = tracing::info_span!(
            "wasm_run",
            execution_id = %request.execution_id,
            job_id = %request.job_id,
        );
        Box::pin(
            async move {
                if cancel.is_cancelled() {
                    return Err(ExecutorError::Cancelled);
                }
                let stdout = LineForwarder::new(logs.clone(), Stream::Stdout);
                let stderr = LineForwarder::new(logs, Stream::Stderr);
                // Bacalhau's convention: a zero timeout means none.
                let timeout = request.timeout.filter(|t| !t.is_zero());
                let time_limit = async {
                    match timeout {
                        Some(limit) => tokio::time::sleep(limit).await,
                        None => future::pending().await,
                    }
                };
                let task = inner.execute(request, stdout.clone(), stderr.clone());
                // Losing branches are dropped here, which drops the store and unwinds the
                // module where it yielded: nothing keeps running after `run` returns.
                let outcome = tokio::select! {
                    biased;
                    _ = cancel.cancelled() => Err(ExecutorError::Cancelled),
                    _ = time_limit => Err(ExecutorError::Timeout(timeout.unwrap_or_default())),
                    outcome = task => outcome,
                };
                stdout.finish();
                stderr.finish();
                match &outcome {
                    Ok(exit) => tracing::debug!(code = exit.code, "wasm module exited"),
                    Err(e) => tracing::debug!(error = %e, "wasm module failed"),
                }
                outcome
            }
            .instrument(span),
        )
    }
}

impl Inner {
    async fn execute(
        &self,
        request: ExecutionRequest,
        stdout: LineForwarder,
        stderr: LineForwarder,
    ) -> Result<Exit, ExecutorError> {
        let params = WasmParams::parse(&request.engine)?;
        let entry = self
            .load("entry module", &params.entry_module, &request)
            .await?;
        let mut imports = Vec::with_capacity(params.import_modules.len());
        for path in &params.import_modules {
            imports.push((
                path.as_str(),
                self.load("import module", path, &request).await?,
            ));
        }

        let mut wasi = WasiCtxBuilder::new();
        wasi.arg(program_name(&params.entry_module))
            .args(&params.parameters)
            .envs(&request.env.iter().collect::<Vec<_>>())
            .stdout(stdout)
            .stderr(stderr);
        for mount in plan_mounts(&request.inputs, &request.results_dir, &request.result_paths)? {
            wasi.preopened_dir(&mount.host, &mount.guest, mount.perms())
                .map_err(|e| {
                    ExecutorError::transient(format!(
                        "wasm engine: cannot open {} to mount it at {}: {e:#}; check the staged \
                     inputs and the results folder are still there",
                        mount.host.display(),
                        mount.guest
                    ))
                })?;
        }

        let memory = request.resources.memory;
        let mut store = Store::new(
            &self.engine,
            TaskState {
                wasi: wasi.build_p1(),
                memory: MemoryCap::new(memory),
            },
        );
        store.limiter(|state| &mut state.memory);
        store.set_epoch_deadline(1);
        store.epoch_deadline_callback(|_| Ok(UpdateDeadline::Yield(1)));

        let failed = |store: &Store<TaskState>, what: String, error: wasmtime::Error| {
            classify(error, store.data().memory.refused(), memory, &what)
        };

        let linker = if imports.is_empty() {
            None
        } else {
            let mut linker = self.linker.clone();
            for (path, compiled) in &imports {
                let what = format!("import module {path}");
                let instance = match linker.instantiate_async(&mut store, &compiled.module).await {
                    Ok(instance) => instance,
                    Err(e) => return failed(&store, what, e),
                };
                if let Err(e) = initialize(&mut store, instance).await {
                    return failed(&store, what, e);
                }
                let name = import_name(path, compiled);
                linker.instance(&mut store, &name, instance).map_err(|e| {
                    ExecutorError::user(format!(
                        "wasm engine: import module {path} cannot be registered as {name:?}: \
                         {e:#}; give each import module a distinct file name"
                    ))
                })?;
            }
            Some(linker)
        };

        let what = format!("entry module {}", params.entry_module);
        let instantiated = match (&linker, &entry.pre) {
            (None, Some(pre)) => pre.instantiate_async(&mut store).await,
            (Some(linker), _) => linker.instantiate_async(&mut store, &entry.module).await,
            (None, None) => {
                self.linker
                    .instantiate_async(&mut store, &entry.module)
                    .await
            }
        };
        let instance = match instantiated {
            Ok(instance) => instance,
            Err(e)
                if e.downcast_ref::<Trap>().is_none() && e.downcast_ref::<I32Exit>().is_none() =>
            {
                if store.data().memory.refused() {
                    return failed(&store, what, e);
                }
                return Err(ExecutorError::user(format!(
                    "wasm engine: {what} cannot be instantiated: {e:#}; \
                     a module it imports from must be listed in ImportModules"
                )));
            }
            Err(e) => return failed(&store, what, e),
        };

        let entrypoint = params.entrypoint.as_str();
        let Some(func) = instance.get_func(&mut store, entrypoint) else {
            let exported: Vec<&str> = entry
                .module
                .exports()
                .filter(|e| e.ty().func().is_some())
                .map(|e| e.name())
                .collect();
            let exported = if exported.is_empty() {
                "none".into()
            } else {
                exported.join(", ")
            };
            return Err(ExecutorError::user(format!(
                "wasm engine: {what} exports no function {entrypoint:?} (exported functions: \
                 {exported}); set Entrypoint to one of them"
            )));
        };
        let ty = func.ty(&store);
        if ty.params().len() != 0 {
            return Err(ExecutorError::user(format!(
                "wasm engine: Entrypoint {entrypoint:?} of {what} takes {} parameters; it must \
                 take none (pass arguments with Parameters instead)",
                ty.params().len()
            )));
        }
        let mut results: Vec<Val> = ty.results().map(|_| Val::I32(0)).collect();
        if entrypoint != params::DEFAULT_ENTRYPOINT
            && let Err(e) = initialize(&mut store, instance).await
        {
            return failed(&store, what, e);
        }
        match func.call_async(&mut store, &[], &mut results).await {
            Ok(()) => Ok(Exit { code: 0 }),
            Err(e) => failed(&store, format!("{what} ({entrypoint})"), e),
        }
    }

    async fn load(
        &self,
        role: &str,
        task_path: &str,
        request: &ExecutionRequest,
    ) -> Result<Arc<Compiled>, ExecutorError> {
        let host = resolve_module(role, task_path, &request.inputs)?;
        self.cache
            .load(&self.engine, &self.linker, role, task_path, host)
            .await
    }
}

/// Runs a WASI reactor's `_initialize`, which must precede calls into its other exports.
async fn initialize(store: &mut Store<TaskState>, instance: Instance) -> wasmtime::Result<()> {
    match instance.get_typed_func::<(), ()>(&mut *store, "_initialize") {
        Ok(init) => init.call_async(&mut *store, ()).await,
        Err(_) => Ok(()),
    }
}

/// argv[0]: the module's file name, as a shell would show a program's name.
fn program_name(entry_module: &str) -> &str {
    entry_module
        .rsplit('/')
        .find(|s| !s.is_empty())
        .unwrap_or(entry_module)
}

/// The name an import module's exports are linked under: its name section when it has one,
/// else its file stem (`/app/math.wasm` → `math`).
fn import_name(path: &str, compiled: &Compiled) -> String {
    if let Some(name) = compiled.module.name() {
        return name.to_string();
    }
    Path::new(path)
        .file_stem()
        .and_then(|s| s.to_str())
        .unwrap_or(path)
        .to_string()
}

/// Turns how wasm stopped into an exit code or an engine error.
fn classify(
    error: wasmtime::Error,
    memory_refused: bool,
    memory_limit: u64,
    what: &str,
) -> Result<Exit, ExecutorError> {
    if let Some(exit) = error.downcast_ref::<I32Exit>() {
        return Ok(Exit { code: exit.0 });
    }
    if memory_refused {
        return Err(ExecutorError::OutOfMemory {
            limit: format_bytes(memory_limit),
        });
    }
    if let Some(trap) = error.downcast_ref::<Trap>() {
        let place = error
            .downcast_ref::<WasmBacktrace>()
            .and_then(|trace| trace.frames().first())
            .and_then(|frame| frame.func_name())
            .map(|name| format!(" in function {name}"))
            .unwrap_or_default();
        return Err(ExecutorError::user(format!(
            "wasm engine: {what} trapped{place}: {trap}"
        )));
    }
    Err(ExecutorError::user(format!(
        "wasm engine: {what} failed: {error:#}"
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn program_name_is_the_module_file_name() {
        assert_eq!(program_name("/app/main.wasm"), "main.wasm");
        assert_eq!(program_name("main.wasm"), "main.wasm");
    }

    #[test]
    fn proc_exit_becomes_an_exit_code_even_past_a_refused_growth() {
        let outcome = classify(I32Exit(3).into(), true, 1 << 20, "entry module /m.wasm");
        assert_eq!(outcome, Ok(Exit { code: 3 }));
    }

    #[test]
    fn a_trap_after_a_refused_growth_is_out_of_memory_at_the_limit() {
        let outcome = classify(Trap::UnreachableCodeReached.into(), true, 1 << 20, "m");
        assert_eq!(
            outcome,
            Err(ExecutorError::OutOfMemory {
                limit: "1 MiB".into()
            })
        );
    }
}
