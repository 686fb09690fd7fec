//! A loaded plugin: its compiled component, pre-linked per world, a pool of live
//! instances, and the calls with their limits.
//!
//! Loading compiles the component once, links it against the world its manifest
//! declares (a mismatch is rejected here, naming the file), and runs `init` with the
//! config in a first instance. Calls take an instance from the pool (or make one from
//! the pre-linked `InstancePre`), run under an epoch deadline and a memory cap, and give
//! it back. A trap, timeout, memory or stack error discards that instance only.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use sha2::{Digest, Sha256};
use wasmtime::component::{HasSelf, Linker};
use wasmtime::{Store, Trap};

use crate::bindings::{acl, filter, router, sink, source, transform, types};
use crate::engine::{EPOCH_TICK, Engine};
use crate::error::{PluginError, Result};
use crate::grants::{self, Capabilities};
use crate::limits::{Footprint, Limiter, MemoryCapReached};
use crate::manifest::{Kind, Manifest};
use crate::state::PluginState;

/// Store data of one instance.
pub(crate) struct Ctx {
    plugin: Arc<str>,
    limits: Limiter,
    state: Arc<dyn PluginState>,
    /// A connector's grants (`None`: a pipeline plugin, which has none).
    caps: Option<Arc<Capabilities>>,
    /// State writes of a source's poll, held back to be committed with its events.
    staged: Option<BTreeMap<Vec<u8>, Option<Vec<u8>>>>,
    /// When the current call's deadline passes (caps outbound request timeouts).
    deadline: Instant,
}

impl Ctx {
    fn caps(&self) -> Result<&Capabilities, String> {
        self.caps
            .as_deref()
            .ok_or_else(|| "capability_denied: only connectors have grants".to_string())
    }

    fn remaining(&self) -> Duration {
        self.deadline.saturating_duration_since(Instant::now())
    }
}

impl types::Host for Ctx {}

impl filter::weir::plugin::host::Host for Ctx {
    fn log(&mut self, level: types::Level, message: String) {
        let plugin = &*self.plugin;
        match level {
            types::Level::Trace => tracing::trace!(plugin, "{message}"),
            types::Level::Debug => tracing::debug!(plugin, "{message}"),
            types::Level::Info => tracing::info!(plugin, "{message}"),
            types::Level::Warn => tracing::warn!(plugin, "{message}"),
            types::Level::Error => tracing::error!(plugin, "{message}"),
        }
    }

    fn state_get(&mut self, key: Vec<u8>) -> Option<Vec<u8>> {
        if let Some(staged) = self.staged.as_ref().and_then(|s| s.get(&key)) {
            return staged.clone();
        }
        self.state.get(&self.plugin, &key)
    }

    fn state_set(&mut self, key: Vec<u8>, value: Vec<u8>) {
        match &mut self.staged {
            Some(staged) => {
                staged.insert(key, Some(value));
            }
            None => self.state.set(&self.plugin, &key, &value),
        }
    }

    fn state_delete(&mut self, key: Vec<u8>) {
        match &mut self.staged {
            Some(staged) => {
                staged.insert(key, None);
            }
            None => self.state.delete(&self.plugin, &key),
        }
    }
}

impl source::weir::plugin::http::Host for Ctx {
    fn send(
        &mut self,
        req: source::weir::plugin::http::Request,
    ) -> std::result::Result<source::weir::plugin::http::Response, String> {
        let deadline = self.remaining();
        let r = self.caps()?.send(
            grants::http::Request {
                method: req.method,
                url: req.url,
                headers: req.headers,
                body: req.body,
                timeout: (req.timeout_ms > 0).then(|| Duration::from_millis(req.timeout_ms.into())),
            },
            deadline,
        )?;
        Ok(source::weir::plugin::http::Response {
            status: r.status,
            headers: r.headers,
            body: r.body,
        })
    }
}

impl source::weir::plugin::files::Host for Ctx {
    fn list_dir(
        &mut self,
        path: String,
    ) -> std::result::Result<Vec<source::weir::plugin::files::Entry>, String> {
        Ok(self
            .caps()?
            .list_dir(&path)?
            .into_iter()
            .map(|e| source::weir::plugin::files::Entry {
                name: e.name,
                size: e.size,
                is_dir: e.is_dir,
            })
            .collect())
    }

