//! The loaded plugins by name, with what operators need to see about each: its
//! current version, health (quarantine), counters and last error.
//!
//! A [`Slot`] is one plugin name. It holds the current version behind an atomic
//! pointer, so a caller takes the version once per batch and finishes the batch on
//! it even if another version is swapped in meanwhile (hot reload builds on this).
//! Every call made through [`Slot::call`] is counted, timed and fed to the breaker.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use arc_swap::ArcSwapOption;
use parking_lot::{Mutex, RwLock};

use crate::engine::Engine;
use crate::error::{PluginError, Result};
use crate::health::{Admission, Health, HealthPolicy, Transition};
use crate::history::{
    Entry, History, NewVersion, Origin, Outcome, Probation, ProbationPolicy, Verdict,
};
use crate::manifest::{Attachment, Kind, Manifest};
use crate::plugin::Plugin;
use crate::state::PluginState;

/// (plugin name, version hash, config JSON).
type VariantKey = (String, String, String);

/// Refused versions listed in a status.
const MAX_REJECTED_SHOWN: usize = 5;

/// Most per-subscription config variants kept compiled-and-initialised.
const MAX_VARIANTS: usize = 64;

/// All loaded plugins. Cheap to share behind an `Arc`.
pub struct Registry {
    engine: Engine,
    state: Arc<dyn PluginState>,
    policy: HealthPolicy,
    probation: ProbationPolicy,
    slots: RwLock<BTreeMap<String, Arc<Slot>>>,
    /// Per-subscription variants by (name, version hash, config JSON).
    variants: Mutex<HashMap<VariantKey, Arc<Plugin>>>,
    rollback_listener: Arc<OnceLock<RollbackListener>>,
}

/// Told the plugin's name after each rollback.
struct RollbackListener(Box<dyn Fn(&str) + Send + Sync>);

impl std::fmt::Debug for RollbackListener {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("RollbackListener")
    }
}

/// A version that was refused, for [`Registry::reject`].
#[derive(Debug, Clone, Copy)]
pub struct Rejected<'a> {
    /// Its content hash, when its files could be read.
    pub version: Option<&'a str>,
    /// Where it came from.
    pub origin: Origin,
    /// The file it was read from.
    pub file: Option<&'a str>,
    /// Why.
    pub error: &'a PluginError,
    /// Time spent before it failed.
    pub load_time: Option<Duration>,
}

