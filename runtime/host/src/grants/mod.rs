//! Capabilities of connectors: outbound HTTP to granted hosts and files inside
//! granted directories, behind the `http` and `files` WIT interfaces. Everything else
//! is refused with an error naming the grant that is missing; every refusal is logged
//! and counted.

mod bounds;
mod files;
pub(crate) mod http;

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::manifest::Grants;

pub use bounds::GrantBounds;
pub(crate) use http::Client;

/// `path` with symbolic links resolved as far as it exists, the rest appended: a
/// grant of a directory not created yet is kept as where it would be, so a link put
/// in its place later leads nowhere (file access resolves again and must stay inside).
pub(crate) fn resolve_dir(path: &std::path::Path) -> PathBuf {
    let mut existing = path.to_path_buf();
    let mut rest = Vec::new();
    loop {
        if let Ok(c) = std::fs::canonicalize(&existing) {
            return rest.into_iter().rev().fold(c, |p, name| p.join(name));
        }
        match (
            existing.file_name().map(|n| n.to_os_string()),
            existing.parent(),
        ) {
            (Some(name), Some(parent)) => {
                rest.push(name);
                existing = parent.to_path_buf();
            }
            _ => return path.to_path_buf(),
        }
    }
}

/// A `host` or `host:port` grant as (host without IPv6 brackets, port).
pub(crate) fn split_host(grant: &str) -> (&str, Option<u16>) {
    let (host, port) = match grant.rsplit_once(':') {
        Some((h, p)) if !h.contains(':') || h.ends_with(']') => (h, p.parse::<u16>().ok()),
        _ => (grant, None),
    };
    (host.trim_start_matches('[').trim_end_matches(']'), port)
}

/// A plugin's grants, ready for checks; shared by its instances.
#[derive(Debug)]
pub(crate) struct Capabilities {
    plugin: String,
    hosts: Vec<String>,
    /// Granted directories, canonical where they exist (so symbolic links in the
    /// grant itself are resolved once, at load).
    dirs: Vec<PathBuf>,
    client: Client,
    refused: AtomicU64,
}

impl Capabilities {
    /// The capabilities `grants` give `plugin`.
    pub(crate) fn new(plugin: &str, grants: &Grants) -> Self {
        Self {
            plugin: plugin.to_string(),
            hosts: grants.http.iter().map(|h| h.to_ascii_lowercase()).collect(),
            dirs: grants.dirs.iter().map(|d| resolve_dir(d)).collect(),
            client: Client::new(),
            refused: AtomicU64::new(0),
        }
    }

    /// The granted directories as resolved at load: what every file access is
    /// checked against, and what the operator's bounds are checked against.
    pub(crate) fn dirs(&self) -> &[PathBuf] {
        &self.dirs
    }

    /// Calls refused because they were outside the grants.
    pub(crate) fn refused(&self) -> u64 {
        self.refused.load(Ordering::Relaxed)
    }

    /// Counts and logs a refusal; returns the message the plugin gets.
    fn refuse(&self, what: String) -> String {
        self.refused.fetch_add(1, Ordering::Relaxed);
        tracing::warn!(plugin = %self.plugin, "capability refused: {what}");
        format!("capability_denied: {what}")
    }
}
