//! One plugin name: its current version behind an atomic pointer, its health
//! (quarantine), the probation of a new version, rollbacks, and [`Slot::call`], the
//! one entry through which every caller calls a plugin.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use arc_swap::ArcSwapOption;
use parking_lot::Mutex;

use crate::error::{PluginError, Result};
use crate::health::{Admission, Health, HealthPolicy, Transition};
use crate::history::{
    Entry, History, NewVersion, Origin, Outcome, Probation, ProbationPolicy, Verdict,
};
use crate::manifest::Manifest;
use crate::plugin::Plugin;

/// (plugin name, version hash, config JSON).
use super::canary::{Canary, CanaryVerdict};
use super::status::{Counters, LastError, PolicyAction};
use super::{Rejected, ServingListener};

/// One plugin name: its current version, health and counters.
#[derive(Debug)]
pub struct Slot {
    pub(super) name: String,
    pub(super) current: ArcSwapOption<Plugin>,
    pub(super) health: Health,
    pub(super) counters: Counters,
    pub(super) last_error: Mutex<Option<LastError>>,
    /// Why the plugin has no current version, if it failed to load.
    pub(super) load_error: Mutex<Option<LastError>>,
    /// The manifest of a version that failed to load, when it parsed: its
    /// attachments still hold.
    pub(super) failed_manifest: Mutex<Option<Manifest>>,
    /// Its folder was deleted: it serves and attaches nothing.
    pub(super) removed: AtomicBool,
    /// Every activation, rejection, rollback and removal. Held while the current
    /// version changes, so changes are serialised.
    pub(super) history: Mutex<History>,
    pub(super) probation_policy: ProbationPolicy,
    /// The probation of the current version, if it replaced another.
    pub(super) probation: Mutex<Option<Probation>>,
    pub(super) serving_listener: Arc<OnceLock<ServingListener>>,
    pub(super) reloads: ReloadCounters,
    /// A candidate version compared with the serving one, if any.
    pub(super) shadow: ArcSwapOption<super::shadow::Shadow>,
    /// A candidate version serving a share of the keys, if any.
    pub(super) canary: ArcSwapOption<Canary>,
}

#[derive(Debug, Default)]
pub(super) struct ReloadCounters {
    pub(super) activated: AtomicU64,
    pub(super) rejected: AtomicU64,
    pub(super) rolled_back: AtomicU64,
}

/// How a call is made: a batch call is admitted by the breaker and its outcome
/// counts; a retry (on part of a batch whose call failed, to isolate bad events) is
/// only counted; so is a canary's candidate's call (its canary judges it, not the
/// serving version's breaker and probation).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CallKind {
    /// A whole batch.
    Batch,
    /// Part of a batch being retried.
    Retry,
    /// A canary's candidate on the keys it takes.
    Canary,
}

impl Slot {
    pub(super) fn new(
        name: &str,
        policy: HealthPolicy,
        probation_policy: ProbationPolicy,
        serving_listener: Arc<OnceLock<ServingListener>>,
    ) -> Self {
        Self {
            name: name.to_string(),
            current: ArcSwapOption::empty(),
            health: Health::new(policy),
            counters: Counters::default(),
            last_error: Mutex::new(None),
            load_error: Mutex::new(None),
            failed_manifest: Mutex::new(None),
            removed: AtomicBool::new(false),
            history: Mutex::new(History::default()),
            probation_policy,
            probation: Mutex::new(None),
            serving_listener,
            reloads: ReloadCounters::default(),
            shadow: ArcSwapOption::empty(),
            canary: ArcSwapOption::empty(),
        }
    }

    /// The candidate shadowing the serving version, if any.
    pub fn shadow(&self) -> Option<Arc<super::shadow::Shadow>> {
        self.shadow.load_full()
    }

    /// Shadows the serving version with `shadow` (`None` ends shadowing); the one it
    /// replaces stops. Both are recorded in the version history.
    pub fn set_shadow(&self, shadow: Option<Arc<super::shadow::Shadow>>) {
        let mut history = self.history.lock();
        match &shadow {
            Some(s) => history.shadow_started(
                &s.plugin,
                format!(
                    "shadow: {}% of batches, up to {}% of a core",
                    s.settings.sample_percent,
                    (s.settings.max_share * 100.0).round()
                ),
            ),
            None => history.end_shadow("stopped"),
        }
        if let Some(old) = self.shadow.swap(shadow) {
            old.stop();
        }
    }

