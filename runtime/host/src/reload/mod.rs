//! Hot reload: the plugin directory is the source of truth, and the registry follows
//! it.
//!
//! Each folder of the plugin directory holds one plugin (`plugin.toml` and its
//! component). [`Reloader::sync`] brings one folder's plugin up to date: a new version
//! is compiled, linked, type-checked against its world and initialised off the hot
//! path, and only then swapped in ([`Registry::activate`]); a version that fails any
//! step is recorded as rejected while the current one keeps serving; a folder that is
//! gone detaches its plugin. [`watch`] calls it when files settle, deploys over HTTP
//! go through [`Reloader::deploy`], and a rollback puts the older version's files back
//! into the folder, so a restart serves what was serving.

mod watch;

use std::collections::HashMap;
use std::ffi::{OsStr, OsString};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use parking_lot::Mutex;

use crate::error::{PluginError, Result};
use crate::grants::GrantBounds;
use crate::history::Origin;
use crate::manifest::Manifest;
use crate::plugin::{Plugin, PluginFiles};
use crate::registry::{Registry, Rejected};

pub use watch::{Watch, WatchOptions};

/// What [`Reloader::sync`] or [`Reloader::deploy`] did.
#[derive(Debug)]
pub enum Outcome {
    /// A new version serves.
    Activated {
        /// Plugin name.
        name: String,
        /// The version's content hash.
        version: String,
        /// Compile, link, type-check and init.
        load_time: Duration,
    },
    /// The folder already holds the serving version.
    Unchanged {
        /// Plugin name.
        name: String,
        /// The version's content hash.
        version: String,
    },
    /// The version was refused; the previous one (if any) keeps serving.
    Rejected {
        /// Plugin name (the folder's name when the manifest did not parse).
        name: String,
        /// Why.
        error: PluginError,
    },
    /// The folder is gone: its plugin was detached.
    Removed {
        /// Plugin name.
        name: String,
    },
    /// Nothing to do (a folder without a `plugin.toml` that served nothing).
    Ignored,
}

/// Follows one plugin directory.
pub struct Reloader {
    registry: Arc<Registry>,
    dir: PathBuf,
    /// What connectors may be granted; checked on every version before it loads.
    bounds: GrantBounds,
    /// The plugin each folder holds, by folder name. Locked for a whole sync, deploy
    /// or restore, so changes to the directory and registry are serialised.
    folders: Mutex<HashMap<OsString, String>>,
    /// Plugins the cluster deploys, with the version it serves: the plugin
    /// directory may not serve another version of them on this node.
    claims: Mutex<HashMap<String, String>>,
}

impl std::fmt::Debug for Reloader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Reloader")
            .field("dir", &self.dir)
            .finish_non_exhaustive()
    }
}

impl Reloader {
    /// A reloader for `dir` feeding `registry`, refusing connector grants outside
    /// `bounds`. After a rollback or a canary's promotion it writes the serving
    /// version's files into the plugin's folder.
    pub fn new(registry: Arc<Registry>, dir: &Path, bounds: GrantBounds) -> Arc<Self> {
        let reloader = Arc::new(Self {
            registry: registry.clone(),
            dir: dir.to_path_buf(),
            bounds,
            folders: Mutex::new(HashMap::new()),
            claims: Mutex::new(HashMap::new()),
        });
        let weak: Weak<Self> = Arc::downgrade(&reloader);
        registry.on_serving_changed(move |name| {
            if let Some(r) = weak.upgrade() {
                let name = name.to_string();
                // Off the caller's thread: a rollback may fire inside a plugin call.
                std::thread::spawn(move || r.restore(&name));
            }
        });
        reloader
    }

    /// The registry it feeds.
    pub fn registry(&self) -> &Arc<Registry> {
        &self.registry
    }

    /// The plugin directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Loads every plugin folder at start-up. Returns how many loaded and how many
    /// failed.
    pub fn scan(&self) -> std::io::Result<(usize, usize)> {
        let (mut loaded, mut failed) = (0, 0);
        for folder in self.folder_names()? {
            match self.sync(&folder, Origin::Startup) {
                Outcome::Activated { .. } | Outcome::Unchanged { .. } => loaded += 1,
                Outcome::Rejected { .. } => failed += 1,
                Outcome::Removed { .. } | Outcome::Ignored => {}
            }
        }
        Ok((loaded, failed))
    }

