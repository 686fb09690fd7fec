//! Instances: a store per instance with the plugin's limits and deadline, the pool
//! calls take instances from, and how a failed call is classified (a trap discards
//! only its instance).

use std::time::{Duration, Instant};

use wasmtime::{Store, Trap};

use crate::bindings::types;
use crate::engine::EPOCH_TICK;
use crate::error::{PluginError, Result};
use crate::limits::{Limiter, MemoryCapReached};
use crate::wasi::WasiState;

use super::{Bindings, Live, POOL_SIZE, Plugin, Pre};

use super::{Ctx, root_cause};

/// The least time instantiating and `init` get (see [`Plugin::init_timeout_ms`]).
const INIT_TIMEOUT_MS: u64 = 5_000;

impl Plugin {
    pub(super) fn new_store(&self) -> Store<Ctx> {
        let limits = Limiter::new(&self.manifest.limits);
        let mut store = Store::new(
            self.engine.wasmtime(),
            Ctx {
                plugin: self.name.clone(),
                limits,
                state: self.state.clone(),
                caps: self.caps.clone(),
                staged: None,
                keyed: None,
                deadline: Instant::now(),
                wasi: WasiState::new(&self.output),
            },
        );
        store.limiter(|c| &mut c.limits);
        store
    }

    /// Gives the store's next call `timeout_ms` of wall time.
    pub(super) fn arm(&self, store: &mut Store<Ctx>, timeout_ms: u64) {
        let ticks = timeout_ms.div_ceil(EPOCH_TICK.as_millis() as u64) + 1;
        store.set_epoch_deadline(ticks);
        store.epoch_deadline_trap();
        store.data_mut().deadline = Instant::now() + Duration::from_millis(timeout_ms);
    }

    /// How long instantiating and `init` may take: the call timeout, and at least
    /// [`INIT_TIMEOUT_MS`]. CPython and the JS engine start in tens of milliseconds
    /// on an idle machine and several times that on a busy one; an instance is made
    /// once for many calls, so its start must not fail on a call's budget.
    fn init_timeout_ms(&self) -> u64 {
        self.manifest.limits.timeout_ms.max(INIT_TIMEOUT_MS)
    }

    /// A fresh instance with `init` done.
    pub(super) fn instantiate(&self) -> Result<Live> {
        let mut store = self.new_store();
        let budget = self.init_timeout_ms();
        self.arm(&mut store, budget);
        let classify = |e: wasmtime::Error| match self.classify(e) {
            PluginError::Timeout { plugin, .. } => PluginError::Timeout {
                plugin,
                timeout_ms: budget,
            },
            other => other,
        };
        let rejected = |reason: String| PluginError::InitRejected {
            plugin: self.name.to_string(),
            reason,
        };
        let (bindings, init) = match &*self.pre {
            Pre::Filter(pre) => {
                let b = pre.instantiate(&mut store).map_err(classify)?;
                let r = b.call_init(&mut store, &self.config_json);
                (Bindings::Filter(b), r)
            }
            Pre::Transform(pre) => {
                let b = pre.instantiate(&mut store).map_err(classify)?;
                let r = b.call_init(&mut store, &self.config_json);
                (Bindings::Transform(b), r)
            }
            Pre::Router(pre) => {
                let b = pre.instantiate(&mut store).map_err(classify)?;
                let r = b.call_init(&mut store, &self.config_json);
                (Bindings::Router(b), r)
            }
            Pre::Acl(pre) => {
                let b = pre.instantiate(&mut store).map_err(classify)?;
                let r = b.call_init(&mut store, &self.config_json);
                (Bindings::Acl(b), r)
            }
            Pre::Source(pre) => {
                let b = pre.instantiate(&mut store).map_err(classify)?;
                let r = b.call_init(&mut store, &self.config_json);
                (Bindings::Source(b), r)
            }
            Pre::Sink(pre) => {
                let b = pre.instantiate(&mut store).map_err(classify)?;
                let r = b.call_init(&mut store, &self.config_json);
                (Bindings::Sink(b), r)
            }
            Pre::Processor(pre) => {
                let b = pre.instantiate(&mut store).map_err(classify)?;
                let r = b.call_init(&mut store, &self.config_json);
                (Bindings::Processor(b), r)
            }
        };
        match init {
            Ok(Ok(())) => Ok(Live { store, bindings }),
            Ok(Err(msg)) => Err(rejected(msg)),
            Err(e) => Err(rejected(classify(e).to_string())),
        }
    }

