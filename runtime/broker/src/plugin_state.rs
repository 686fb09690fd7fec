//! The plugins' durable key-value state, kept in the store's key-value tree under
//! `plugin/<name>\0<key>`.

use std::sync::Arc;
use weir_host::PluginState;

use weir_storage::Log;

/// [`PluginState`] on the broker's store.
#[derive(Debug, Clone)]
pub struct StoredPluginState {
    log: Arc<dyn Log>,
}

impl StoredPluginState {
    /// State in `log`'s key-value store.
    pub fn new(log: Arc<dyn Log>) -> Self {
        Self { log }
    }

    /// Where `plugin`'s `key` lives in the store's key-value tree (for writes that
    /// commit with records, such as a source's cursor).
    pub fn key(plugin: &str, key: &[u8]) -> Vec<u8> {
        let mut k = Vec::with_capacity(8 + plugin.len() + key.len());
        k.extend_from_slice(b"plugin/");
        k.extend_from_slice(plugin.as_bytes());
        k.push(0);
        k.extend_from_slice(key);
        k
    }
}

impl PluginState for StoredPluginState {
    fn get(&self, plugin: &str, key: &[u8]) -> Option<Vec<u8>> {
        match self.log.kv_get(&Self::key(plugin, key)) {
            Ok(v) => v,
            Err(e) => {
                tracing::error!(plugin, error = %e, "reading plugin state failed");
                None
            }
        }
    }

    fn set(&self, plugin: &str, key: &[u8], value: &[u8]) {
        if let Err(e) = self.log.kv_put_now(&Self::key(plugin, key), Some(value)) {
            tracing::error!(plugin, error = %e, "writing plugin state failed");
        }
    }

    fn delete(&self, plugin: &str, key: &[u8]) {
        if let Err(e) = self.log.kv_put_now(&Self::key(plugin, key), None) {
            tracing::error!(plugin, error = %e, "deleting plugin state failed");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use weir_storage::{Store, StoreOptions};

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn state_is_per_plugin_and_survives_a_restart() {
        let dir = tempfile::tempdir().unwrap();
        {
            let store = Store::open(dir.path(), StoreOptions::default()).unwrap();
            let state = StoredPluginState::new(Arc::new(store.clone()));
            state.set("a", b"count", b"7");
            state.set("b", b"count", b"1");
            state.set("a", b"gone", b"x");
            state.delete("a", b"gone");
            store.flush().await.unwrap();
            store.shutdown().await;
        }
        let store = Store::open(dir.path(), StoreOptions::default()).unwrap();
        let state = StoredPluginState::new(Arc::new(store.clone()));
        assert_eq!(state.get("a", b"count").as_deref(), Some(&b"7"[..]));
        assert_eq!(state.get("b", b"count").as_deref(), Some(&b"1"[..]));
        assert_eq!(state.get("a", b"gone"), None);
        store.shutdown().await;
    }
}