    fn read_at(
        &mut self,
        path: String,
        offset: u64,
        max: u32,
    ) -> std::result::Result<Vec<u8>, String> {
        self.caps()?.read_at(&path, offset, max)
    }

    fn append(&mut self, path: String, data: Vec<u8>) -> std::result::Result<u64, String> {
        self.caps()?.append(&path, &data)
    }

    fn sync(&mut self, path: String) -> std::result::Result<(), String> {
        self.caps()?.sync(&path)
    }

    fn rename(&mut self, from: String, to: String) -> std::result::Result<(), String> {
        self.caps()?.rename(&from, &to)
    }

    fn create_dir(&mut self, path: String) -> std::result::Result<(), String> {
        self.caps()?.create_dir(&path)
    }
}

/// The pre-linked component, by world.
enum Pre {
    Filter(filter::FilterPre<Ctx>),
    Transform(transform::TransformPre<Ctx>),
    Router(router::RouterPre<Ctx>),
    Acl(acl::AclPre<Ctx>),
    Source(source::SourcePre<Ctx>),
    Sink(sink::SinkPre<Ctx>),
}

/// A live instance, by world.
enum Bindings {
    Filter(filter::Filter),
    Transform(transform::Transform),
    Router(router::Router),
    Acl(acl::Acl),
    Source(source::Source),
    Sink(sink::Sink),
}

struct Live {
    store: Store<Ctx>,
    bindings: Bindings,
}

/// What a source is told when it is polled.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PollInfo {
    /// The topic it publishes to.
    pub topic: String,
    /// That topic's partition count.
    pub partitions: u32,
    /// Most events to return.
    pub max: u32,
    /// The broker's clock (ms since the epoch).
    pub now_ms: i64,
}

/// What a poll returned.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Polled {
    /// Packed events.
    pub events: Vec<u8>,
    /// How many.
    pub count: usize,
    /// State writes made during the poll (`None` deletes), to commit with the events.
    pub state: Vec<(Vec<u8>, Option<Vec<u8>>)>,
}

/// Where a sink's events come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivery {
    /// Topic.
    pub topic: String,
    /// Partition.
    pub partition: u32,
    /// Each event's offset, ascending.
    pub offsets: Vec<u64>,
}

/// What the host tells a plugin about a batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BatchInfo {
    /// Topic of the batch.
    pub topic: String,
    /// Its partition count.
    pub partitions: u32,
}

/// A destination chosen by a router.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Destination {
    /// Index of the event in the batch.
    pub event: u32,
    /// Destination topic.
    pub topic: String,
    /// Partition key to use there, instead of the event's own.
    pub key: Option<Vec<u8>>,
}

/// What an ACL policy is asked (see the `acl` world).
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct AclRequest {
    /// Who is calling.
    pub principal: String,
    /// The caller's groups or roles.
    pub groups: Vec<String>,
    /// The operation (`produce`, `consume`, ...).
    pub operation: String,
    /// `topic`, `group`, `plugin` or `cluster`.
    pub resource_kind: String,
    /// The resource's name.
    pub resource_name: String,
    /// Headers of produced records, when given.
    pub headers: Vec<(String, Vec<u8>)>,
}

/// An ACL policy's verdict.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Allowed.
    Allow,
    /// Denied, with the reason.
    Deny(String),
}

/// A transform's outputs: packed events and per-input counts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transformed {
    /// Packed output events.
    pub events: Vec<u8>,
    /// Outputs per input event, in order.
    pub counts: Vec<u32>,
}

/// A loaded, initialised plugin. Calls may come from any thread.
pub struct Plugin {
    manifest: Manifest,
    name: Arc<str>,
    hash: String,
    engine: Engine,
    /// Shared by the variants of this version that differ only in config.
    pre: Arc<Pre>,
    config_json: String,
    state: Arc<dyn PluginState>,
    pool: Mutex<Vec<Live>>,
    /// The files this version was loaded from, when it came from a folder or a deploy.
    files: Option<Arc<PluginFiles>>,
    /// A connector's grants.
    caps: Option<Arc<Capabilities>>,
}

