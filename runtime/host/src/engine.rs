//! The shared wasmtime engine, its epoch clock, and where compiled code is kept.
//!
//! Compiling is the slow part of loading: a Rust plugin takes well under a second,
//! an 18 MB componentize-py component 12–15 s in a release build. Compiled code is
//! kept twice: in memory by content hash (a manifest-only change or a reload of the
//! same bytes reuses it at once) and, when the engine is given a directory, on disk
//! through wasmtime's own cache, so a restart or a second `weir plugin test` of an
//! unchanged component compiles nothing. wasmtime keys that cache by the component's
//! bytes, the compiler's version and every setting of the engine, so code compiled
//! for another engine or another wasmtime is never loaded; it validates what it
//! reads, and Weir's code stays free of `unsafe` (no hand-made deserialisation).

use std::collections::VecDeque;
use std::path::Path;
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
    /// Compiled code on disk, when the engine was given a directory.
    disk_cache: Option<wasmtime::Cache>,
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
    /// Builds the engine: component model, Cranelift, epoch interruption; compiled
    /// code is kept in memory only.
    pub fn new() -> wasmtime::Result<Engine> {
        Self::build(None)
    }

    /// [`new`](Self::new), keeping compiled code in `dir` too, across restarts.
    pub fn with_compile_cache(dir: &Path) -> wasmtime::Result<Engine> {
        Self::build(Some(dir))
    }

    fn build(cache_dir: Option<&Path>) -> wasmtime::Result<Engine> {
        let mut config = wasmtime::Config::new();
        let disk_cache = match cache_dir {
            Some(dir) => {
                // wasmtime wants an absolute path; the default data dir is relative.
                let dir = std::path::absolute(dir)?;
                std::fs::create_dir_all(&dir)?;
                let mut cache = wasmtime::CacheConfig::new();
                cache.with_directory(dir);
                Some(wasmtime::Cache::new(cache)?)
            }
            None => None,
        };
        config.cache(disk_cache.clone());
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
                disk_cache,
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
        let started = std::time::Instant::now();
        let misses = self.disk_cache().map(|c| c.cache_misses());
        let component = Component::new(&self.inner.engine, bytes)?;
        let took_ms = started.elapsed().as_millis() as u64;
        match misses {
            Some(m) if self.disk_cache().is_some_and(|c| c.cache_misses() == m) => {
                tracing::info!(
                    component = &sha256[..12],
                    took_ms,
                    "plugin component loaded from the compile cache"
                );
            }
            _ => tracing::info!(
                component = &sha256[..12],
                took_ms,
                bytes = bytes.len(),
                "plugin component compiled"
            ),
        }
        let mut compiled = self.inner.compiled.lock();
        if compiled.len() == COMPILED_KEPT {
            compiled.pop_front();
        }
        compiled.push_back((sha256.to_string(), component.clone()));
        Ok(component)
    }

    fn disk_cache(&self) -> Option<&wasmtime::Cache> {
        self.inner.disk_cache.as_ref()
    }

    fn cached(&self, sha256: &str) -> Option<Component> {
        let mut compiled = self.inner.compiled.lock();
        let i = compiled.iter().position(|(h, _)| h == sha256)?;
        let hit = compiled.remove(i)?;
        compiled.push_back(hit.clone());
        Some(hit.1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_relative_compile_cache_dir_is_taken_from_the_current_directory() {
        // `weir serve`'s default data dir is `./weir-data`.
        let rel = Path::new("target/engine-test-relative-cache");
        let engine = Engine::with_compile_cache(rel).expect("a relative directory works");
        assert!(std::path::absolute(rel).unwrap().is_dir());
        drop(engine);
        let _ = std::fs::remove_dir_all(rel);
    }
}
