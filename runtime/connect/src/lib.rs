//! # weir-connect: connectors as plugins
//!
//! Sources and sinks are WASM plugins like filters, hot-reloaded from the plugin
//! directory and limited to what their manifest grants. This crate runs them: one
//! task per connector, started, restarted and stopped as the plugin directory changes
//! (a reconcile loop compares the registry with the running tasks), paused, resumed,
//! stopped and started by operators (persisted), and described by [`ConnectorStatus`].
//!
//! - A sink reads its topics with its own consumer group, in offset order per
//!   partition, and commits only after `write` succeeded (at least once); see
//!   [`sink`](crate::sink) for retries and dead letters.
//! - A source is polled; its events and the state it wrote (its cursor) are stored
//!   in one atomic append, so a restart neither loses nor repeats what it produced
//!   (see [`source`](crate::source)).
//!
//! A new version of a connector's plugin serves its next call; a change of its
//! topics or `[connector]` settings restarts its task.
//!
//! In cluster mode each connector runs on one node at a time: the node that holds
//! its lease ([`Cluster::hold`]). Its publishes and commits are fenced by the lease,
//! so a node that lost it (paused, partitioned) writes nothing more; when its node
//! goes silent for the node timeout another node takes the lease and starts it from
//! what was committed. The operator's pause/resume/stop/start is stored in the shared
//! key-values, and every node's reconcile loop follows it.

mod backoff;
pub mod control;
mod error;
mod run;
mod sink;
mod source;
mod status;

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Weak};
use std::time::Duration;

use parking_lot::Mutex;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use weir_broker::Broker;
use weir_broker::cluster::{Cluster, Fence};
use weir_broker::plugins::{Kind, Manifest, Registry, Slot};

pub use control::Desired;
pub use error::ConnectError;
pub use status::{ConnectorStatus, Counters, LastFailure, RunState, Tracker};

use crate::backoff::Backoff;
use crate::run::RunContext;

/// How often the plugin directory's state is compared with the running tasks.
const RECONCILE_EVERY: Duration = Duration::from_millis(250);

/// The connector manager. Cheap to clone; [`shutdown`](Self::shutdown) stops it.
#[derive(Debug, Clone)]
pub struct Connectors {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    broker: Broker,
    registry: Arc<Registry>,
    runs: Mutex<HashMap<String, Run>>,
    trackers: Mutex<HashMap<String, Arc<Tracker>>>,
    reconciler: Mutex<Option<JoinHandle<()>>>,
    /// Cluster mode: connectors run where their lease is held.
    cluster: Option<Cluster>,
}

/// How long a replacement task waits for the task it replaces to finish its call.
const HANDOVER: Duration = Duration::from_secs(60);
/// How long shutdown waits for tasks to finish their calls.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

/// A running connector task. Dropping `desired` ends the task at its next batch
/// boundary (never in the middle of a call: an aborted `write` could still be
/// running on its blocking thread while a successor writes the same events).
#[derive(Debug)]
struct Run {
    /// What the task was started with; a change restarts it.
    fingerprint: String,
    desired: watch::Sender<Desired>,
    task: JoinHandle<()>,
    /// The lease it runs under (cluster mode).
    fence: Option<Fence>,
}

impl Connectors {
    /// Starts the manager: connectors in the registry start now and as they appear
    /// (in cluster mode, those whose lease this node holds or takes). Must be called
    /// inside a tokio runtime.
    pub fn start(broker: Broker, registry: Arc<Registry>, cluster: Option<Cluster>) -> Self {
        let inner = Arc::new(Inner {
            broker,
            registry,
            runs: Mutex::new(HashMap::new()),
            trackers: Mutex::new(HashMap::new()),
            reconciler: Mutex::new(None),
            cluster,
        });
        let weak: Weak<Inner> = Arc::downgrade(&inner);
        let handle = control::reconcile_every(weak, RECONCILE_EVERY, |inner| async move {
            inner.reconcile().await
        });
        *inner.reconciler.lock() = Some(handle);
        Connectors { inner }
    }

    /// Stops every connector task at its next batch boundary, waiting up to 10 s for
    /// calls in flight; what is not committed by then is done again after a restart
    /// (at least once).
    pub async fn shutdown(&self) {
        if let Some(h) = self.inner.reconciler.lock().take() {
            h.abort();
        }
        let runs: Vec<Run> = self.inner.runs.lock().drain().map(|(_, r)| r).collect();
        let deadline = tokio::time::Instant::now() + SHUTDOWN_GRACE;
        for Run {
            desired,
            mut task,
            fence,
            ..
        } in runs
        {
            drop(desired);
            if tokio::time::timeout_at(deadline, &mut task).await.is_err() {
                task.abort();
            }
            // Another node takes over at once rather than after the node timeout.
            if let (Some(cluster), Some(fence)) = (&self.inner.cluster, fence) {
                cluster.release(&fence).await;
            }
        }
    }

