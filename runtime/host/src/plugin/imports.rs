//! What the broker offers a plugin through its imports: structured logging, its
//! durable key-value state, and for connectors the `http` and `files`
//! capabilities, each checked against the plugin's grants.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::bindings::{filter, processor, source, types};
use crate::error::Result;
use crate::grants::{self, Capabilities};
use crate::limits::Limiter;
use crate::state::{KeyedState, PluginState};
use crate::wasi::WasiState;

/// Store data of one instance.
pub(crate) struct Ctx {
    pub(super) plugin: Arc<str>,
    pub(super) limits: Limiter,
    pub(super) state: Arc<dyn PluginState>,
    /// A connector's grants (`None`: a pipeline plugin, which has none).
    pub(super) caps: Option<Arc<Capabilities>>,
    /// State writes of a source's poll, held back to be committed with its events.
    pub(super) staged: Option<BTreeMap<Vec<u8>, Option<Vec<u8>>>>,
    /// A processor's keyed state during a call, and the first error reading it
    /// (which fails the call: a read that silently returned nothing would corrupt
    /// the state).
    pub(super) keyed: Option<Keyed>,
    /// When the current call's deadline passes (caps outbound request timeouts).
    pub(super) deadline: Instant,
    /// The zero-grant WASI context language runtimes start with.
    pub(super) wasi: WasiState,
}

impl wasmtime_wasi::WasiView for Ctx {
    fn ctx(&mut self) -> wasmtime_wasi::WasiCtxView<'_> {
        wasmtime_wasi::WasiCtxView {
            ctx: &mut self.wasi.ctx,
            table: &mut self.wasi.table,
        }
    }
}

impl Ctx {
    fn caps(&self) -> Result<&Capabilities, String> {
        self.caps
            .as_deref()
            .ok_or_else(|| "capability_denied: only connectors have grants".to_string())
    }

    fn remaining(&self) -> Duration {
        self.deadline.saturating_duration_since(Instant::now())
    }
}

/// The keyed state a processor call works on.
pub(crate) struct Keyed {
    pub(super) state: Arc<dyn KeyedState>,
    pub(super) error: Option<String>,
}

impl types::Host for Ctx {}

impl filter::weir::plugin::host::Host for Ctx {
    fn log(&mut self, level: types::Level, message: String) {
        let plugin = &*self.plugin;
        match level {
            types::Level::Trace => tracing::trace!(plugin, "{message}"),
            types::Level::Debug => tracing::debug!(plugin, "{message}"),
            types::Level::Info => tracing::info!(plugin, "{message}"),
            types::Level::Warn => tracing::warn!(plugin, "{message}"),
            types::Level::Error => tracing::error!(plugin, "{message}"),
        }
    }

    fn state_get(&mut self, key: Vec<u8>) -> Option<Vec<u8>> {
        // A processor's call: its plugin state is the partition's keyed state, stored
        // with the batch like every other effect of it.
        if self.keyed.is_some() {
            return processor::weir::plugin::keyed_state::Host::get(self, key);
        }
        if let Some(staged) = self.staged.as_ref().and_then(|s| s.get(&key)) {
            return staged.clone();
        }
        self.state.get(&self.plugin, &key)
    }

    fn state_set(&mut self, key: Vec<u8>, value: Vec<u8>) {
        if self.keyed.is_some() {
            return processor::weir::plugin::keyed_state::Host::put(self, key, value);
        }
        match &mut self.staged {
            Some(staged) => {
                staged.insert(key, Some(value));
            }
            None => self.state.set(&self.plugin, &key, &value),
        }
    }

    fn state_delete(&mut self, key: Vec<u8>) {
        if self.keyed.is_some() {
            return processor::weir::plugin::keyed_state::Host::remove(self, key);
        }
        match &mut self.staged {
            Some(staged) => {
                staged.insert(key, None);
            }
            None => self.state.delete(&self.plugin, &key),
        }
    }
}

impl source::weir::plugin::http::Host for Ctx {
    fn send(
        &mut self,
        req: source::weir::plugin::http::Request,
    ) -> std::result::Result<source::weir::plugin::http::Response, String> {
        let deadline = self.remaining();
        let r = self.caps()?.send(
            grants::http::Request {
                method: req.method,
                url: req.url,
                headers: req.headers,
                body: req.body,
                timeout: (req.timeout_ms > 0).then(|| Duration::from_millis(req.timeout_ms.into())),
            },
            deadline,
        )?;
        Ok(source::weir::plugin::http::Response {
            status: r.status,
            headers: r.headers,
            body: r.body,
        })
    }
}

impl source::weir::plugin::files::Host for Ctx {
    fn list_dir(
        &mut self,
        path: String,
    ) -> std::result::Result<Vec<source::weir::plugin::files::Entry>, String> {
        Ok(self
            .caps()?
            .list_dir(&path)?
            .into_iter()
            .map(|e| source::weir::plugin::files::Entry {
                name: e.name,
                size: e.size,
                is_dir: e.is_dir,
            })
            .collect())
    }

    fn read_at(
        &mut self,
        path: String,
        offset: u64,
        max: u32,
    ) -> std::result::Result<Vec<u8>, String> {
        self.caps()?.read_at(&path, offset, max)
    }

    fn append(&mut self, path: String, data: Vec<u8>) -> std::result::Result<u64, String> {
        self.caps()?.append(&path, &data)
    }

    fn sync(&mut self, path: String) -> std::result::Result<(), String> {
        self.caps()?.sync(&path)
    }

    fn rename(&mut self, from: String, to: String) -> std::result::Result<(), String> {
        self.caps()?.rename(&from, &to)
    }

    fn create_dir(&mut self, path: String) -> std::result::Result<(), String> {
        self.caps()?.create_dir(&path)
    }
}

impl Ctx {
    /// The call's keyed state; `None` outside a processor call (the import is
    /// linked for processors only, whose every call sets it).
    fn keyed(&mut self) -> Option<&mut Keyed> {
        self.keyed.as_mut()
    }
}

impl processor::weir::plugin::keyed_state::Host for Ctx {
    fn get(&mut self, key: Vec<u8>) -> Option<Vec<u8>> {
        let k = self.keyed()?;
        match k.state.get(&key) {
            Ok(v) => v,
            Err(e) => {
                k.error.get_or_insert(e);
                None
            }
        }
    }

    fn put(&mut self, key: Vec<u8>, value: Vec<u8>) {
        if let Some(k) = self.keyed() {
            k.state.put(&key, &value);
        }
    }

    fn remove(&mut self, key: Vec<u8>) {
        if let Some(k) = self.keyed() {
            k.state.delete(&key);
        }
    }

    fn scan(
        &mut self,
        prefix: Vec<u8>,
        after: Option<Vec<u8>>,
        limit: u32,
    ) -> Vec<(Vec<u8>, Vec<u8>)> {
        let Some(k) = self.keyed() else {
            return Vec::new();
        };
        match k.state.scan(&prefix, after.as_deref(), limit as usize) {
            Ok(v) => v,
            Err(e) => {
                k.error.get_or_insert(e);
                Vec::new()
            }
        }
    }

    fn set_timer(&mut self, key: Vec<u8>, at_ms: i64) {
        if let Some(k) = self.keyed() {
            k.state.set_timer(&key, at_ms);
        }
    }

    fn cancel_timer(&mut self, key: Vec<u8>) {
        if let Some(k) = self.keyed() {
            k.state.cancel_timer(&key);
        }
    }
}