    /// The candidate serving a share of the keys, if any.
    pub fn canary(&self) -> Option<Arc<Canary>> {
        self.canary.load_full()
    }

    /// Starts `canary` beside the serving version (replacing a running one), if
    /// the version it was made to run beside still serves; recorded in the version
    /// history.
    pub(super) fn start_canary(&self, canary: Arc<Canary>) -> Result<()> {
        let mut history = self.history.lock();
        let serving = self.current().map(|p| p.hash().to_string());
        if serving.as_deref() != Some(canary.serving.as_str()) {
            return Err(PluginError::ChangedMeanwhile {
                plugin: self.name.clone(),
                expected: canary.serving.clone(),
                found: serving.unwrap_or_else(|| "none".into()),
            });
        }
        history.canary_started(
            &canary.plugin,
            format!(
                "canary: {}% of keys, judged after {} events (failure rate at most {:.2} points above the serving version's)",
                canary.settings.percent,
                canary.settings.promote_after,
                canary.settings.max_error_rate_increase * 100.0
            ),
        );
        self.canary.store(Some(canary));
        Ok(())
    }

    /// Carries out `canary`'s verdict, if it is still this slot's canary: a promotion
    /// makes the candidate the serving version (no probation: it just proved itself)
    /// and has its files written to the plugin directory; a rollback leaves every key
    /// on the serving version. Returns whether it did (not when the canary had
    /// already ended).
    pub fn conclude_canary(&self, canary: &Arc<Canary>, verdict: CanaryVerdict) -> bool {
        let mut history = self.history.lock();
        if !self
            .canary
            .load()
            .as_ref()
            .is_some_and(|c| Arc::ptr_eq(c, canary))
        {
            return false;
        }
        self.canary.store(None);
        let version = &canary.plugin.hash()[..12];
        match verdict {
            CanaryVerdict::Promote(reason) => {
                history.end_canary(Outcome::Canary, &reason);
                let plugin = canary.plugin.clone();
                history.activate(
                    plugin.clone(),
                    NewVersion::of(&plugin, Origin::Canary, None),
                    false,
                    Outcome::Replaced,
                    Some(format!("replaced by canary {version}")),
                );
                self.make_current(&mut history, &plugin, false);
                self.reloads.activated.fetch_add(1, Ordering::Relaxed);
                drop(history);
                tracing::info!(plugin = self.name, version, reason, "canary promoted");
                if let Some(listener) = self.serving_listener.get() {
                    (listener.0)(&self.name);
                }
            }
            CanaryVerdict::RollBack(reason) => {
                history.end_canary(Outcome::CanaryRolledBack, &reason);
                self.reloads.rolled_back.fetch_add(1, Ordering::Relaxed);
                drop(history);
                tracing::warn!(plugin = self.name, version, reason, "canary rolled back");
            }
        }
        true
    }

    pub(super) fn activate(
        &self,
        plugin: Arc<Plugin>,
        origin: Origin,
        load_time: Option<Duration>,
    ) {
        let mut history = self.history.lock();
        let on_probation = self.current().is_some() && origin != Origin::Rollback;
        history.activate(
            plugin.clone(),
            NewVersion::of(&plugin, origin, load_time),
            on_probation,
            Outcome::Replaced,
            None,
        );
        self.make_current(&mut history, &plugin, on_probation);
        self.reloads.activated.fetch_add(1, Ordering::Relaxed);
    }

    /// The swap itself, shared by activation and rollback; the caller holds the
    /// history lock, so swaps are serialised.
    pub(super) fn make_current(
        &self,
        history: &mut History,
        plugin: &Arc<Plugin>,
        on_probation: bool,
    ) {
        self.end_canary_beside(history, Some(plugin.hash()));
        self.current.store(Some(plugin.clone()));
        *self.probation.lock() = on_probation.then(|| Probation::new(plugin.hash()));
        *self.load_error.lock() = None;
        *self.failed_manifest.lock() = None;
        self.removed.store(false, Ordering::Relaxed);
        self.health.reset();
    }

    /// A canary runs beside one serving version: when another one serves (a deploy,
    /// a rollback) or none does (a removal), the canary ends.
    fn end_canary_beside(&self, history: &mut History, serving: Option<&str>) {
        let ended = self
            .canary
            .load()
            .as_ref()
            .is_some_and(|c| Some(c.serving.as_str()) != serving);
        if ended {
            self.canary.store(None);
            history.end_canary(
                Outcome::CanaryRolledBack,
                "stopped: the version it ran beside no longer serves",
            );
            tracing::warn!(
                plugin = self.name,
                "canary stopped: the version it ran beside no longer serves"
            );
        }
    }