/// A version's files as read from a plugin folder or received by a deploy: the
/// manifest (text and parsed) and the component bytes.
#[derive(Clone)]
pub struct PluginFiles {
    /// `plugin.toml` as written.
    pub manifest_text: String,
    /// The parsed manifest.
    pub manifest: Manifest,
    /// The component's bytes.
    pub component: Arc<[u8]>,
    /// Where the component was read from (for errors).
    pub component_path: String,
}

impl std::fmt::Debug for PluginFiles {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PluginFiles")
            .field("name", &self.manifest.name)
            .field("component_path", &self.component_path)
            .field("component_bytes", &self.component.len())
            .finish_non_exhaustive()
    }
}

impl PluginFiles {
    /// Reads `<dir>/plugin.toml` and the component it names.
    pub fn read(dir: &Path) -> Result<PluginFiles> {
        let path = dir.join("plugin.toml");
        let manifest_text = std::fs::read_to_string(&path).map_err(|e| PluginError::Manifest {
            path: path.display().to_string(),
            reason: e.to_string(),
        })?;
        let manifest = Manifest::parse(&manifest_text, &path)?;
        let file = dir.join(&manifest.component);
        let component = std::fs::read(&file).map_err(|e| PluginError::Component {
            plugin: manifest.name.clone(),
            file: file.display().to_string(),
            reason: e.to_string(),
        })?;
        Ok(PluginFiles {
            manifest_text,
            manifest,
            component: component.into(),
            component_path: file.display().to_string(),
        })
    }

    /// Files received whole (a deploy); `origin` names them in errors.
    pub fn from_bytes(manifest_text: String, component: Vec<u8>, origin: &str) -> Result<Self> {
        let manifest = Manifest::parse(
            &manifest_text,
            Path::new(origin).join("plugin.toml").as_path(),
        )?;
        Ok(PluginFiles {
            component_path: Path::new(origin)
                .join(&manifest.component)
                .display()
                .to_string(),
            manifest_text,
            manifest,
            component: component.into(),
        })
    }

    /// The version's identity: SHA-256 over the manifest text and the component.
    pub fn version(&self) -> String {
        let mut h = Sha256::new();
        h.update((self.manifest_text.len() as u64).to_be_bytes());
        h.update(self.manifest_text.as_bytes());
        h.update(&self.component);
        hex(&h.finalize())
    }
}

impl std::fmt::Debug for Plugin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Plugin")
            .field("name", &self.name)
            .field("kind", &self.manifest.kind)
            .field("hash", &self.hash)
            .finish_non_exhaustive()
    }
}

/// Most idle instances kept per plugin.
const POOL_SIZE: usize = 8;

impl Plugin {
    /// Loads the plugin in `dir` (its `plugin.toml` and component).
    pub fn load(engine: &Engine, dir: &Path, state: Arc<dyn PluginState>) -> Result<Plugin> {
        Self::from_files(engine, PluginFiles::read(dir)?, state)
    }

    /// Loads a version from its files. Its hash covers the manifest text and the
    /// component, so a config or attachment change is a new version too; the files
    /// are kept, so a rollback can put them back.
    pub fn from_files(
        engine: &Engine,
        files: PluginFiles,
        state: Arc<dyn PluginState>,
    ) -> Result<Plugin> {
        let mut plugin = Self::from_parts(
            engine,
            files.manifest.clone(),
            &files.component,
            &files.component_path,
            state,
        )?;
        plugin.hash = files.version();
        plugin.files = Some(Arc::new(files));
        Ok(plugin)
    }

