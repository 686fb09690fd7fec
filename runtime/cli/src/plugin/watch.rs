//! `weir plugin watch`: the plugin author's inner loop. Builds the crate, writes the
//! plugin folder into the broker's plugin directory (which the broker hot-reloads),
//! and does it again on every change to the crate's sources. With `--check`, asks the
//! server whether each build is serving or was refused, and why.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::Context;
use notify::{RecursiveMode, Watcher};
use weir_broker::plugins::PluginFiles;

use super::Client;

/// Quiet time after a source change before building (editors save in bursts).
const DEBOUNCE: Duration = Duration::from_millis(300);

pub(super) async fn run(
    crate_dir: &Path,
    plugin_dir: &Path,
    check: Option<Client>,
) -> anyhow::Result<()> {
    let crate_dir = crate_dir
        .canonicalize()
        .with_context(|| format!("no plugin crate at {}", crate_dir.display()))?;
    std::fs::create_dir_all(plugin_dir)
        .with_context(|| format!("creating {}", plugin_dir.display()))?;
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let target = crate_dir.join("target");
    let mut watcher = notify::recommended_watcher(move |e: notify::Result<notify::Event>| {
        if let Ok(e) = e
            && e.paths.iter().any(|p| is_source(p, &target))
        {
            let _ = tx.send(());
        }
    })?;
    watcher.watch(&crate_dir, RecursiveMode::Recursive)?;
    eprintln!(
        "watching {} → {} (Ctrl-C to stop)",
        crate_dir.display(),
        plugin_dir.display()
    );
    loop {
        build_and_deploy(&crate_dir, plugin_dir, check.as_ref()).await;
        // Wait for a change, then for the burst of changes to settle.
        tokio::select! {
            got = rx.recv() => if got.is_none() { return Ok(()) },
            _ = tokio::signal::ctrl_c() => return Ok(()),
        }
        while tokio::time::timeout(DEBOUNCE, rx.recv()).await.is_ok() {}
    }
}

/// A change that calls for a rebuild: anything in the crate but its build output and
/// hidden files (editor swap files, `.weir/` is vendored and rarely edited).
fn is_source(path: &Path, target: &Path) -> bool {
    !path.starts_with(target)
        && !path
            .file_name()
            .is_some_and(|n| n.to_string_lossy().starts_with('.'))
        && !path
            .components()
            .any(|c| matches!(c.as_os_str().to_str(), Some("node_modules" | "__pycache__")))
}

async fn build_and_deploy(crate_dir: &Path, plugin_dir: &Path, check: Option<&Client>) {
    let started = Instant::now();
    let (dir, out) = (crate_dir.to_path_buf(), plugin_dir.to_path_buf());
    let built: anyhow::Result<PathBuf> =
        tokio::task::spawn_blocking(move || super::build(&dir, Some(&out)))
            .await
            .unwrap_or_else(|e| Err(e.into()));
    let folder = match built {
        Ok(f) => f,
        Err(e) => {
            eprintln!("build failed: {e:#}");
            return;
        }
    };
    let files = match PluginFiles::read(&folder) {
        Ok(f) => f,
        Err(e) => {
            eprintln!("built, but the folder does not read back: {e}");
            return;
        }
    };
    let version = files.version();
    eprintln!(
        "built {} {} in {:.1} s → {}",
        files.manifest.name,
        &version[..12],
        started.elapsed().as_secs_f64(),
        folder.display()
    );
    if let Some(client) = check {
        report(client, &files.manifest.name, &version).await;
    }
}

/// Polls the server until the version serves or shows as rejected.
async fn report(client: &Client, name: &str, version: &str) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        if let Ok(s) = client.get(&format!("/v1/plugins/{name}")).await {
            if s["version"] == version {
                eprintln!("serving {name} {}", &version[..12]);
                return;
            }
            if let Some(r) = s["rejected_versions"]
                .as_array()
                .and_then(|r| r.iter().find(|e| e["version"] == version))
            {
                eprintln!(
                    "refused by the broker: {}",
                    r["reason"].as_str().unwrap_or("?")
                );
                return;
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    eprintln!(
        "the server did not report {name} {} within 30 s",
        &version[..12]
    );
}