impl std::fmt::Debug for Registry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Registry")
            .field("plugins", &self.slots.read().keys().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

impl Registry {
    /// An empty registry; plugins call `state` for their durable key-value state.
    pub fn new(engine: Engine, state: Arc<dyn PluginState>, policy: HealthPolicy) -> Self {
        Self {
            engine,
            state,
            policy,
            probation: ProbationPolicy::default(),
            slots: RwLock::new(BTreeMap::new()),
            variants: Mutex::new(HashMap::new()),
            rollback_listener: Arc::new(OnceLock::new()),
        }
    }

    /// The engine plugins run on.
    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    /// The durable state plugins are given.
    pub fn state(&self) -> Arc<dyn PluginState> {
        self.state.clone()
    }

    /// Makes `plugin` the current version of its name, as loaded at start-up.
    pub fn install(&self, plugin: Plugin) -> Arc<Slot> {
        self.activate(plugin, Origin::Startup, None)
    }

    /// Makes `plugin` the current version of its name, atomically: calls that took
    /// the previous version finish on it, later ones get this one. A version that
    /// replaces another starts on probation ([`ProbationPolicy`]).
    pub fn activate(
        &self,
        plugin: Plugin,
        origin: Origin,
        load_time: Option<Duration>,
    ) -> Arc<Slot> {
        let slot = self.slot_or_new(plugin.name());
        slot.activate(Arc::new(plugin), origin, load_time);
        slot
    }

    /// Records that a version of `name` was refused; the current version (if any)
    /// keeps serving. A plugin with no version yet fails closed: topics that attach it
    /// through `manifest` apply their error policy.
    pub fn reject(&self, name: &str, rejected: Rejected<'_>, manifest: Option<Manifest>) {
        self.slot_or_new(name).reject(rejected, manifest);
    }

    /// Detaches `name` (its folder was deleted): it serves nothing and attaches to
    /// nothing, and its history stays visible. Returns whether it was serving.
    pub fn remove(&self, name: &str) -> bool {
        self.get(name).is_some_and(|s| s.remove())
    }

    /// Returns `name` to the version that served before the current one. With
    /// `expected`, only if that is still the version it would return to (a caller
    /// that checked the target's attachments must get that target, not a newer one).
    pub fn rollback(
        &self,
        name: &str,
        expected: Option<&str>,
        reason: &str,
    ) -> Result<Arc<Plugin>> {
        let slot = self.get(name).ok_or_else(|| PluginError::Unavailable {
            plugin: name.to_string(),
            reason: "no plugin of that name is installed".into(),
        })?;
        slot.rollback(None, expected, reason.to_string())
    }

    /// The version a rollback of `name` would return to now.
    pub fn rollback_target(&self, name: &str) -> Result<Arc<Plugin>> {
        let slot = self.get(name).ok_or_else(|| PluginError::Unavailable {
            plugin: name.to_string(),
            reason: "no plugin of that name is installed".into(),
        })?;
        let history = slot.history.lock();
        let current = slot.current();
        history
            .previous_good(current.as_deref().map(Plugin::hash))
            .ok_or_else(|| slot.no_previous())
    }

    /// Sets what happens after every rollback (the reloader puts the version's files
    /// back in the plugin directory). Set once, before plugins are called.
    pub fn on_rollback(&self, listener: impl Fn(&str) + Send + Sync + 'static) {
        let _ = self
            .rollback_listener
            .set(RollbackListener(Box::new(listener)));
    }

    /// How new versions are put on probation.
    pub fn with_probation(mut self, policy: ProbationPolicy) -> Self {
        self.probation = policy;
        self
    }

    fn slot_or_new(&self, name: &str) -> Arc<Slot> {
        if let Some(s) = self.slots.read().get(name) {
            return s.clone();
        }
        self.slots
            .write()
            .entry(name.to_string())
            .or_insert_with(|| {
                Arc::new(Slot::new(
                    name,
                    self.policy,
                    self.probation,
                    self.rollback_listener.clone(),
                ))
            })
            .clone()
    }

    /// The slot of `name`, if such a plugin was ever loaded or tried.
    pub fn get(&self, name: &str) -> Option<Arc<Slot>> {
        self.slots.read().get(name).cloned()
    }

    /// All slots, by name.
    pub fn slots(&self) -> Vec<Arc<Slot>> {
        self.slots.read().values().cloned().collect()
    }

    /// Pipeline steps attached to `topic` at `stage` by their manifests (connectors'
    /// topics are theirs to run, not pipeline steps).
    /// A plugin whose component failed to load keeps its attachments: its steps then
    /// apply their error policy (`plugin_unavailable`) rather than let data through
    /// unprocessed — a broken redactor must not mean unredacted records.
    pub fn attached(&self, topic: &str, stage: &str) -> Vec<(Arc<Slot>, Attachment)> {
        let mut out = Vec::new();
        for slot in self.slots.read().values() {
            let attach = match slot.current() {
                Some(p) if p.kind().is_connector() => continue,
                Some(p) => p.manifest().attach.clone(),
                None => slot
                    .failed_manifest
                    .lock()
                    .as_ref()
                    .filter(|m| !m.kind.is_connector())
                    .map(|m| m.attach.clone())
                    .unwrap_or_default(),
            };
            for a in attach {
                if a.topic == topic && a.stage == stage {
                    out.push((slot.clone(), a));
                }
            }
        }
        out
    }

    /// The current version of `name` initialised with `config_json` instead of its
    /// manifest's config (`None`: the current version as it is). Variants are kept,
    /// so a subscription's filter is initialised once per distinct config.
    pub fn variant(
        &self,
        name: &str,
        config_json: Option<&str>,
    ) -> Result<(Arc<Slot>, Arc<Plugin>)> {
        let slot = self.get(name).ok_or_else(|| PluginError::Unavailable {
            plugin: name.to_string(),
            reason: "no plugin of that name is installed".into(),
        })?;
        let current = slot.current_or_unavailable()?;
        let Some(config) = config_json else {
            return Ok((slot, current));
        };
        let key = (
            name.to_string(),
            current.hash().to_string(),
            config.to_string(),
        );
        if let Some(p) = self.variants.lock().get(&key) {
            return Ok((slot, p.clone()));
        }
        let variant = Arc::new(current.with_config(config)?);
        let mut variants = self.variants.lock();
        if variants.len() >= MAX_VARIANTS {
            variants.clear();
        }
        variants.insert(key, variant.clone());
        Ok((slot, variant))
    }
}

/// One plugin name: its current version, health and counters.
#[derive(Debug)]
pub struct Slot {
    name: String,
    current: ArcSwapOption<Plugin>,
    health: Health,
    counters: Counters,
    last_error: Mutex<Option<LastError>>,
    /// Why the plugin has no current version, if it failed to load.
    load_error: Mutex<Option<LastError>>,
    /// The manifest of a version that failed to load, when it parsed: its
    /// attachments still hold.
    failed_manifest: Mutex<Option<Manifest>>,
    /// Its folder was deleted: it serves and attaches nothing.
    removed: AtomicBool,
    /// Every activation, rejection, rollback and removal. Held while the current
    /// version changes, so changes are serialised.
    history: Mutex<History>,
    probation_policy: ProbationPolicy,
    /// The probation of the current version, if it replaced another.
    probation: Mutex<Option<Probation>>,
    rollback_listener: Arc<OnceLock<RollbackListener>>,
    reloads: ReloadCounters,
}

#[derive(Debug, Default)]
struct ReloadCounters {
    activated: AtomicU64,
    rejected: AtomicU64,
    rolled_back: AtomicU64,
}

/// How a call is made: a batch call is admitted by the breaker and its outcome
/// counts; a retry (on part of a batch whose call failed, to isolate bad events) is
/// only counted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CallKind {
    /// A whole batch.
    Batch,
    /// Part of a batch being retried.
    Retry,
}

