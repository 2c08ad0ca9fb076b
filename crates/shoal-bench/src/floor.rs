//! The machine's floors: the same work without Shoal around it.

use std::time::Instant;

use wasmtime::{Engine, Linker, Module, Store};
use wasmtime_wasi::WasiCtxBuilder;
use wasmtime_wasi::p1::{self, WasiP1Ctx};

/// A WASI module compiled once and run many times directly in wasmtime, as a user embedding
/// wasmtime by hand would: a fresh store and instance per run, output discarded.
pub struct DirectWasm {
    engine: Engine,
    pre: wasmtime::InstancePre<WasiP1Ctx>,
}

impl DirectWasm {
    /// Compiles `wat_or_wasm`.
    pub fn new(wat_or_wasm: &[u8]) -> anyhow::Result<DirectWasm> {
        let engine = Engine::default();
        let module = Module::new(&engine, wat_or_wasm)
            .map_err(|e| anyhow::anyhow!("the benchmark module does not compile: {e}"))?;
        let mut linker: Linker<WasiP1Ctx> = Linker::new(&engine);
        p1::add_to_linker_sync(&mut linker, |s| s)?;
        let pre = linker.instantiate_pre(&module)?;
        Ok(DirectWasm { engine, pre })
    }

    /// Runs `_start` once; returns the time it took in milliseconds. Call it from a plain
    /// thread: wasmtime's synchronous WASI refuses to run inside an async runtime.
    pub fn run_once(&self) -> anyhow::Result<f64> {
        let t0 = Instant::now();
        let wasi = WasiCtxBuilder::new().build_p1();
        let mut store = Store::new(&self.engine, wasi);
        let instance = self.pre.instantiate(&mut store)?;
        let start = instance.get_typed_func::<(), ()>(&mut store, "_start")?;
        start.call(&mut store, ())?;
        Ok(t0.elapsed().as_secs_f64() * 1e3)
    }
}

/// Durable inserts of `body` into a bare SQLite table (WAL, synchronous=NORMAL, one
/// transaction per insert, as Shoal's store does); returns inserts per second.
pub fn sqlite_inserts_per_sec(dir: &std::path::Path, body: &str, n: usize) -> anyhow::Result<f64> {
    let conn = rusqlite::Connection::open(dir.join("floor.db"))?;
    conn.pragma_update(None, "journal_mode", "WAL")?;
    conn.pragma_update(None, "synchronous", "NORMAL")?;
    conn.execute(
        "CREATE TABLE IF NOT EXISTS jobs (id INTEGER PRIMARY KEY, body TEXT NOT NULL)",
        [],
    )?;
    let t0 = Instant::now();
    for _ in 0..n {
        let tx = conn.unchecked_transaction()?;
        tx.execute("INSERT INTO jobs (body) VALUES (?1)", [body])?;
        tx.commit()?;
    }
    Ok(n as f64 / t0.elapsed().as_secs_f64())
}
