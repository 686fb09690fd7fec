//! A `weir serve` of this binary in a process of its own: what the figures that need
//! the load generator apart from the broker measure.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use anyhow::Context;

/// A child broker, killed when dropped.
pub(super) struct ChildBroker {
    pub child: Child,
    /// `http://127.0.0.1:PORT`.
    pub url: String,
    /// Its Kafka listener (`host:port`), when its config has `[kafka]`.
    pub kafka: Option<String>,
}

impl Drop for ChildBroker {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts `weir serve` on a free port with its data and plugins under `dir`, plus
/// `extra` arguments; returns once it reports its address.
pub(super) fn spawn_serve(dir: &Path, extra: &[&std::ffi::OsStr]) -> anyhow::Result<ChildBroker> {
    std::fs::create_dir_all(dir)?;
    let mut child = Command::new(std::env::current_exe()?)
        .args(["serve", "--listen", "127.0.0.1:0", "--log", "info"])
        .arg("--data-dir")
        .arg(dir.join("data"))
        .arg("--plugin-dir")
        .arg(dir.join("plugins"))
        .args(extra)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()?;
    let stderr = child.stderr.take().context("no stderr")?;
    let (tx, rx) = std::sync::mpsc::channel();
    // Drains the log for the child's whole life, so it never blocks on a full pipe.
    std::thread::spawn(move || {
        let mut tx = Some(tx);
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if line.contains("listen=")
                && let Some(tx) = tx.take()
            {
                let _ = tx.send(line);
            }
        }
    });
    let line = rx
        .recv_timeout(Duration::from_secs(60))
        .context("a weir serve child did not start")?;
    let field = |name: &str| {
        line.split(name)
            .nth(1)
            .and_then(|v| v.split_whitespace().next())
            .map(str::to_string)
    };
    Ok(ChildBroker {
        child,
        url: format!("http://{}", field("listen=").unwrap_or_default()),
        kafka: field("kafka="),
    })
}