impl Slot {
    fn new(
        name: &str,
        policy: HealthPolicy,
        probation_policy: ProbationPolicy,
        rollback_listener: Arc<OnceLock<RollbackListener>>,
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
            rollback_listener,
            reloads: ReloadCounters::default(),
        }
    }

    fn activate(&self, plugin: Arc<Plugin>, origin: Origin, load_time: Option<Duration>) {
        let mut history = self.history.lock();
        let on_probation = self.current().is_some() && origin != Origin::Rollback;
        history.activate(
            plugin.clone(),
            NewVersion::of(&plugin, origin, load_time),
            on_probation,
            Outcome::Replaced,
            None,
        );
        self.make_current(&plugin, on_probation);
        self.reloads.activated.fetch_add(1, Ordering::Relaxed);
    }

    /// The swap itself, shared by activation and rollback; the caller holds the
    /// history lock, so swaps are serialised.
    fn make_current(&self, plugin: &Arc<Plugin>, on_probation: bool) {
        self.current.store(Some(plugin.clone()));
        *self.probation.lock() = on_probation.then(|| Probation::new(plugin.hash()));
        *self.load_error.lock() = None;
        *self.failed_manifest.lock() = None;
        self.removed.store(false, Ordering::Relaxed);
        self.health.reset();
    }

    fn reject(&self, r: Rejected<'_>, manifest: Option<Manifest>) {
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

    fn remove(&self) -> bool {
        let mut history = self.history.lock();
        let was_serving = self.current().is_some();
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
    fn rollback(
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
        self.make_current(&target, false);
        self.reloads.rolled_back.fetch_add(1, Ordering::Relaxed);
        drop(history);
        tracing::warn!(
            plugin = self.name,
            from = current_hash.map(|h| &h[..12]),
            to = &target.hash()[..12],
            reason,
            "plugin rolled back"
        );
        if let Some(listener) = self.rollback_listener.get() {
            (listener.0)(&self.name);
        }
        Ok(target)
    }

    fn no_previous(&self) -> PluginError {
        PluginError::NoPreviousVersion {
            plugin: self.name.clone(),
        }
    }

    /// Feeds a batch call's outcome to the probation of `plugin`'s version; rolls
    /// back if it failed.
    fn observe_probation(&self, plugin: &Plugin, events: usize, failed: bool) {
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

    fn set_failed(&self, e: &PluginError, manifest: Option<Manifest>) {
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
    pub fn call<T>(
        &self,
        plugin: &Plugin,
        kind: CallKind,
        events: usize,
        f: impl FnOnce(&Plugin) -> Result<(T, usize)>,
    ) -> Result<T> {
        let admission = match kind {
            CallKind::Batch => self.health.admit(Instant::now()),
            CallKind::Retry => Admission::Call,
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

    fn log_transition(&self, t: Transition, error: Option<&PluginError>) {
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
        let rejected_versions = self.history.lock().rejected(MAX_REJECTED_SHOWN);
        let c = &self.counters;
        PluginStatus {
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
        }
    }
}

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
struct Counters {
    calls: AtomicU64,
    events_in: AtomicU64,
    events_out: AtomicU64,
    time_ns: AtomicU64,
    errors: Mutex<BTreeMap<&'static str, u64>>,
    rejected: AtomicU64,
    skipped: AtomicU64,
    dead_lettered: AtomicU64,
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
    fn new(e: &PluginError) -> Self {
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
