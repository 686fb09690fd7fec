//! Leases: one node at a time holds a name (a connector runs on one node). A lease
//! is a shared key naming its holder; it is held as long as the holder is live (its
//! report keeps moving), so holding costs no writes. Another node takes it over with
//! compare-and-set once the holder is gone, which changes the key's version: every
//! write the former holder makes under its [`Fence`] is then refused by the log.

use serde::{Deserialize, Serialize};
use weir_storage::StorageError;

use super::Cluster;
use crate::Result;

const PREFIX: &str = "cluster/lease/";

/// What a lease holder's writes are checked against: refused once the lease changed
/// hands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fence {
    /// The lease's key.
    pub key: Vec<u8>,
    /// Its version when this node took it.
    pub version: u64,
}

#[derive(Debug, Serialize, Deserialize)]
struct Holder {
    node: String,
    since_ms: i64,
}

fn key(name: &str) -> Vec<u8> {
    format!("{PREFIX}{name}").into_bytes()
}

impl Cluster {
    /// The node holding lease `name`, if a live one does.
    pub fn holder(&self, name: &str) -> Option<String> {
        let (value, _) = self.kv().get_versioned(&key(name));
        let holder: Holder = serde_json::from_slice(&value?).ok()?;
        self.is_live(&holder.node).then_some(holder.node)
    }

    /// Holds lease `name`: this node's fence if it holds it or took it now, `None`
    /// while another live node holds it.
    pub async fn hold(&self, name: &str) -> Result<Option<Fence>> {
        let key = key(name);
        let (value, version) = self.kv().get_versioned(&key);
        let holder = value.and_then(|v| serde_json::from_slice::<Holder>(&v).ok());
        match holder {
            Some(h) if h.node == self.inner.node => return Ok(Some(Fence { key, version })),
            Some(h) if self.is_live(&h.node) => return Ok(None),
            _ => {}
        }
        let value = serde_json::to_vec(&Holder {
            node: self.inner.node.clone(),
            since_ms: weir_storage::now_ms(),
        })
        .expect("holders serialise");
        match self
            .kv()
            .write_if(&key, version, vec![(key.clone(), Some(value))])
            .await
        {
            Ok(version) => {
                tracing::info!(lease = name, node = %self.inner.node, "lease taken");
                Ok(Some(Fence { key, version }))
            }
            Err(StorageError::VersionConflict(_)) => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    /// Gives lease `name` up (a connector that stops or a node that shuts down), if
    /// it is still held under `fence`.
    pub async fn release(&self, fence: &Fence) {
        let ops = vec![(fence.key.clone(), None)];
        match self.kv().write_if(&fence.key, fence.version, ops).await {
            Ok(_) | Err(StorageError::VersionConflict(_)) => {}
            Err(e) => tracing::warn!(error = %e, "releasing a lease failed"),
        }
    }
}
