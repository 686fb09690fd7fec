//! What a plugin has done and how it is doing: counters kept on the call path, and
//! the snapshot the API and metrics show.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use parking_lot::Mutex;

use crate::error::PluginError;
use crate::history::Entry;
use crate::manifest::{Attachment, Kind};

/// (plugin name, version hash, config JSON).
use super::Slot;

/// What an error policy did with events.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PolicyAction {
    /// The request was refused.
    Rejected,
    /// The events were dropped.
    Skipped,
    /// The events went to a dead-letter topic.
    DeadLettered,
}

#[derive(Debug, Default)]
pub(super) struct Counters {
    pub(super) calls: AtomicU64,
    pub(super) events_in: AtomicU64,
    pub(super) events_out: AtomicU64,
    pub(super) time_ns: AtomicU64,
    pub(super) errors: Mutex<BTreeMap<&'static str, u64>>,
    pub(super) rejected: AtomicU64,
    pub(super) skipped: AtomicU64,
    pub(super) dead_lettered: AtomicU64,
}

/// A plugin's most recent error.
#[derive(Debug, Clone, PartialEq)]
pub struct LastError {
    /// Milliseconds since the Unix epoch.
    pub at_ms: u64,
    /// The stable error code.
    pub kind: &'static str,
    /// The message.
    pub message: String,
}

impl LastError {
    pub(super) fn new(e: &PluginError) -> Self {
        Self {
            at_ms: SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .unwrap_or(Duration::ZERO)
                .as_millis() as u64,
            kind: e.code(),
            message: e.to_string(),
        }
    }
}

/// A snapshot of one plugin for the API.
#[derive(Debug, Clone)]
pub struct PluginStatus {
    /// Name.
    pub name: String,
    /// Kind, when a version is loaded.
    pub kind: Option<Kind>,
    /// SHA-256 of the current component.
    pub version: Option<String>,
    /// `active`, `quarantined`, `failed` (no version loaded) or `removed`.
    pub state: &'static str,
    /// Where its manifest attaches it.
    pub attachments: Vec<Attachment>,
    /// Its limits.
    pub limits: Option<LimitsView>,
    /// Counters since it was loaded.
    pub counters: CountersView,
    /// Present while quarantined.
    pub quarantine: Option<QuarantineView>,
    /// Failures in the current window.
    pub recent_failures: u32,
    /// Quarantines since load.
    pub times_quarantined: u64,
    /// The most recent error.
    pub last_error: Option<LastError>,
    /// `running` while the current version is on probation.
    pub probation: Option<&'static str>,
    /// The most recent refused versions, newest first.
    pub rejected_versions: Vec<Entry>,
    /// Version changes since start-up.
    pub reloads: ReloadsView,
    /// The current version's idle instances and what they hold.
    pub pool: Option<PoolView>,
    /// A candidate beside the serving version: `shadow <name@hash>` or `canary
    /// <percent>% <name@hash>`.
    pub rollout: Option<String>,
}

/// A version's idle instances, the memory they hold, and its stdout/stderr lines.
#[derive(Debug, Clone, Copy)]
pub struct PoolView {
    /// Idle instances kept for the next calls (at most 8).
    pub idle_instances: usize,
    /// Linear memory they hold together, in bytes.
    pub memory_bytes: usize,
    /// Lines of stdout and stderr logged since load.
    pub output_lines: u64,
    /// Lines dropped over the rate limit.
    pub output_lines_dropped: u64,
}

/// Version changes shown in a status.
#[derive(Debug, Clone, Copy)]
pub struct ReloadsView {
    /// Versions activated (at start-up, from files or deploys, by rollbacks).
    pub activated: u64,
    /// Versions refused.
    pub rejected: u64,
    /// Rollbacks, automatic or requested.
    pub rolled_back: u64,
}

/// Limits shown in a status.
#[derive(Debug, Clone, Copy)]
pub struct LimitsView {
    /// Deadline per call.
    pub timeout_ms: u64,
    /// Memory cap.
    pub memory_mb: u64,
}