    /// Every connector, by name.
    pub fn list(&self) -> Vec<ConnectorStatus> {
        let mut names: Vec<String> = self
            .inner
            .registry
            .slots()
            .iter()
            .filter(|s| connector_manifest(s).is_some())
            .map(|s| s.name().to_string())
            .collect();
        names.sort();
        names.iter().filter_map(|n| self.status(n)).collect()
    }

    /// One connector's status.
    pub fn status(&self, name: &str) -> Option<ConnectorStatus> {
        let slot = self.inner.registry.get(name)?;
        let manifest = connector_manifest(&slot)?;
        let settings = manifest.connector_settings();
        let tracker = self.inner.tracker(name);
        let current = slot.current();
        let topics: Vec<String> = manifest.attach.iter().map(|a| a.topic.clone()).collect();
        let (group, lag_records) = if manifest.kind == Kind::Sink {
            let group = settings.group_of(name);
            let lag = self.inner.broker.groups().lag_records(&group, &topics).ok();
            (Some(group), lag)
        } else {
            (None, None)
        };
        let c = &tracker.counters;
        let last_success = tracker.last_success_ms.load(Ordering::Relaxed);
        let node = match &self.inner.cluster {
            Some(cluster) => cluster.holder(name),
            None => None,
        };
        // Where another node runs it, that node's report says what it is doing.
        let elsewhere = match (&self.inner.cluster, &node) {
            (Some(cluster), Some(holder)) if holder != cluster.node() => cluster
                .report_of(holder)
                .and_then(|r| r.connectors.get(name).and_then(|s| RunState::parse(s))),
            _ => None,
        };
        Some(ConnectorStatus {
            name: name.to_string(),
            node,
            kind: manifest.kind.as_str(),
            state: if current.is_none() {
                RunState::Failed
            } else {
                elsewhere.unwrap_or_else(|| tracker.state())
            },
            desired: control::load(&self.inner.broker, name),
            version: current.as_ref().map(|p| p.version_tag()),
            topics,
            group,
            lag_records,
            records: c.records.load(Ordering::Relaxed),
            batches: c.batches.load(Ordering::Relaxed),
            errors: c.errors.load(Ordering::Relaxed),
            retries: c.retries.load(Ordering::Relaxed),
            dead_lettered: c.dead_lettered.load(Ordering::Relaxed),
            capability_refusals: current.as_ref().map_or(0, |p| p.capability_refusals()),
            last_success_ms: (last_success > 0).then_some(last_success),
            last_error: tracker
                .last_error
                .lock()
                .clone()
                .map(|(at_ms, message)| LastFailure { at_ms, message })
                .or_else(|| {
                    current.is_none().then(|| LastFailure {
                        at_ms: 0,
                        message: slot
                            .current_or_unavailable()
                            .err()
                            .map(|e| e.to_string())
                            .unwrap_or_default(),
                    })
                }),
            settings,
        })
    }

    /// Sets what an operator wants `name` to be (persisted): the task follows at
    /// once, at a batch boundary.
    pub async fn set_desired(
        &self,
        name: &str,
        desired: Desired,
    ) -> Result<ConnectorStatus, ConnectError> {
        let slot = self
            .inner
            .registry
            .get(name)
            .filter(|s| connector_manifest(s).is_some())
            .ok_or_else(|| ConnectError::NotFound(name.to_string()))?;
        control::save(&self.inner.broker, slot.name(), desired).await?;
        if let Some(run) = self.inner.runs.lock().get(name) {
            run.desired.send_replace(desired);
        }
        tracing::info!(connector = name, ?desired, "connector state set");
        self.status(name)
            .ok_or_else(|| ConnectError::NotFound(name.to_string()))
    }
}

impl Inner {
    fn tracker(&self, name: &str) -> Arc<Tracker> {
        self.trackers
            .lock()
            .entry(name.to_string())
            .or_default()
            .clone()
    }

