//! What makes several Weir nodes on one cluster log act as one system, built only on
//! the log's compare-and-set key-values ([`SharedKv`]) and blobs: no protocol of
//! Weir's own between nodes.
//!
//! - [`nodes`]: each node's report (who it is, the plugin versions it serves, what it
//!   rejected, the connectors it runs), rewritten every second; a node is live while
//!   its report keeps changing, judged on each observer's own clock.
//! - [`lease`]: one holder per name (a connector), taken over only from a node that
//!   is no longer live, and a [`Fence`] that makes a former holder's writes fail.
//! - [`deploy`]: the plugin version the cluster serves per name, its files in the
//!   blob store, and the rollout that waits for every live node's answer.
//! - [`agent`]: each node's loop that makes its registry follow those deployments.

pub mod agent;
pub mod deploy;
pub mod lease;
pub mod nodes;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use tokio::sync::Notify;
use weir_storage::{Log, SharedKv};

pub use deploy::{Deployment, NodeAnswer, Rollout};
pub use lease::Fence;
pub use nodes::{BEAT, NodeReport, NodeView, Rejection};

/// How long a node may stay silent before others count it gone (its leases are
/// then taken over).
pub const DEFAULT_NODE_TIMEOUT: Duration = Duration::from_secs(5);

/// This node's part in the cluster. Cheap to clone.
#[derive(Clone)]
pub struct Cluster {
    inner: Arc<Inner>,
}

struct Inner {
    log: Arc<dyn Log>,
    node: String,
    /// How long a silent node stays live.
    timeout: Duration,
    /// What this node says about itself (written by the heartbeat).
    report: Mutex<NodeReport>,
    /// Per node: its report's last version and when this node saw it change.
    seen: Mutex<HashMap<String, (u64, Instant)>>,
    /// Wakes the heartbeat to write a changed report at once.
    changed: Notify,
}

impl std::fmt::Debug for Cluster {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cluster")
            .field("node", &self.inner.node)
            .finish_non_exhaustive()
    }
}

impl Cluster {
    /// This node's part, on a log that several nodes share (`None` for the
    /// embedded store: one node is the whole system).
    pub fn new(log: Arc<dyn Log>, node: &str, url: &str, timeout: Duration) -> Option<Cluster> {
        log.shared_kv()?;
        log.blobs()?;
        Some(Cluster {
            inner: Arc::new(Inner {
                log,
                node: node.to_string(),
                timeout,
                report: Mutex::new(NodeReport::new(node, url)),
                seen: Mutex::new(HashMap::new()),
                changed: Notify::new(),
            }),
        })
    }

    /// This node's id.
    pub fn node(&self) -> &str {
        &self.inner.node
    }

    /// How long a silent node stays live.
    pub fn node_timeout(&self) -> Duration {
        self.inner.timeout
    }

    fn kv(&self) -> &dyn SharedKv {
        self.inner
            .log
            .shared_kv()
            .expect("a cluster is only built on a shared log")
    }

    fn blobs(&self) -> &dyn weir_storage::Blobs {
        self.inner
            .log
            .blobs()
            .expect("a cluster is only built on a shared log")
    }
}
