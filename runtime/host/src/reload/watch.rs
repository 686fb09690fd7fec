//! Watching the plugin directory: file events (inotify through `notify`) mark a
//! plugin folder dirty; once the folder has been quiet for the debounce time *and*
//! its files' sizes and modification times are unchanged across two looks (a quarter
//! of the debounce apart), it is synced. Editors and copy tools write in pieces, rename temporary files into place
//! or copy a folder file by file; waiting for quiet and stable content means a
//! version is loaded once, complete.

use std::collections::HashMap;
use std::ffi::OsString;
use std::path::{Component, Path, PathBuf};
use std::sync::Arc;
use std::sync::mpsc::{self, RecvTimeoutError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime};

use notify::{RecommendedWatcher, RecursiveMode, Watcher};

use super::{Outcome, Reloader};
use crate::history::Origin;

/// How the directory is watched.
#[derive(Debug, Clone, Copy)]
pub struct WatchOptions {
    /// Quiet time after the last event in a folder before it is looked at.
    pub debounce: Duration,
}

impl Default for WatchOptions {
    fn default() -> Self {
        Self {
            debounce: Duration::from_millis(200),
        }
    }
}

enum Msg {
    Event(notify::Result<notify::Event>),
    Stop,
}

/// A running watch; dropping it stops the watching thread.
pub struct Watch {
    _watcher: RecommendedWatcher,
    tx: mpsc::Sender<Msg>,
    thread: Option<JoinHandle<()>>,
}

impl std::fmt::Debug for Watch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Watch").finish_non_exhaustive()
    }
}

