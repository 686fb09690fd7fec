//! The shared wasmtime engine and its epoch clock.

use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use parking_lot::Mutex;
use wasmtime::component::Component;

/// Compiled components kept by content hash. A new plugin version that changes only
/// its manifest (config, attachments, limits), and a version loaded again, reuse the
/// machine code instead of compiling it again.
const COMPILED_KEPT: usize = 16;

/// One epoch tick. Deadlines are counted in ticks, so a call is interrupted between
/// its timeout and its timeout plus one tick.
pub const EPOCH_TICK: Duration = Duration::from_millis(10);

/// A wasmtime engine configured for plugins, with a thread that advances its epoch.
/// Cheap to clone; the ticker stops when the last clone is dropped.
#[derive(Clone)]
pub struct Engine {
    inner: Arc<Inner>,
}

struct Inner {
    engine: wasmtime::Engine,
    stop: Arc<AtomicBool>,
    /// (SHA-256 of the component bytes, compiled component), most recent last.
    compiled: Mutex<VecDeque<(String, Component)>>,
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine").finish_non_exhaustive()
    }
}

impl Drop for Inner {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

impl Engine {
    /// Builds the engine: component model, Cranelift, epoch interruption.
    pub fn new() -> wasmtime::Result<Engine> {
        let mut config = wasmtime::Config::new();
        config.wasm_component_model(true);
        config.epoch_interruption(true);
        // Deep recursion must trap cleanly, well before the host thread's stack.
        config.max_wasm_stack(512 << 10);
        // `perf` can name plugin functions when asked (the map costs a little per load).
        if std::env::var_os("WEIR_WASM_PERFMAP").is_some_and(|v| v == "1") {
            config.profiler(wasmtime::ProfilingStrategy::PerfMap);
        }
        let engine = wasmtime::Engine::new(&config)?;
        let stop = Arc::new(AtomicBool::new(false));
        let (ticking, flag) = (engine.clone(), stop.clone());
        std::thread::Builder::new()
            .name("weir-epoch".into())
            .spawn(move || {
                while !flag.load(Ordering::Relaxed) {
                    std::thread::sleep(EPOCH_TICK);
                    ticking.increment_epoch();
                }
            })?;
        Ok(Engine {
            inner: Arc::new(Inner {
                engine,
                stop,
                compiled: Mutex::new(VecDeque::new()),
            }),
        })
    }

    /// The wasmtime engine.
    pub fn wasmtime(&self) -> &wasmtime::Engine {
        &self.inner.engine
    }

    /// Compiles `bytes` (whose SHA-256 is `sha256`), or reuses the compilation of the
    /// same bytes.
    pub(crate) fn compile(&self, sha256: &str, bytes: &[u8]) -> wasmtime::Result<Component> {
        if let Some(c) = self.cached(sha256) {
            return Ok(c);
        }
        // Compiled outside the lock: compiles of different components overlap.
        let component = Component::new(&self.inner.engine, bytes)?;
        let mut compiled = self.inner.compiled.lock();
        if compiled.len() == COMPILED_KEPT {
            compiled.pop_front();
        }
        compiled.push_back((sha256.to_string(), component.clone()));
        Ok(component)
    }

    fn cached(&self, sha256: &str) -> Option<Component> {
        let mut compiled = self.inner.compiled.lock();
        let i = compiled.iter().position(|(h, _)| h == sha256)?;
        let hit = compiled.remove(i)?;
        compiled.push_back(hit.clone());
        Some(hit.1)
    }
}
