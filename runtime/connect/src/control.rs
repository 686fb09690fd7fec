//! What an operator asked a connector (or a processor) to be: running, paused or
//! stopped. Kept in the store, so a restart keeps a paused connector paused.

use weir_broker::Broker;

/// The state an operator asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
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

/// Runs `reconcile` on what `weak` points to every `period` (delayed ticks are not
/// made up), until it is gone: the loop of the connector and processor managers.
pub fn reconcile_every<T, F, Fut>(
    weak: std::sync::Weak<T>,
    period: std::time::Duration,
    reconcile: F,
) -> tokio::task::JoinHandle<()>
where
    T: Send + Sync + 'static,
    F: Fn(std::sync::Arc<T>) -> Fut + Send + 'static,
    Fut: std::future::Future<Output = ()> + Send,
{
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(period);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            match weak.upgrade() {
                Some(inner) => reconcile(inner).await,
                None => return,
            }
        }
    })
}

/// The namespace of these records in the broker's state.
const NAMESPACE: &str = "connector";

/// The persisted wish for `name` (running when none was recorded).
pub(crate) fn load(broker: &Broker, name: &str) -> Desired {
    load_in(broker, NAMESPACE, name)
}

/// The persisted wish for `name` among `namespace`'s (running when none).
pub fn load_in(broker: &Broker, namespace: &str, name: &str) -> Desired {
    match broker.state(namespace, name) {
        Ok(Some(v)) => Desired::parse(&v),
        Ok(None) => Desired::Running,
        Err(e) => {
            tracing::error!(namespace, name, error = %e, "reading the wished state failed; running it");
            Desired::Running
        }
    }
}

/// Records the wish for `name`, durably.
pub(crate) async fn save(broker: &Broker, name: &str, desired: Desired) -> weir_broker::Result<()> {
    save_in(broker, NAMESPACE, name, desired).await
}

/// Records the wish for `name` among `namespace`'s, durably.
pub async fn save_in(
    broker: &Broker,
    namespace: &str,
    name: &str,
    desired: Desired,
) -> weir_broker::Result<()> {
    let value = (desired != Desired::Running).then(|| desired.as_bytes().to_vec());
    broker.save_state(namespace, name, value).await
}
