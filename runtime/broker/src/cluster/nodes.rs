//! Node reports and liveness. Each node rewrites its report every second (and at
//! once when it changes); the others count it live while the report's version keeps
//! moving, measured on their own monotonic clock, so no two clocks need agree.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use super::Cluster;
use crate::Result;

/// Where node reports live in the shared key-values.
const PREFIX: &str = "cluster/node/";
/// How often a node rewrites its report.
pub const BEAT: Duration = Duration::from_secs(1);

/// A version this node refused, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rejection {
    /// The refused version's content hash.
    pub version: String,
    /// The loader's reason, as an operator reads it.
    pub reason: String,
    /// The deployment it answered (its key's version), so a rollout never takes an
    /// earlier refusal of the same version for this one's.
    pub deployment: u64,
}

/// What a node says about itself.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeReport {
    /// The node's id (`[cluster] node`).
    pub node: String,
    /// Where it serves HTTP.
    pub url: String,
    /// When it started (ms since the epoch, its own clock).
    pub started_ms: i64,
    /// When it wrote this report (its own clock; for people, not for liveness).
    pub beat_ms: i64,
    /// The version each plugin serves on it, by name.
    pub plugins: BTreeMap<String, String>,
    /// The last cluster version of each plugin it refused.
    pub rejected: BTreeMap<String, Rejection>,
    /// The connectors it runs, with what each is doing (`running`, `paused`, ...).
    pub connectors: BTreeMap<String, String>,
}

impl NodeReport {
    pub(super) fn new(node: &str, url: &str) -> Self {
        NodeReport {
            node: node.to_string(),
            url: url.to_string(),
            started_ms: weir_storage::now_ms(),
            ..NodeReport::default()
        }
    }
}

/// A node as this node sees it.
#[derive(Debug, Clone)]
pub struct NodeView {
    /// Its last report.
    pub report: NodeReport,
    /// Whether its report moved within the node timeout.
    pub live: bool,
    /// How long since this node saw its report change.
    pub silent: Duration,
}

fn key(node: &str) -> Vec<u8> {
    format!("{PREFIX}{node}").into_bytes()
}

impl Cluster {
    /// Changes this node's report; the heartbeat writes it at once.
    pub fn update_report(&self, change: impl FnOnce(&mut NodeReport)) {
        let changed = {
            let mut report = self.inner.report.lock();
            let before = report.clone();
            change(&mut report);
            *report != before
        };
        if changed {
            self.inner.changed.notify_one();
        }
    }

    /// This node's report as it stands.
    pub fn report(&self) -> NodeReport {
        self.inner.report.lock().clone()
    }

    /// Writes this node's report now.
    async fn beat(&self) -> Result<()> {
        let value = {
            let mut report = self.inner.report.lock();
            report.beat_ms = weir_storage::now_ms();
            serde_json::to_vec(&*report).expect("reports serialise")
        };
        self.inner
            .log
            .kv_write(vec![(key(&self.inner.node), Some(value))])
            .await?;
        Ok(())
    }

    /// Starts the heartbeat; it ends when the returned handle is aborted or the
    /// cluster is dropped.
    pub fn start_heartbeat(&self) -> tokio::task::JoinHandle<()> {
        let weak = std::sync::Arc::downgrade(&self.inner);
        tokio::spawn(async move {
            loop {
                let Some(inner) = weak.upgrade() else { return };
                let cluster = Cluster { inner };
                if let Err(e) = cluster.beat().await {
                    tracing::warn!(error = %e, "writing this node's cluster report failed");
                }
                let inner = cluster.inner.clone();
                drop(cluster);
                tokio::select! {
                    () = tokio::time::sleep(BEAT) => {}
                    () = inner.changed.notified() => {}
                }
            }
        })
    }

    /// Removes this node's report (a clean shutdown), so its leases are taken over at
    /// once instead of after the node timeout.
    pub async fn leave(&self) {
        if let Err(e) = self
            .inner
            .log
            .kv_write(vec![(key(&self.inner.node), None)])
            .await
        {
            tracing::warn!(error = %e, "removing this node's cluster report failed");
        }
    }

    /// Every node with a report, this one included, by id.
    pub fn nodes(&self) -> Vec<NodeView> {
        let now = Instant::now();
        let kv = self.kv();
        let reports = self
            .inner
            .log
            .kv_scan(PREFIX.as_bytes())
            .unwrap_or_default();
        let mut seen = self.inner.seen.lock();
        let mut views = Vec::with_capacity(reports.len());
        for (k, value) in reports {
            let Ok(report) = serde_json::from_slice::<NodeReport>(&value) else {
                continue;
            };
            let (_, version) = kv.get_versioned(&k);
            let entry = seen.entry(report.node.clone()).or_insert((version, now));
            if entry.0 != version {
                *entry = (version, now);
            }
            let silent = now - entry.1;
            let live = report.node == self.inner.node || silent < self.inner.timeout;
            views.push(NodeView {
                report,
                live,
                silent,
            });
        }
        views
    }

    /// The last report of `node`, live or not.
    pub fn report_of(&self, node: &str) -> Option<NodeReport> {
        let (value, _) = self.kv().get_versioned(&key(node));
        serde_json::from_slice(&value?).ok()
    }

    /// Whether `node` has a report that moved within the node timeout.
    pub fn is_live(&self, node: &str) -> bool {
        self.nodes().iter().any(|v| v.report.node == node && v.live)
    }
}