    /// The plugin folders now in the directory (hidden ones are not plugins).
    fn folder_names(&self) -> std::io::Result<Vec<OsString>> {
        let mut names: Vec<OsString> = std::fs::read_dir(&self.dir)?
            .filter_map(|e| e.ok())
            .filter(|e| e.path().is_dir())
            .map(|e| e.file_name())
            .filter(|n| !is_hidden(n))
            .collect();
        names.sort();
        Ok(names)
    }

    /// Brings the plugin of folder `folder` (a name in the plugin directory) up to
    /// date with its files.
    pub fn sync(&self, folder: &OsStr, origin: Origin) -> Outcome {
        let path = self.dir.join(folder);
        let mut folders = self.folders.lock();
        if !path.join("plugin.toml").is_file() {
            return match folders.remove(folder) {
                Some(name) => {
                    if self.registry.remove(&name) {
                        tracing::info!(plugin = name, folder = %path.display(), "plugin folder removed; plugin detached");
                    }
                    Outcome::Removed { name }
                }
                None => Outcome::Ignored,
            };
        }
        let started = Instant::now();
        let files = match PluginFiles::read(&path) {
            Ok(files) => files,
            Err(error) => {
                let manifest = Manifest::load(&path).ok();
                let name = manifest
                    .as_ref()
                    .map(|m| m.name.clone())
                    .or_else(|| folders.get(folder).cloned())
                    .unwrap_or_else(|| folder.to_string_lossy().into_owned());
                folders.insert(folder.to_os_string(), name.clone());
                return self.rejected(name, None, None, origin, error, started, manifest);
            }
        };
        let name = files.manifest.name.clone();
        if let Some((other, _)) = folders.iter().find(|(f, n)| **n == name && *f != folder) {
            let error = PluginError::Manifest {
                path: path.join("plugin.toml").display().to_string(),
                reason: format!(
                    "plugin '{name}' is already served from folder '{}'",
                    other.to_string_lossy()
                ),
            };
            return Outcome::Rejected { name, error };
        }
        let version = files.version();
        if !self.serving(&name, &version)
            && let Some(error) = self.claimed_elsewhere(&name, &version, &path)
        {
            return self.rejected(name, Some(&version), None, origin, error, started, None);
        }
        if let Some(previous) = folders.insert(folder.to_os_string(), name.clone())
            && previous != name
            && self.registry.remove(&previous)
        {
            tracing::info!(
                plugin = previous,
                renamed_to = name,
                "plugin renamed in its manifest; old name detached"
            );
        }
        self.load(files, origin, started, |_| Ok(()))
    }

