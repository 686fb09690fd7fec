//! The durable per-plugin key-value state behind the `host.state-*` imports. The host
//! knows no storage engine: the broker supplies an implementation.

use std::collections::HashMap;

use parking_lot::Mutex;

/// Per-plugin key-value state.
pub trait PluginState: Send + Sync {
    /// The value of `key` for `plugin`.
    fn get(&self, plugin: &str, key: &[u8]) -> Option<Vec<u8>>;
    /// Sets `key` for `plugin`.
    fn set(&self, plugin: &str, key: &[u8], value: &[u8]);
    /// Removes `key` for `plugin`.
    fn delete(&self, plugin: &str, key: &[u8]);
}

/// A state key: plugin name and the plugin's own key.
type StateKey = (String, Vec<u8>);

/// State kept in memory only (tests, `weir plugin test`).
#[derive(Debug, Default)]
pub struct MemoryState {
    map: Mutex<HashMap<StateKey, Vec<u8>>>,
}

impl PluginState for MemoryState {
    fn get(&self, plugin: &str, key: &[u8]) -> Option<Vec<u8>> {
        self.map
            .lock()
            .get(&(plugin.to_string(), key.to_vec()))
            .cloned()
    }

    fn set(&self, plugin: &str, key: &[u8], value: &[u8]) {
        self.map
            .lock()
            .insert((plugin.to_string(), key.to_vec()), value.to_vec());
    }

    fn delete(&self, plugin: &str, key: &[u8]) {
        self.map.lock().remove(&(plugin.to_string(), key.to_vec()));
    }
}

/// Key-value pairs, in key order.
pub type Entries = Vec<(Vec<u8>, Vec<u8>)>;

/// A processor's keyed state on the input partition being processed, behind the
/// `keyed-state` imports. The broker supplies it for the length of one call; writes
/// are staged there and stored with the batch.
pub trait KeyedState: Send + Sync {
    /// The value of `key` (this batch's write first).
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, String>;
    /// Sets `key`.
    fn put(&self, key: &[u8], value: &[u8]);
    /// Removes `key`.
    fn delete(&self, key: &[u8]);
    /// Up to `limit` entries under `prefix` after `after`, in key order.
    fn scan(&self, prefix: &[u8], after: Option<&[u8]>, limit: usize) -> Result<Entries, String>;
    /// Fires `key` once the clock reaches `at_ms` (replacing its earlier timer).
    fn set_timer(&self, key: &[u8], at_ms: i64);
    /// Removes `key`'s timer.
    fn cancel_timer(&self, key: &[u8]);
}
