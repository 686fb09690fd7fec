//! What an operator asked a connector to be: running, paused or stopped. Kept in
//! the store, so a restart keeps a paused connector paused.

use serde::Serialize;
use weir_storage::Store;

/// The state an operator asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Desired {
    /// Polling or writing.
    Running,
    /// Idle, instance and position kept; `resume` goes on where it left off.
    Paused,
    /// Not running at all; `start` begins again from the committed position.
    Stopped,
}

impl Desired {
    fn as_bytes(self) -> &'static [u8] {
        match self {
            Desired::Running => b"running",
            Desired::Paused => b"paused",
            Desired::Stopped => b"stopped",
        }
    }

    fn parse(bytes: &[u8]) -> Desired {
        match bytes {
            b"paused" => Desired::Paused,
            b"stopped" => Desired::Stopped,
            _ => Desired::Running,
        }
    }
}

fn key(name: &str) -> Vec<u8> {
    format!("connector/{name}").into_bytes()
}

/// The persisted wish for `name` (running when none was recorded).
pub(crate) fn load(store: &Store, name: &str) -> Desired {
    match store.kv_get(&key(name)) {
        Ok(Some(v)) => Desired::parse(&v),
        Ok(None) => Desired::Running,
        Err(e) => {
            tracing::error!(connector = name, error = %e, "reading the connector's state failed; running it");
            Desired::Running
        }
    }
}

/// Records the wish for `name`, durably.
pub(crate) async fn save(store: &Store, name: &str, desired: Desired) -> weir_storage::Result<()> {
    let value = (desired != Desired::Running).then(|| desired.as_bytes().to_vec());
    store.kv_write(vec![(key(name), value)]).await
}