impl Drop for Watch {
    fn drop(&mut self) {
        let _ = self.tx.send(Msg::Stop);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Size and modification time of every file in a folder, sorted by path.
type Fingerprint = Vec<(PathBuf, u64, Option<SystemTime>)>;

struct Dirty {
    /// When the folder is next looked at.
    due: Instant,
    seen: Option<Fingerprint>,
}

impl Reloader {
    /// Starts following the plugin directory on a thread of its own.
    pub fn watch(self: &Arc<Self>, options: WatchOptions) -> notify::Result<Watch> {
        let (tx, rx) = mpsc::channel();
        let events = tx.clone();
        let mut watcher = notify::recommended_watcher(move |e| {
            let _ = events.send(Msg::Event(e));
        })?;
        watcher.watch(self.dir(), RecursiveMode::Recursive)?;
        let reloader = self.clone();
        let thread = std::thread::Builder::new()
            .name("weir-plugin-watch".into())
            .spawn(move || reloader.watch_loop(&rx, options))
            .map_err(|e| notify::Error::generic(&e.to_string()))?;
        tracing::info!(plugin_dir = %self.dir().display(), debounce_ms = options.debounce.as_millis() as u64, "watching the plugin directory");
        Ok(Watch {
            _watcher: watcher,
            tx,
            thread: Some(thread),
        })
    }

    fn watch_loop(&self, rx: &mpsc::Receiver<Msg>, options: WatchOptions) {
        let mut dirty: HashMap<OsString, Dirty> = HashMap::new();
        // Whatever changed between the start-up scan and the watch starting.
        self.mark_all(&mut dirty, options.debounce);
        loop {
            let wait = dirty
                .values()
                .map(|d| d.due.saturating_duration_since(Instant::now()))
                .min()
                .unwrap_or(Duration::from_secs(3600));
            match rx.recv_timeout(wait) {
                Ok(Msg::Event(Ok(event))) if is_read(&event.kind) => {}
                Ok(Msg::Event(Ok(event))) => {
                    if event.need_rescan() {
                        self.mark_all(&mut dirty, options.debounce);
                    }
                    for path in &event.paths {
                        if let Some(folder) = top_folder(self.dir(), path) {
                            mark(&mut dirty, folder, options.debounce);
                        }
                    }
                }
                Ok(Msg::Event(Err(e))) => {
                    tracing::warn!(error = %e, "plugin directory watch error; rescanning");
                    self.mark_all(&mut dirty, options.debounce);
                }
                Ok(Msg::Stop) | Err(RecvTimeoutError::Disconnected) => return,
                Err(RecvTimeoutError::Timeout) => {}
            }
            let now = Instant::now();
            let due: Vec<OsString> = dirty
                .iter()
                .filter(|(_, d)| d.due <= now)
                .map(|(f, _)| f.clone())
                .collect();
            for folder in due {
                let print = fingerprint(&self.dir().join(&folder));
                let d = dirty.get_mut(&folder).expect("due folders are dirty");
                if d.seen.as_ref() != Some(&print) {
                    // First look, or changed since the last one: look again shortly.
                    d.seen = Some(print);
                    d.due = now + (options.debounce / 4).max(Duration::from_millis(10));
                    continue;
                }
                dirty.remove(&folder);
                match self.sync(&folder, Origin::File) {
                    Outcome::Unchanged { name, .. } => {
                        tracing::debug!(
                            plugin = name,
                            "plugin folder changed but holds the serving version"
                        )
                    }
                    Outcome::Ignored => {
                        tracing::debug!(folder = %folder.to_string_lossy(), "not a plugin folder (no plugin.toml)")
                    }
                    // Logged where they happen.
                    Outcome::Activated { .. }
                    | Outcome::Rejected { .. }
                    | Outcome::Removed { .. } => {}
                }
            }
        }
    }

    /// Marks every folder, present or known, after lost events.
    fn mark_all(&self, dirty: &mut HashMap<OsString, Dirty>, debounce: Duration) {
        let mut folders = self.folder_names().unwrap_or_default();
        folders.extend(self.folders.lock().keys().cloned());
        for f in folders {
            mark(dirty, f, debounce);
        }
    }
}

/// A change in `folder`: look at it once it has been quiet for `debounce`.
fn mark(dirty: &mut HashMap<OsString, Dirty>, folder: OsString, debounce: Duration) {
    let due = Instant::now() + debounce;
    dirty
        .entry(folder)
        .and_modify(|d| d.due = due)
        .or_insert(Dirty { due, seen: None });
}

/// Whether the event only says a file was opened or read (by us, for one: looking
/// at a folder must not count as a change to it).
fn is_read(kind: &notify::EventKind) -> bool {
    use notify::event::{AccessKind, AccessMode};
    matches!(kind, notify::EventKind::Access(a) if *a != AccessKind::Close(AccessMode::Write))
}

/// The plugin folder `path` is in: its first component under `dir`, unless hidden.
fn top_folder(dir: &Path, path: &Path) -> Option<OsString> {
    let rel = path.strip_prefix(dir).ok()?;
    match rel.components().next()? {
        Component::Normal(name) if !name.to_string_lossy().starts_with('.') => {
            Some(name.to_os_string())
        }
        _ => None,
    }
}

fn fingerprint(folder: &Path) -> Fingerprint {
    let mut out = Vec::new();
    let mut stack = vec![folder.to_path_buf()];
    while let Some(dir) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for e in entries.flatten() {
            let Ok(meta) = e.metadata() else { continue };
            if meta.is_dir() {
                // Plugin folders are shallow; do not wander into build trees.
                if out.len() < 10_000
                    && e.path().components().count() < folder.components().count() + 4
                {
                    stack.push(e.path());
                }
            } else {
                out.push((e.path(), meta.len(), meta.modified().ok()));
            }
        }
    }
    out.sort();
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_map_to_their_top_level_folder_and_hidden_ones_are_ignored() {
        let dir = Path::new("/p");
        assert_eq!(
            top_folder(dir, Path::new("/p/redact/plugin.toml")),
            Some(OsString::from("redact"))
        );
        assert_eq!(
            top_folder(dir, Path::new("/p/redact/.plugin.wasm.tmp")),
            Some(OsString::from("redact"))
        );
        assert_eq!(
            top_folder(dir, Path::new("/p/redact")),
            Some(OsString::from("redact"))
        );
        assert_eq!(top_folder(dir, Path::new("/p/.staging/x")), None);
        assert_eq!(top_folder(dir, Path::new("/p")), None);
        assert_eq!(top_folder(dir, Path::new("/elsewhere/x")), None);
    }
}