    /// Loads a plugin from a manifest and component bytes; `file` names them in errors.
    pub fn from_parts(
        engine: &Engine,
        manifest: Manifest,
        bytes: &[u8],
        file: &str,
        state: Arc<dyn PluginState>,
    ) -> Result<Plugin> {
        let component_error = |reason: String| PluginError::Component {
            plugin: manifest.name.clone(),
            file: file.to_string(),
            reason,
        };
        let max = manifest.limits.max_component_mb << 20;
        if bytes.len() as u64 > max {
            return Err(component_error(format!(
                "{} bytes is over the {} MiB limit",
                bytes.len(),
                manifest.limits.max_component_mb
            )));
        }
        if let Some(footprint) = Footprint::of(bytes) {
            footprint.check(&manifest.name, &manifest.limits)?;
        }
        let hash = hex(&Sha256::digest(bytes));
        let component = engine
            .compile(&hash, bytes)
            .map_err(|e| component_error(format!("not a valid component: {}", root_cause(&e))))?;
        let mut linker: Linker<Ctx> = Linker::new(engine.wasmtime());
        filter::Filter::add_to_linker::<_, HasSelf<_>>(&mut linker, |c| c)
            .map_err(|e| component_error(e.to_string()))?;
        if manifest.kind.is_connector() {
            // Only connectors may import the capability interfaces; a pipeline plugin
            // that does is refused at load ("imports something Weir does not provide").
            source::weir::plugin::http::add_to_linker::<_, HasSelf<_>>(&mut linker, |c| c)
                .and_then(|()| {
                    source::weir::plugin::files::add_to_linker::<_, HasSelf<_>>(&mut linker, |c| c)
                })
                .map_err(|e| component_error(e.to_string()))?;
        }
        let instance_pre = linker.instantiate_pre(&component).map_err(|e| {
            component_error(format!(
                "it imports something Weir does not provide: {}",
                root_cause(&e)
            ))
        })?;
        let wrong_world = |e: wasmtime::Error| {
            component_error(format!(
                "it does not implement the '{}' world its manifest declares: {}",
                manifest.kind.as_str(),
                root_cause(&e)
            ))
        };
        let pre = match manifest.kind {
            Kind::Filter => Pre::Filter(filter::FilterPre::new(instance_pre).map_err(wrong_world)?),
            Kind::Transform => {
                Pre::Transform(transform::TransformPre::new(instance_pre).map_err(wrong_world)?)
            }
            Kind::Router => Pre::Router(router::RouterPre::new(instance_pre).map_err(wrong_world)?),
            Kind::Acl => Pre::Acl(acl::AclPre::new(instance_pre).map_err(wrong_world)?),
            Kind::Source => Pre::Source(source::SourcePre::new(instance_pre).map_err(wrong_world)?),
            Kind::Sink => Pre::Sink(sink::SinkPre::new(instance_pre).map_err(wrong_world)?),
        };
        let caps = manifest
            .kind
            .is_connector()
            .then(|| Arc::new(Capabilities::new(&manifest.name, &manifest.grants)));
        let plugin = Plugin {
            name: Arc::from(manifest.name.as_str()),
            config_json: manifest.config_json(),
            manifest,
            hash,
            engine: engine.clone(),
            pre: Arc::new(pre),
            state,
            pool: Mutex::new(Vec::new()),
            files: None,
            caps,
        };
        plugin.init_first()
    }

    /// A first instance runs `init` now, so a bad config is rejected at load.
    fn init_first(self) -> Result<Plugin> {
        let live = self.instantiate()?;
        self.pool.lock().push(live);
        Ok(self)
    }

    /// The same version with another config (a JSON object that replaces the
    /// manifest's `[config]`), for per-subscription use. Reuses the compiled and
    /// pre-linked component, so it costs one instantiation and `init`, not a compile.
    pub fn with_config(&self, config_json: &str) -> Result<Plugin> {
        let config: toml::Table =
            serde_json::from_str(config_json).map_err(|e| PluginError::InitRejected {
                plugin: self.name.to_string(),
                reason: format!("the config must be a JSON object of plain values: {e}"),
            })?;
        let mut manifest = self.manifest.clone();
        manifest.config = config;
        Plugin {
            name: self.name.clone(),
            config_json: manifest.config_json(),
            manifest,
            hash: self.hash.clone(),
            engine: self.engine.clone(),
            pre: self.pre.clone(),
            state: self.state.clone(),
            pool: Mutex::new(Vec::new()),
            files: self.files.clone(),
            caps: self.caps.clone(),
        }
        .init_first()
    }

    /// The plugin's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Its kind.
    pub fn kind(&self) -> Kind {
        self.manifest.kind
    }