    /// Compiles and activates `files`, or records why not. `place` runs between a
    /// successful load and the activation (a deploy writes the files then).
    fn load(
        &self,
        files: PluginFiles,
        origin: Origin,
        started: Instant,
        place: impl FnOnce(&PluginFiles) -> Result<()>,
    ) -> Outcome {
        let name = files.manifest.name.clone();
        let version = files.version();
        if self.serving(&name, &version) {
            return Outcome::Unchanged { name, version };
        }
        let file = files.component_path.clone();
        let manifest = files.manifest.clone();
        let loaded = match manifest.load_problem() {
            Some(reason) => Err(PluginError::Manifest {
                path: Path::new(&file)
                    .with_file_name("plugin.toml")
                    .display()
                    .to_string(),
                reason,
            }),
            None => self
                .bounds
                .check(&manifest)
                .and_then(|()| {
                    Plugin::from_files(self.registry.engine(), files, self.registry.state())
                })
                .and_then(|plugin| self.bounds.check_loaded(&plugin).map(|()| plugin)),
        };
        match loaded {
            Ok(plugin) => {
                if let Some(f) = plugin.files()
                    && let Err(error) = place(f)
                {
                    return Outcome::Rejected { name, error };
                }
                let load_time = started.elapsed();
                tracing::info!(
                    plugin = name,
                    kind = plugin.kind().as_str(),
                    version = &version[..12],
                    origin = ?origin,
                    ms = load_time.as_secs_f64() * 1e3,
                    "plugin version activated"
                );
                self.registry.activate(plugin, origin, Some(load_time));
                Outcome::Activated {
                    name,
                    version,
                    load_time,
                }
            }
            Err(error) => self.rejected(
                name,
                Some(&version),
                Some(&file),
                origin,
                error,
                started,
                Some(manifest),
            ),
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn rejected(
        &self,
        name: String,
        version: Option<&str>,
        file: Option<&str>,
        origin: Origin,
        error: PluginError,
        started: Instant,
        manifest: Option<Manifest>,
    ) -> Outcome {
        let serving = self
            .registry
            .get(&name)
            .and_then(|s| s.current())
            .map(|p| p.hash()[..12].to_string());
        tracing::error!(
            plugin = name,
            file,
            code = error.code(),
            error = %error,
            still_serving = serving,
            "plugin version rejected"
        );
        self.registry.reject(
            &name,
            Rejected {
                version,
                origin,
                file,
                error: &error,
                load_time: Some(started.elapsed()),
            },
            manifest,
        );
        Outcome::Rejected { name, error }
    }

    /// Marks plugin `name` as deployed by the cluster at `version` (`None`: the
    /// cluster deploys no version of it, and the plugin directory decides again).
    /// The cluster's version wins over the plugin directory: a folder holding
    /// another version of it is refused on this node.
    pub fn claim(&self, name: &str, version: Option<String>) {
        let mut claims = self.claims.lock();
        match version {
            Some(v) => claims.insert(name.to_string(), v),
            None => claims.remove(name),
        };
    }

    /// The refusal of a folder's version of a plugin the cluster deploys at another
    /// version.
    fn claimed_elsewhere(&self, name: &str, version: &str, path: &Path) -> Option<PluginError> {
        let claims = self.claims.lock();
        let claimed = claims.get(name)?;
        if claimed == version {
            return None;
        }
        Some(PluginError::Manifest {
            path: path.join("plugin.toml").display().to_string(),
            reason: format!(
                "plugin '{name}' is deployed to the cluster (version {}); the cluster's \
                 version wins over this node's plugin directory: deploy it with \
                 `weir plugin deploy --url`",
                &claimed[..claimed.len().min(12)]
            ),
        })
    }

    /// Detaches plugin `name` and removes its folder (the cluster took back its
    /// first deployment).
    pub fn detach(&self, name: &str) {
        let mut folders = self.folders.lock();
        let folder = folders
            .iter()
            .find(|(_, n)| n.as_str() == name)
            .map(|(f, _)| f.clone());
        if let Some(folder) = folder {
            folders.remove(&folder);
            let path = self.dir.join(&folder);
            if let Err(e) = std::fs::remove_dir_all(&path) {
                tracing::warn!(plugin = name, folder = %path.display(), error = %e, "removing a detached plugin's folder failed");
            }
        }
        if self.registry.remove(name) {
            tracing::info!(
                plugin = name,
                "plugin detached: the cluster took its deployment back"
            );
        }
    }

    fn serving(&self, name: &str, version: &str) -> bool {
        self.registry
            .get(name)
            .and_then(|s| s.current())
            .is_some_and(|p| p.hash() == version)
    }

    /// Deploys plugin `name` from a manifest and component received whole: checks
    /// and loads it like a folder change, and only when it loads writes it into the
    /// plugin directory and activates it. A refused version writes nothing. Only
    /// while `replaces` (a version hash, or `None` for no version) still serves: a
    /// caller that checked what the deploy replaces must replace exactly that.
    pub fn deploy(
        &self,
        name: &str,
        manifest_text: String,
        component: Vec<u8>,
        replaces: Option<&str>,
    ) -> Outcome {
        self.deploy_from(Origin::Http, name, manifest_text, component, replaces)
    }

    /// [`deploy`](Self::deploy), recorded in the history as coming from `from` (a
    /// cluster deployment lands on each node this way).
    pub fn deploy_from(
        &self,
        from: Origin,
        name: &str,
        manifest_text: String,
        component: Vec<u8>,
        replaces: Option<&str>,
    ) -> Outcome {
        let started = Instant::now();
        let origin = match from {
            Origin::Cluster => format!("cluster deployment of {name}"),
            _ => format!("PUT /v1/plugins/{name}"),
        };
        let files = match PluginFiles::from_bytes(manifest_text, component, &origin) {
            Ok(f) => f,
            Err(error) => {
                return self.rejected(name.into(), None, None, from, error, started, None);
            }
        };
        let manifest_error = |reason: String| Outcome::Rejected {
            name: name.to_string(),
            error: PluginError::Manifest {
                path: format!("{origin}/plugin.toml"),
                reason,
            },
        };
        if files.manifest.name != name {
            return manifest_error(format!(
                "the manifest names plugin '{}', not '{name}'",
                files.manifest.name
            ));
        }
        if !is_relative_inside(&files.manifest.component) {
            return manifest_error(
                "a deployed plugin's component must be a relative path inside its folder"
                    .to_string(),
            );
        }
        let mut folders = self.folders.lock();
        let serving = self
            .registry
            .get(name)
            .and_then(|s| s.current())
            .map(|p| p.hash().to_string());
        if serving.as_deref() != replaces {
            return Outcome::Rejected {
                name: name.to_string(),
                error: PluginError::ChangedMeanwhile {
                    plugin: name.to_string(),
                    expected: replaces.unwrap_or("none").to_string(),
                    found: serving.unwrap_or_else(|| "none".to_string()),
                },
            };
        }
        let folder = folders
            .iter()
            .find(|(_, n)| n.as_str() == name)
            .map(|(f, _)| f.clone())
            .unwrap_or_else(|| OsString::from(name));
        let path = self.dir.join(&folder);
        let outcome = self.load(files, from, started, |f| {
            write_folder(&path, &f.manifest.component, f)
        });
        if matches!(
            outcome,
            Outcome::Activated { .. } | Outcome::Unchanged { .. }
        ) {
            folders.insert(folder, name.to_string());
        }
        outcome
    }

    /// Writes the serving version of `name` into its folder (after a rollback or a
    /// promotion), unless the folder already holds it.
    fn restore(&self, name: &str) {
        let folders = self.folders.lock();
        let Some(plugin) = self.registry.get(name).and_then(|s| s.current()) else {
            return;
        };
        let Some(files) = plugin.files() else {
            return;
        };
        let folder = folders
            .iter()
            .find(|(_, n)| n.as_str() == name)
            .map(|(f, _)| f.clone())
            .unwrap_or_else(|| OsString::from(name));
        let path = self.dir.join(&folder);
        if PluginFiles::read(&path).is_ok_and(|f| f.version() == plugin.hash()) {
            return;
        }
        if !is_relative_inside(&files.manifest.component) {
            tracing::error!(
                plugin = name,
                "cannot write the serving version's files: its component path leaves the folder; a restart would load the folder's version"
            );
            return;
        }
        match write_folder(&path, &files.manifest.component, files) {
            Ok(()) => {
                tracing::info!(plugin = name, folder = %path.display(), version = &plugin.hash()[..12], "serving version's files written to the plugin directory")
            }
            Err(e) => {
                tracing::error!(plugin = name, error = %e, "cannot write the serving version's files; a restart would load the folder's version")
            }
        }
    }
}

/// Whether `path` is relative and stays inside the folder (no `..`, no root).
pub(crate) fn is_relative_inside(path: &Path) -> bool {
    path.components()
        .all(|c| matches!(c, std::path::Component::Normal(_)))
}

/// Writes a version into `folder`: the component first, then the manifest, each to a
/// hidden temporary file renamed into place, so a reader never sees half a file.
fn write_folder(folder: &Path, component: &Path, files: &PluginFiles) -> Result<()> {
    let io = |path: &Path, e: std::io::Error| PluginError::Io {
        plugin: files.manifest.name.clone(),
        path: path.display().to_string(),
        reason: e.to_string(),
    };
    for (file, bytes) in [
        (component, &files.component[..]),
        (Path::new("plugin.toml"), files.manifest_text.as_bytes()),
    ] {
        let target = folder.join(file);
        let parent = target.parent().unwrap_or(folder);
        std::fs::create_dir_all(parent).map_err(|e| io(parent, e))?;
        let temp = parent.join(format!(
            ".{}.tmp",
            target.file_name().unwrap_or_default().to_string_lossy()
        ));
        write_synced(&temp, bytes)
            .and_then(|()| std::fs::rename(&temp, &target))
            .map_err(|e| io(&target, e))?;
    }
    Ok(())
}

fn write_synced(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    let mut f = std::fs::File::create(path)?;
    f.write_all(bytes)?;
    f.sync_all()
}

fn is_hidden(name: &OsStr) -> bool {
    name.to_string_lossy().starts_with('.')
}
