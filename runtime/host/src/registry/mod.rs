//! The loaded plugins by name, with what operators need to see about each: its
//! current version, health (quarantine), counters and last error.
//!
//! A [`Slot`] is one plugin name. It holds the current version behind an atomic
//! pointer, so a caller takes the version once per batch and finishes the batch on
//! it even if another version is swapped in meanwhile (hot reload builds on this).
//! Every call made through [`Slot::call`] is counted, timed and fed to the breaker.

//!
//! Split by job: the map of plugins by name here; [`slot`] (one name's versions,
//! health and probation); `calls` (the one way to call a plugin, a method per
//! export, every call admitted, timed, counted and observed); [`status`] (the
//! counters and the snapshot the API shows).

mod calls;
pub mod canary;
pub mod shadow;
mod slot;
mod status;

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use parking_lot::{Mutex, RwLock};

use crate::engine::Engine;
use crate::error::{PluginError, Result};
use crate::health::HealthPolicy;
use crate::history::{Origin, ProbationPolicy};
use crate::manifest::{Attachment, Manifest};
use crate::plugin::Plugin;
use crate::state::PluginState;

/// (plugin name, version hash, config JSON).
pub use slot::{CallKind, Slot};
pub use status::{
    CountersView, LastError, LimitsView, PluginStatus, PolicyAction, PoolView, QuarantineView,
    ReloadsView,
};

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
    serving_listener: Arc<OnceLock<ServingListener>>,
}

/// Told the plugin's name each time its serving version changed without a deploy (a
/// rollback, a canary's promotion).
struct ServingListener(Box<dyn Fn(&str) + Send + Sync>);

impl std::fmt::Debug for ServingListener {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ServingListener")
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
            serving_listener: Arc::new(OnceLock::new()),
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

    /// Sets what happens after every rollback or canary promotion (the reloader puts
    /// the serving version's files in the plugin directory). Set once, before plugins
    /// are called.
    pub fn on_serving_changed(&self, listener: impl Fn(&str) + Send + Sync + 'static) {
        let _ = self
            .serving_listener
            .set(ServingListener(Box::new(listener)));
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
                    self.serving_listener.clone(),
                ))
            })
            .clone()
    }

    /// The slot of `name`, if such a plugin was ever loaded or tried.
    pub fn get(&self, name: &str) -> Option<Arc<Slot>> {
        self.slots.read().get(name).cloned()
    }

    /// The slot and serving version of `name`, for a candidate in `files` to run
    /// beside: of the serving version's kind, one of `kinds`.
    fn beside(
        &self,
        name: &str,
        files: &crate::plugin::PluginFiles,
        kinds: &[crate::Kind],
        expected: &'static str,
    ) -> Result<(Arc<Slot>, Arc<Plugin>)> {
        let slot = self.get(name).ok_or_else(|| PluginError::Unavailable {
            plugin: name.to_string(),
            reason: "no version serves it to run a candidate beside".into(),
        })?;
        let serving = slot.current_or_unavailable()?;
        let kind = files.manifest.kind;
        if kind != serving.kind() || !kinds.contains(&kind) {
            return Err(PluginError::WrongKind {
                plugin: name.to_string(),
                expected,
                actual: kind.as_str(),
            });
        }
        Ok((slot, serving))
    }

    /// Starts shadowing `name`'s serving version with the version in `files` (a filter
    /// or transform of the same kind), loaded with a state of its own in memory; a
    /// shadow already running is replaced.
    pub fn start_shadow(
        &self,
        name: &str,
        files: crate::plugin::PluginFiles,
        settings: shadow::ShadowSettings,
    ) -> Result<Arc<shadow::Shadow>> {
        let (slot, serving) = self.beside(
            name,
            &files,
            &[crate::Kind::Filter, crate::Kind::Transform],
            "a filter or transform of the serving version's kind",
        )?;
        let state: Arc<dyn PluginState> = Arc::new(crate::state::MemoryState::default());
        let plugin = Plugin::from_files(&self.engine, files, state)?;
        let shadow = shadow::Shadow::start(Arc::new(plugin), settings);
        slot.set_shadow(Some(shadow.clone()));
        tracing::info!(
            plugin = name,
            candidate = %shadow.plugin.version_tag(),
            serving = %serving.version_tag(),
            "shadowing the serving version"
        );
        Ok(shadow)
    }

    /// Starts a canary of `name`: the version in `files` (a filter, transform or
    /// router of the serving version's kind) serves `settings.percent` of the keys,
    /// with the plugin's durable state (its outputs are real). A canary already
    /// running is replaced.
    pub fn start_canary(
        &self,
        name: &str,
        files: crate::plugin::PluginFiles,
        settings: canary::CanarySettings,
    ) -> Result<Arc<canary::Canary>> {
        let (slot, serving) = self.beside(
            name,
            &files,
            &[
                crate::Kind::Filter,
                crate::Kind::Transform,
                crate::Kind::Router,
            ],
            "a filter, transform or router of the serving version's kind",
        )?;
        let problem = files.manifest.load_problem().or_else(|| {
            // Promoted, its files are written into the plugin directory.
            (!crate::reload::is_relative_inside(&files.manifest.component)).then(|| {
                "a canary's component must be a relative path inside its folder".to_string()
            })
        });
        if let Some(reason) = problem {
            return Err(PluginError::Manifest {
                path: format!("{}/plugin.toml", files.component_path),
                reason,
            });
        }
        if files.version() == serving.hash() {
            return Err(PluginError::Manifest {
                path: format!("{}/plugin.toml", files.component_path),
                reason: "this version already serves every key".into(),
            });
        }
        let plugin = Plugin::from_files(&self.engine, files, self.state.clone())?;
        let canary = Arc::new(canary::Canary::new(
            Arc::new(plugin),
            serving.hash(),
            settings,
        ));
        slot.start_canary(canary.clone())?;
        tracing::info!(
            plugin = name,
            candidate = %canary.plugin.version_tag(),
            serving = %serving.version_tag(),
            percent = settings.percent,
            "canary serving a share of the keys"
        );
        Ok(canary)
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