    /// Runs `f` on a pooled (or new) instance; traps discard it.
    pub(super) fn with_instance<R: Send>(
        &self,
        f: impl FnOnce(&mut Live) -> Result<R> + Send,
    ) -> Result<R> {
        if self.uses_wasi {
            crate::wasi::outside_async(|| self.run_on_instance(f))
        } else {
            self.run_on_instance(f)
        }
    }

    fn run_on_instance<R>(&self, f: impl FnOnce(&mut Live) -> Result<R>) -> Result<R> {
        let pooled = self.pool.lock().pop();
        let mut live = match pooled {
            Some(l) => l,
            None => self.instantiate()?,
        };
        self.arm(&mut live.store, self.manifest.limits.timeout_ms);
        let result = f(&mut live);
        match &result {
            Err(e) if e.poisons_instance() => {
                tracing::warn!(plugin = &*self.name, code = e.code(), error = %e, "discarding the plugin instance");
            }
            _ => {
                let mut pool = self.pool.lock();
                if pool.len() < POOL_SIZE {
                    pool.push(live);
                }
            }
        }
        result
    }

    pub(super) fn wrong_kind(&self, expected: &'static str) -> PluginError {
        PluginError::WrongKind {
            plugin: self.name.to_string(),
            expected,
            actual: self.manifest.kind.as_str(),
        }
    }

    pub(super) fn invalid(&self, reason: String) -> PluginError {
        PluginError::InvalidOutput {
            plugin: self.name.to_string(),
            reason,
        }
    }

    /// Maps a call's two layers of result: traps, then the plugin's own error.
    pub(super) fn guest<T>(
        &self,
        r: wasmtime::Result<std::result::Result<T, types::Error>>,
    ) -> Result<T> {
        match r {
            Ok(Ok(v)) => Ok(v),
            Ok(Err(types::Error::BadInput(reason))) => Err(PluginError::BadInput {
                plugin: self.name.to_string(),
                reason,
            }),
            Ok(Err(types::Error::Failed(reason))) => Err(PluginError::Failed {
                plugin: self.name.to_string(),
                reason,
            }),
            Err(e) => Err(self.classify(e)),
        }
    }

    /// Names a trap: timeout, memory cap, stack overflow, or another trap.
    pub(super) fn classify(&self, e: wasmtime::Error) -> PluginError {
        let plugin = self.name.to_string();
        match e.downcast_ref::<Trap>() {
            Some(Trap::Interrupt) => PluginError::Timeout {
                plugin,
                timeout_ms: self.manifest.limits.timeout_ms,
            },
            Some(Trap::StackOverflow) => PluginError::StackOverflow { plugin },
            _ if e.downcast_ref::<MemoryCapReached>().is_some() => PluginError::MemoryLimit {
                plugin,
                limit_mb: self.manifest.limits.memory_mb,
            },
            // What the footprint count at load did not see (nested components).
            _ if root_cause(&e).contains("count too high") => {
                let limits = &self.manifest.limits;
                let (limit, allowed, key) = match root_cause(&e) {
                    c if c.contains("table count") => ("tables", limits.tables, "limits.tables"),
                    c if c.contains("memory count") => {
                        ("memories", limits.memories, "limits.memories")
                    }
                    _ => ("core instances", limits.instances, "limits.instances"),
                };
                PluginError::Limit {
                    plugin,
                    limit,
                    needed: format!("more than {allowed}"),
                    allowed,
                    key,
                }
            }
            _ => PluginError::Trap {
                plugin,
                reason: root_cause(&e),
            },
        }
    }
}
