//! Loading a version: its files, compiling (or reusing the compilation of the same
//! bytes), linking against the world its manifest declares, and `init`.

use std::path::Path;
use std::sync::Arc;

use parking_lot::Mutex;
use sha2::{Digest, Sha256};
use wasmtime::component::{HasSelf, Linker};

use crate::bindings::{acl, filter, processor, router, sink, source, transform};
use crate::engine::Engine;
use crate::error::{PluginError, Result};
use crate::grants::Capabilities;
use crate::limits::Footprint;
use crate::manifest::{Kind, Manifest};
use crate::state::PluginState;
use crate::wasi::{self, Attribution};

use super::{Plugin, Pre};

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

use super::{Ctx, hex, root_cause};

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
        let mut plugin = Self::build(
            engine,
            files.manifest.clone(),
            &files.component,
            &files.component_path,
            state,
            Some(files.version()),
        )?;
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
        Self::build(engine, manifest, bytes, file, state, None)
    }

    /// Loads a version; `version` is its identity (the component's hash if `None`).
    fn build(
        engine: &Engine,
        manifest: Manifest,
        bytes: &[u8],
        file: &str,
        state: Arc<dyn PluginState>,
        version: Option<String>,
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
        wasi::add_to_linker(&mut linker).map_err(|e| component_error(e.to_string()))?;
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
        if manifest.kind == Kind::Processor {
            // Only processors have keyed state per partition.
            processor::weir::plugin::keyed_state::add_to_linker::<_, HasSelf<_>>(
                &mut linker,
                |c| c,
            )
            .map_err(|e| component_error(e.to_string()))?;
        }
        let instance_pre = linker.instantiate_pre(&component).map_err(|e| {
            let cause = root_cause(&e);
            component_error(format!(
                "it imports something Weir does not provide: {cause}{}",
                wasi::hint(&cause)
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
            Kind::Processor => {
                Pre::Processor(processor::ProcessorPre::new(instance_pre).map_err(wrong_world)?)
            }
        };
        let caps = manifest
            .kind
            .is_connector()
            .then(|| Arc::new(Capabilities::new(&manifest.name, &manifest.grants)));
        let name: Arc<str> = Arc::from(manifest.name.as_str());
        let version = version.unwrap_or(hash);
        let plugin = Plugin {
            uses_wasi: wasi::imports_wasi(engine.wasmtime(), &component),
            output: Attribution::new(name.clone(), &version),
            name,
            config_json: manifest.config_json(),
            manifest,
            hash: version,
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
    pub(super) fn init_first(self) -> Result<Plugin> {
        let live = if self.uses_wasi {
            wasi::outside_async(|| self.instantiate())?
        } else {
            self.instantiate()?
        };
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
            output: self.output.clone(),
            uses_wasi: self.uses_wasi,
        }
        .init_first()
    }
}