    pub(super) fn reject(&self, r: Rejected<'_>, manifest: Option<Manifest>) {
        self.history.lock().reject(
            NewVersion {
                version: r.version.unwrap_or(""),
                origin: r.origin,
                file: r.file.map(str::to_string),
                load_time: r.load_time,
            },
            r.error.to_string(),
        );
        self.reloads.rejected.fetch_add(1, Ordering::Relaxed);
        if self.current().is_none() {
            self.set_failed(r.error, manifest);
        } else {
            *self.last_error.lock() = Some(LastError::new(r.error));
        }
    }

    pub(super) fn remove(&self) -> bool {
        let mut history = self.history.lock();
        let was_serving = self.current().is_some();
        self.end_canary_beside(&mut history, None);
        history.end_active(Outcome::Removed, None);
        self.current.store(None);
        *self.probation.lock() = None;
        *self.load_error.lock() = None;
        *self.failed_manifest.lock() = None;
        self.removed.store(true, Ordering::Relaxed);
        was_serving
    }

    /// Swaps back to the version that served before the current one. With
    /// `only_if`, does so only while that version is the current one (a probation
    /// must not roll back a newer version).
    pub(super) fn rollback(
        &self,
        only_if: Option<&str>,
        expected: Option<&str>,
        reason: String,
    ) -> Result<Arc<Plugin>> {
        let mut history = self.history.lock();
        let current = self.current();
        let current_hash = current.as_deref().map(Plugin::hash);
        if only_if.is_some() && only_if != current_hash {
            return current.ok_or_else(|| self.no_previous());
        }
        let target = history
            .previous_good(current_hash)
            .ok_or_else(|| self.no_previous())?;
        if let Some(expected) = expected.filter(|e| *e != target.hash()) {
            return Err(PluginError::ChangedMeanwhile {
                plugin: self.name.clone(),
                expected: expected.to_string(),
                found: target.hash().to_string(),
            });
        }
        history.activate(
            target.clone(),
            NewVersion::of(&target, Origin::Rollback, None),
            false,
            Outcome::RolledBack,
            Some(reason.clone()),
        );
        self.make_current(&mut history, &target, false);
        self.reloads.rolled_back.fetch_add(1, Ordering::Relaxed);
        drop(history);
        tracing::warn!(
            plugin = self.name,
            from = current_hash.map(|h| &h[..12]),
            to = &target.hash()[..12],
            reason,
            "plugin rolled back"
        );
        if let Some(listener) = self.serving_listener.get() {
            (listener.0)(&self.name);
        }
        Ok(target)
    }

    pub(super) fn no_previous(&self) -> PluginError {
        PluginError::NoPreviousVersion {
            plugin: self.name.clone(),
        }
    }

    /// Feeds a batch call's outcome to the probation of `plugin`'s version; rolls
    /// back if it failed.
    pub(super) fn observe_probation(&self, plugin: &Plugin, events: usize, failed: bool) {
        let verdict = {
            let mut probation = self.probation.lock();
            let Some(p) = probation.as_mut().filter(|p| p.version == plugin.hash()) else {
                return;
            };
            let verdict = p.observe(events, failed, self.probation_policy);
            if verdict != Verdict::Running {
                *probation = None;
            }
            verdict
        };
        match verdict {
            Verdict::Running => {}
            Verdict::Passed => {
                self.history.lock().pass_probation(plugin.hash());
                tracing::info!(
                    plugin = self.name,
                    version = &plugin.hash()[..12],
                    "new plugin version passed its probation"
                );
            }
            Verdict::Failed(reason) => {
                let reason = format!("automatic rollback of {}: {reason}", &plugin.hash()[..12]);
                if let Err(e) = self.rollback(Some(plugin.hash()), None, reason) {
                    tracing::error!(plugin = self.name, error = %e, "automatic rollback failed");
                }
            }
        }
    }

    /// The version history, newest first.
    pub fn versions(&self) -> Vec<Entry> {
        self.history.lock().entries()
    }

    /// The plugin's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The current version, if one is loaded.
    pub fn current(&self) -> Option<Arc<Plugin>> {
        self.current.load_full()
    }

    /// A version still loaded (the current one or one of the last that served), by
    /// its hash or a prefix of it: what a replay runs.
    pub fn loaded_version(&self, prefix: &str) -> Option<Arc<Plugin>> {
        self.history.lock().loaded(prefix)
    }