    /// Its manifest.
    pub fn manifest(&self) -> &Manifest {
        &self.manifest
    }

    /// A connector's granted directories as resolved at load (one per `[grants]
    /// dirs` entry; none for other kinds).
    pub fn granted_dirs(&self) -> &[std::path::PathBuf] {
        self.caps.as_deref().map_or(&[], |c| c.dirs())
    }

    /// The version's identity: SHA-256 over its manifest text and component (over
    /// the component alone when built from parts).
    pub fn hash(&self) -> &str {
        &self.hash
    }

    /// The files this version was loaded from, if it came from files.
    pub fn files(&self) -> Option<&Arc<PluginFiles>> {
        self.files.as_ref()
    }

    /// `name@<first 12 hex digits of the hash>`: how lineage headers and dead
    /// letters name this version.
    pub fn version_tag(&self) -> String {
        format!("{}@{}", self.name, &self.hash[..12])
    }

    fn new_store(&self) -> Store<Ctx> {
        let limits = Limiter::new(&self.manifest.limits);
        let mut store = Store::new(
            self.engine.wasmtime(),
            Ctx {
                plugin: self.name.clone(),
                limits,
                state: self.state.clone(),
                caps: self.caps.clone(),
                staged: None,
                deadline: Instant::now(),
            },
        );
        store.limiter(|c| &mut c.limits);
        store
    }

    fn arm(&self, store: &mut Store<Ctx>) {
        let ticks = self
            .manifest
            .limits
            .timeout_ms
            .div_ceil(EPOCH_TICK.as_millis() as u64)
            + 1;
        store.set_epoch_deadline(ticks);
        store.epoch_deadline_trap();
        store.data_mut().deadline =
            Instant::now() + Duration::from_millis(self.manifest.limits.timeout_ms);
    }

    /// A fresh instance with `init` done.
    fn instantiate(&self) -> Result<Live> {
        let mut store = self.new_store();
        self.arm(&mut store);
        let rejected = |reason: String| PluginError::InitRejected {
            plugin: self.name.to_string(),
            reason,
        };
        let (bindings, init) = match &*self.pre {
            Pre::Filter(pre) => {
                let b = pre.instantiate(&mut store).map_err(|e| self.classify(e))?;
                let r = b.call_init(&mut store, &self.config_json);
                (Bindings::Filter(b), r)
            }
            Pre::Transform(pre) => {
                let b = pre.instantiate(&mut store).map_err(|e| self.classify(e))?;
                let r = b.call_init(&mut store, &self.config_json);
                (Bindings::Transform(b), r)
            }
            Pre::Router(pre) => {
                let b = pre.instantiate(&mut store).map_err(|e| self.classify(e))?;
                let r = b.call_init(&mut store, &self.config_json);
                (Bindings::Router(b), r)
            }
            Pre::Acl(pre) => {
                let b = pre.instantiate(&mut store).map_err(|e| self.classify(e))?;
                let r = b.call_init(&mut store, &self.config_json);
                (Bindings::Acl(b), r)
            }
            Pre::Source(pre) => {
                let b = pre.instantiate(&mut store).map_err(|e| self.classify(e))?;
                let r = b.call_init(&mut store, &self.config_json);
                (Bindings::Source(b), r)
            }
            Pre::Sink(pre) => {
                let b = pre.instantiate(&mut store).map_err(|e| self.classify(e))?;
                let r = b.call_init(&mut store, &self.config_json);
                (Bindings::Sink(b), r)
            }
        };
        match init {
            Ok(Ok(())) => Ok(Live { store, bindings }),
            Ok(Err(msg)) => Err(rejected(msg)),
            Err(e) => Err(rejected(self.classify(e).to_string())),
        }
    }

    /// Runs `f` on a pooled (or new) instance; traps discard it.
    fn with_instance<R>(&self, f: impl FnOnce(&mut Live) -> Result<R>) -> Result<R> {
        let pooled = self.pool.lock().pop();
        let mut live = match pooled {
            Some(l) => l,
            None => self.instantiate()?,
        };
        self.arm(&mut live.store);
        let result = f(&mut live);
        match &result {
            Err(e) if e.poisons_instance() => {
                tracing::warn!(plugin = &*self.name, code = e.code(), error = %e, "discarding the plugin instance");
            }
            _ => {
                let mut pool = self.pool.lock();
                if pool.len() < POOL_SIZE {
                    pool.push(live);
                }
            }
        }
        result
    }