/// Counters shown in a status.
#[derive(Debug, Clone)]
pub struct CountersView {
    /// Calls made.
    pub calls: u64,
    /// Events handed in.
    pub events_in: u64,
    /// Events handed out (kept, produced or routed).
    pub events_out: u64,
    /// Time spent in calls.
    pub time_ms: f64,
    /// Failed calls by error code.
    pub errors: BTreeMap<String, u64>,
    /// Events whose request was refused by a `reject` policy.
    pub rejected: u64,
    /// Events dropped by a `skip` policy.
    pub skipped: u64,
    /// Events sent to a dead-letter topic.
    pub dead_lettered: u64,
}

/// Quarantine details shown in a status.
#[derive(Debug, Clone, Copy)]
pub struct QuarantineView {
    /// How long it has been quarantined.
    pub for_ms: u64,
    /// When the next retry call is allowed.
    pub next_retry_in_ms: u64,
}

impl Slot {
    /// What `GET /v1/plugins/{name}` shows.
    pub fn status(&self) -> PluginStatus {
        let current = self.current();
        let health = self.health.view(Instant::now());
        let state = match (&current, health.quarantined_for) {
            (None, _) if self.removed.load(Ordering::Relaxed) => "removed",
            (None, _) => "failed",
            (Some(_), Some(_)) => "quarantined",
            (Some(_), None) => "active",
        };
        // One lock at a time: a struct literal would hold every guard until its end,
        // and `activate` takes history then probation.
        let last_error = self.last_error.lock().clone();
        let probation = self.probation.lock().as_ref().map(|_| "running");
        let rejected_versions = self.history.lock().rejected(super::MAX_REJECTED_SHOWN);
        let c = &self.counters;
        let rollout = match (self.canary(), self.shadow()) {
            (Some(c), _) => Some(format!(
                "canary {}% {}",
                c.settings.percent,
                c.plugin.version_tag()
            )),
            (None, Some(s)) => Some(format!("shadow {}", s.plugin.version_tag())),
            (None, None) => None,
        };
        PluginStatus {
            rollout,
            name: self.name.clone(),
            kind: current.as_ref().map(|p| p.kind()),
            version: current.as_ref().map(|p| p.hash().to_string()),
            state,
            attachments: current.as_ref().map_or_else(
                || {
                    self.failed_manifest
                        .lock()
                        .as_ref()
                        .map(|m| m.attach.clone())
                        .unwrap_or_default()
                },
                |p| p.manifest().attach.clone(),
            ),
            limits: current.as_ref().map(|p| LimitsView {
                timeout_ms: p.manifest().limits.timeout_ms,
                memory_mb: p.manifest().limits.memory_mb,
            }),
            counters: CountersView {
                calls: c.calls.load(Ordering::Relaxed),
                events_in: c.events_in.load(Ordering::Relaxed),
                events_out: c.events_out.load(Ordering::Relaxed),
                time_ms: c.time_ns.load(Ordering::Relaxed) as f64 / 1e6,
                errors: c
                    .errors
                    .lock()
                    .iter()
                    .map(|(k, v)| (k.to_string(), *v))
                    .collect(),
                rejected: c.rejected.load(Ordering::Relaxed),
                skipped: c.skipped.load(Ordering::Relaxed),
                dead_lettered: c.dead_lettered.load(Ordering::Relaxed),
            },
            quarantine: health.quarantined_for.map(|since| QuarantineView {
                for_ms: since.as_millis() as u64,
                next_retry_in_ms: health.next_probe_in.unwrap_or_default().as_millis() as u64,
            }),
            recent_failures: health.recent_failures,
            times_quarantined: health.times_quarantined,
            last_error,
            probation,
            rejected_versions,
            reloads: ReloadsView {
                activated: self.reloads.activated.load(Ordering::Relaxed),
                rejected: self.reloads.rejected.load(Ordering::Relaxed),
                rolled_back: self.reloads.rolled_back.load(Ordering::Relaxed),
            },
            pool: current.as_ref().map(|p| {
                let (idle_instances, memory_bytes) = p.pooled_memory();
                let (output_lines, output_lines_dropped) = p.output_lines();
                PoolView {
                    idle_instances,
                    memory_bytes,
                    output_lines,
                    output_lines_dropped,
                }
            }),
        }
    }
}