    /// Starts tasks for new connectors, restarts those whose topics or settings
    /// changed, ends those whose plugin went away (or, in cluster mode, whose lease
    /// another node holds), and passes on what operators asked for meanwhile.
    async fn reconcile(&self) {
        let mut wanted: HashMap<String, (Arc<Slot>, Manifest, Option<Fence>)> = HashMap::new();
        for slot in self.registry.slots() {
            if let Some(plugin) = slot.current()
                && plugin.kind().is_connector()
            {
                let name = slot.name().to_string();
                let fence = match &self.cluster {
                    None => None,
                    Some(cluster) => match cluster.hold(&name).await {
                        Ok(Some(fence)) => Some(fence),
                        Ok(None) => continue,
                        Err(e) => {
                            // The cluster is unreachable: a running task keeps its
                            // lease (its writes are fenced anyway); none starts.
                            tracing::warn!(connector = %name, error = %e, "checking the connector's lease failed");
                            match self.runs.lock().get(&name).map(|r| r.fence.clone()) {
                                Some(fence) => fence,
                                None => continue,
                            }
                        }
                    },
                };
                wanted.insert(name, (slot.clone(), plugin.manifest().clone(), fence));
            }
        }
        if let Some(cluster) = &self.cluster {
            let states = wanted
                .keys()
                .map(|name| {
                    (
                        name.clone(),
                        self.tracker(name).state().as_str().to_string(),
                    )
                })
                .collect();
            cluster.update_report(|r| r.connectors = states);
        }
        let mut released = Vec::new();
        self.start_and_end(wanted, &mut released);
        // A connector no longer served here is free for a node that serves it.
        if let Some(cluster) = &self.cluster {
            for fence in released {
                cluster.release(&fence).await;
            }
        }
    }

    /// The synchronous part of [`reconcile`](Self::reconcile): ends and starts tasks
    /// under the lock; the leases of connectors that went away go to `released`.
    fn start_and_end(
        &self,
        wanted: HashMap<String, (Arc<Slot>, Manifest, Option<Fence>)>,
        released: &mut Vec<Fence>,
    ) {
        let mut runs = self.runs.lock();
        // Ended tasks finish their current call; a replacement waits for that.
        let mut ending: HashMap<String, JoinHandle<()>> = runs
            .extract_if(|name, run| {
                wanted
                    .get(name)
                    .is_none_or(|(_, m, fence)| fingerprint(m) != run.fingerprint || *fence != run.fence)
            })
            .map(|(name, run)| {
                tracing::info!(connector = %name, "connector task ending (plugin removed or reconfigured, or its lease moved)");
                if !wanted.contains_key(&name)
                    && let Some(fence) = run.fence
                {
                    released.push(fence);
                }
                (name, run.task)
            })
            .collect();
        for (name, (slot, manifest, fence)) in wanted {
            let desired = control::load(&self.broker, &name);
            if let Some(run) = runs.get(&name) {
                // Another node may have changed it (the wish is shared in cluster mode).
                run.desired
                    .send_if_modified(|d| std::mem::replace(d, desired) != desired);
                continue;
            }
            let (tx, rx) = watch::channel(desired);
            let settings = manifest.connector_settings();
            let ctx = RunContext {
                name: name.clone(),
                slot,
                broker: self.broker.clone(),
                backoff: Backoff::new(&settings),
                settings,
                topics: manifest.attach.iter().map(|a| a.topic.clone()).collect(),
                tracker: self.tracker(&name),
                desired: rx,
                fingerprint: fingerprint(&manifest),
                fence: fence.clone(),
            };
            ctx.tracker.set(RunState::Starting);
            let previous = ending.remove(&name);
            let kind = manifest.kind;
            let task = tokio::spawn(async move {
                if let Some(previous) = previous
                    && tokio::time::timeout(HANDOVER, previous).await.is_err()
                {
                    tracing::warn!(connector = %ctx.name, "the previous task is still in a call after {HANDOVER:?}; starting anyway");
                }
                match kind {
                    Kind::Source => source::run(ctx).await,
                    _ => sink::run(ctx).await,
                }
            });
            tracing::info!(connector = %name, kind = manifest.kind.as_str(), ?desired, "connector task started");
            runs.insert(
                name,
                Run {
                    fingerprint: fingerprint(&manifest),
                    desired: tx,
                    task,
                    fence,
                },
            );
        }
    }
}

/// The manifest of a connector slot (current, or the one that failed to load).
fn connector_manifest(slot: &Slot) -> Option<Manifest> {
    slot.manifest().filter(|m| m.kind.is_connector())
}

/// What a task depends on besides the plugin's code and config.
pub(crate) fn fingerprint(m: &Manifest) -> String {
    let topics: Vec<&str> = m.attach.iter().map(|a| a.topic.as_str()).collect();
    format!(
        "{}|{}|{:?}",
        m.kind.as_str(),
        topics.join(","),
        m.connector_settings()
    )
}