    fn wrong_kind(&self, expected: &'static str) -> PluginError {
        PluginError::WrongKind {
            plugin: self.name.to_string(),
            expected,
            actual: self.manifest.kind.as_str(),
        }
    }

    /// Runs a filter over a packed batch of `count` events: one keep flag per event.
    pub fn filter(&self, info: &BatchInfo, events: &[u8], count: usize) -> Result<Vec<bool>> {
        let info = types::BatchInfo {
            topic: info.topic.clone(),
            partitions: info.partitions,
        };
        let flags = self.with_instance(|live| match &live.bindings {
            Bindings::Filter(b) => self.guest(b.call_filter(&mut live.store, &info, events)),
            _ => Err(self.wrong_kind("filter")),
        })?;
        if flags.len() != count {
            return Err(self.invalid(format!("{} flags for {count} events", flags.len())));
        }
        Ok(flags)
    }

    /// Runs a transform over a packed batch of `count` events. The result is checked:
    /// one count per input, and outputs that decode and add up to the counts.
    pub fn transform(&self, info: &BatchInfo, events: &[u8], count: usize) -> Result<Transformed> {
        let info = types::BatchInfo {
            topic: info.topic.clone(),
            partitions: info.partitions,
        };
        let out = self.with_instance(|live| match &live.bindings {
            Bindings::Transform(b) => self.guest(b.call_transform(&mut live.store, &info, events)),
            _ => Err(self.wrong_kind("transform")),
        })?;
        if out.counts.len() != count {
            return Err(self.invalid(format!("{} counts for {count} events", out.counts.len())));
        }
        // The outputs must decode and match the counts, so callers can trust both.
        let produced = crate::packed::decode(&out.events)
            .map_err(|e| self.invalid(e.to_string()))?
            .len();
        let promised: u64 = out.counts.iter().map(|c| u64::from(*c)).sum();
        if promised != produced as u64 {
            return Err(self.invalid(format!(
                "counts add up to {promised} but {produced} events were returned"
            )));
        }
        Ok(Transformed {
            events: out.events,
            counts: out.counts,
        })
    }

    /// Runs a router over a packed batch of `count` events.
    pub fn route(&self, info: &BatchInfo, events: &[u8], count: usize) -> Result<Vec<Destination>> {
        let info = types::BatchInfo {
            topic: info.topic.clone(),
            partitions: info.partitions,
        };
        let list = self.with_instance(|live| match &live.bindings {
            Bindings::Router(b) => self.guest(b.call_route(&mut live.store, &info, events)),
            _ => Err(self.wrong_kind("router")),
        })?;
        if let Some(d) = list.iter().find(|d| d.event as usize >= count) {
            return Err(self.invalid(format!("destination for event {} of {count}", d.event)));
        }
        Ok(list
            .into_iter()
            .map(|d| Destination {
                event: d.event,
                topic: d.topic,
                key: d.key,
            })
            .collect())
    }

    /// Asks an ACL policy about one request.
    pub fn authorize(&self, request: &AclRequest) -> Result<Decision> {
        let r = types::AclRequest {
            principal: request.principal.clone(),
            groups: request.groups.clone(),
            operation: request.operation.clone(),
            resource_kind: request.resource_kind.clone(),
            resource_name: request.resource_name.clone(),
            headers: request.headers.clone(),
        };
        let verdict = self.with_instance(|live| match &live.bindings {
            Bindings::Acl(b) => b
                .call_authorize(&mut live.store, &r)
                .map_err(|e| self.classify(e)),
            _ => Err(self.wrong_kind("acl")),
        })?;
        Ok(match verdict {
            types::Decision::Allow => Decision::Allow,
            types::Decision::Deny(reason) => Decision::Deny(reason),
        })
    }