    /// The manifest of the current version, or of the version that failed to load
    /// when there is none.
    pub fn manifest(&self) -> Option<Manifest> {
        match self.current() {
            Some(p) => Some(p.manifest().clone()),
            None => self.failed_manifest.lock().clone(),
        }
    }

    /// The current version, or `plugin_unavailable` saying why there is none.
    pub fn current_or_unavailable(&self) -> Result<Arc<Plugin>> {
        self.current().ok_or_else(|| PluginError::Unavailable {
            plugin: self.name.clone(),
            reason: self.load_error.lock().as_ref().map_or_else(
                || {
                    if self.removed.load(Ordering::Relaxed) {
                        "its folder was removed from the plugin directory".to_string()
                    } else {
                        "not loaded".to_string()
                    }
                },
                |e| e.message.clone(),
            ),
        })
    }

    pub(super) fn set_failed(&self, e: &PluginError, manifest: Option<Manifest>) {
        if self.current().is_none() {
            *self.failed_manifest.lock() = manifest;
        }
        let err = LastError::new(e);
        *self.load_error.lock() = Some(err.clone());
        *self.last_error.lock() = Some(err);
    }

    /// Calls `plugin` (a version or variant of this slot) on `events` events: `f`
    /// makes the call and returns its result with the number of events out. The
    /// breaker admits batch calls; a quarantined plugin is not called and the result
    /// is `plugin_quarantined`.
    pub(super) fn call<T>(
        &self,
        plugin: &Plugin,
        kind: CallKind,
        events: usize,
        f: impl FnOnce(&Plugin) -> Result<(T, usize)>,
    ) -> Result<T> {
        let admission = match kind {
            CallKind::Batch => self.health.admit(Instant::now()),
            CallKind::Retry | CallKind::Canary => Admission::Call,
        };
        if let Admission::Refuse(retry_in) = admission {
            return Err(PluginError::Quarantined {
                plugin: self.name.clone(),
                retry_in_ms: retry_in.as_millis() as u64,
            });
        }
        let started = Instant::now();
        let result = f(plugin);
        let elapsed = started.elapsed();
        self.counters.calls.fetch_add(1, Ordering::Relaxed);
        self.counters
            .events_in
            .fetch_add(events as u64, Ordering::Relaxed);
        self.counters
            .time_ns
            .fetch_add(elapsed.as_nanos() as u64, Ordering::Relaxed);
        let failed = match &result {
            Ok((_, out)) => {
                self.counters
                    .events_out
                    .fetch_add(*out as u64, Ordering::Relaxed);
                false
            }
            Err(e) => {
                *self.counters.errors.lock().entry(e.code()).or_default() += 1;
                *self.last_error.lock() = Some(LastError::new(e));
                // A connector's `failed` says its destination is unavailable: the
                // connector backs off and retries; that is no fault of its code.
                let outage =
                    plugin.kind().is_connector() && matches!(e, PluginError::Failed { .. });
                e.counts_against_plugin() && !outage
            }
        };
        if kind == CallKind::Batch {
            if admission == Admission::Probe && result.is_err() && !failed {
                self.health.cancel_probe();
            }
            if let Some(t) = self.health.record(failed, Instant::now()) {
                self.log_transition(t, result.as_ref().err());
            }
            self.observe_probation(plugin, events, failed);
        }
        result.map(|(v, _)| v)
    }

    pub(super) fn log_transition(&self, t: Transition, error: Option<&PluginError>) {
        let plugin = self.name.as_str();
        let error = error.map(|e| e.to_string()).unwrap_or_default();
        match t {
            Transition::Quarantined(wait) => tracing::warn!(
                plugin,
                retry_in_ms = wait.as_millis() as u64,
                error,
                "plugin quarantined after repeated failures; its topics apply their error policy without calling it"
            ),
            Transition::StillFailing(wait) => tracing::warn!(
                plugin,
                retry_in_ms = wait.as_millis() as u64,
                error,
                "quarantined plugin failed its retry"
            ),
            Transition::Recovered => tracing::info!(plugin, "quarantined plugin recovered"),
        }
    }

    /// Counts events an error policy handled without them reaching their output.
    pub fn note_policy(&self, action: PolicyAction, events: usize) {
        let c = match action {
            PolicyAction::Rejected => &self.counters.rejected,
            PolicyAction::Skipped => &self.counters.skipped,
            PolicyAction::DeadLettered => &self.counters.dead_lettered,
        };
        c.fetch_add(events as u64, Ordering::Relaxed);
    }
}