    /// Polls a source for up to `info.max` events. The state it wrote during the
    /// poll comes back with the events, not yet written: the caller commits both
    /// together (or neither).
    pub fn poll(&self, info: &PollInfo) -> Result<Polled> {
        let wit_info = types::PollInfo {
            topic: info.topic.clone(),
            partitions: info.partitions,
            max: info.max,
            now_ms: info.now_ms,
        };
        let (events, staged) = self.with_instance(|live| match &live.bindings {
            Bindings::Source(b) => {
                live.store.data_mut().staged = Some(BTreeMap::new());
                let r = self.guest(b.call_poll(&mut live.store, &wit_info));
                let staged = live.store.data_mut().staged.take().unwrap_or_default();
                r.map(|events| (events, staged))
            }
            _ => Err(self.wrong_kind("source")),
        })?;
        let count = crate::packed::decode(&events)
            .map_err(|e| self.invalid(e.to_string()))?
            .len();
        if count > info.max as usize {
            return Err(self.invalid(format!("{count} events for a poll of at most {}", info.max)));
        }
        Ok(Polled {
            events,
            count,
            state: staged.into_iter().collect(),
        })
    }

    /// Hands a sink one partition's events in offset order.
    pub fn write(&self, delivery: &Delivery, events: &[u8]) -> Result<()> {
        let batch = types::Delivery {
            topic: delivery.topic.clone(),
            partition: delivery.partition,
            offsets: delivery.offsets.clone(),
        };
        self.with_instance(|live| match &live.bindings {
            Bindings::Sink(b) => self.guest(b.call_write(&mut live.store, &batch, events)),
            _ => Err(self.wrong_kind("sink")),
        })
    }

    /// Calls of this connector refused because they were outside its grants.
    pub fn capability_refusals(&self) -> u64 {
        self.caps.as_ref().map_or(0, |c| c.refused())
    }

    fn invalid(&self, reason: String) -> PluginError {
        PluginError::InvalidOutput {
            plugin: self.name.to_string(),
            reason,
        }
    }

    /// Maps a call's two layers of result: traps, then the plugin's own error.
    fn guest<T>(&self, r: wasmtime::Result<std::result::Result<T, types::Error>>) -> Result<T> {
        match r {
            Ok(Ok(v)) => Ok(v),
            Ok(Err(types::Error::BadInput(reason))) => Err(PluginError::BadInput {
                plugin: self.name.to_string(),
                reason,
            }),
            Ok(Err(types::Error::Failed(reason))) => Err(PluginError::Failed {
                plugin: self.name.to_string(),
                reason,
            }),
            Err(e) => Err(self.classify(e)),
        }
    }

    /// Names a trap: timeout, memory cap, stack overflow, or another trap.
    fn classify(&self, e: wasmtime::Error) -> PluginError {
        let plugin = self.name.to_string();
        match e.downcast_ref::<Trap>() {
            Some(Trap::Interrupt) => PluginError::Timeout {
                plugin,
                timeout_ms: self.manifest.limits.timeout_ms,
            },
            Some(Trap::StackOverflow) => PluginError::StackOverflow { plugin },
            _ if e.downcast_ref::<MemoryCapReached>().is_some() => PluginError::MemoryLimit {
                plugin,
                limit_mb: self.manifest.limits.memory_mb,
            },
            // What the footprint count at load did not see (nested components).
            _ if root_cause(&e).contains("count too high") => {
                let limits = &self.manifest.limits;
                let (limit, allowed, key) = match root_cause(&e) {
                    c if c.contains("table count") => ("tables", limits.tables, "limits.tables"),
                    c if c.contains("memory count") => {
                        ("memories", limits.memories, "limits.memories")
                    }
                    _ => ("core instances", limits.instances, "limits.instances"),
                };
                PluginError::Limit {
                    plugin,
                    limit,
                    needed: format!("more than {allowed}"),
                    allowed,
                    key,
                }
            }
            _ => PluginError::Trap {
                plugin,
                reason: root_cause(&e),
            },
        }
    }
}

fn root_cause(e: &wasmtime::Error) -> String {
    let chain: Vec<String> = e.chain().map(|c| c.to_string()).collect();
    chain.join(": ")
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Plugins are shared across request threads.
const _: () = {
    const fn is_send_sync<T: Send + Sync>() {}
    is_send_sync::<Plugin>();
};
