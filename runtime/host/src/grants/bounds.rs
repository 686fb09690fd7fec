//! The operator's bound on connector grants (`[connectors]` in weir.toml). A manifest
//! says what its connector wants; the broker decides what any connector may get. A
//! grant outside the bound refuses the version at load, whoever deployed it, so a
//! `connector-admin` cannot grant a connector `/` or the broker's own files.

use std::path::{Path, PathBuf};

use super::{resolve_dir as canonical, split_host};
use crate::error::{PluginError, Result};
use crate::manifest::Manifest;
use crate::plugin::Plugin;

/// What connectors may be granted. Empty (the default): nothing.
#[derive(Debug, Clone, Default)]
pub struct GrantBounds {
    /// Directories grants may name, or lie under (canonical).
    allowed_dirs: Vec<PathBuf>,
    /// `host` (any port) or `host:port`, lowercase.
    allowed_hosts: Vec<String>,
    /// Directories no grant may touch, inside or around: the data and plugin
    /// directories (canonical).
    reserved_dirs: Vec<PathBuf>,
}

impl GrantBounds {
    /// Bounds from the operator's lists; `reserved` can never be granted, even under
    /// an allowed directory.
    pub fn new(allowed_dirs: &[PathBuf], allowed_hosts: &[String], reserved: &[&Path]) -> Self {
        Self {
            allowed_dirs: allowed_dirs.iter().map(|d| canonical(d)).collect(),
            allowed_hosts: allowed_hosts
                .iter()
                .map(|h| h.to_ascii_lowercase())
                .collect(),
            reserved_dirs: reserved.iter().map(|d| canonical(d)).collect(),
        }
    }

    /// Refuses `manifest` if any of its grants is outside the bounds (before the
    /// component is compiled: a refusal costs nothing).
    pub fn check(&self, manifest: &Manifest) -> Result<()> {
        let dirs: Vec<(&Path, PathBuf)> = manifest
            .grants
            .dirs
            .iter()
            .map(|d| (d.as_path(), canonical(d)))
            .collect();
        self.check_resolved(manifest, &dirs)
    }

    /// Refuses a loaded `plugin` whose directories, as its capabilities resolved
    /// them, are outside the bounds: links may have changed since [`check`]
    /// (Self::check), and these are the directories file access will use.
    pub fn check_loaded(&self, plugin: &Plugin) -> Result<()> {
        let manifest = plugin.manifest();
        let resolved = plugin.granted_dirs();
        let dirs: Vec<(&Path, PathBuf)> = manifest
            .grants
            .dirs
            .iter()
            .zip(resolved)
            .map(|(d, r)| (d.as_path(), r.clone()))
            .collect();
        self.check_resolved(manifest, &dirs)
    }

    fn check_resolved(&self, manifest: &Manifest, dirs: &[(&Path, PathBuf)]) -> Result<()> {
        let refuse = |grant: String, reason: String| PluginError::GrantNotAllowed {
            plugin: manifest.name.clone(),
            grant,
            reason,
        };
        for (dir, wanted) in dirs {
            let wanted = wanted.clone();
            if let Some(r) = self
                .reserved_dirs
                .iter()
                .find(|r| wanted.starts_with(r) || r.starts_with(&wanted))
            {
                return Err(refuse(
                    format!("dirs '{}'", dir.display()),
                    format!(
                        "it overlaps {}, which holds the broker's own files and can never be granted",
                        r.display()
                    ),
                ));
            }
            if !self.allowed_dirs.iter().any(|a| wanted.starts_with(a)) {
                return Err(refuse(
                    format!("dirs '{}'", dir.display()),
                    format!(
                        "it is outside [connectors] allowed_dirs ({})",
                        list(
                            &self
                                .allowed_dirs
                                .iter()
                                .map(|d| d.display().to_string())
                                .collect::<Vec<_>>()
                        )
                    ),
                ));
            }
        }
        for host in &manifest.grants.http {
            let (h, port) = split_host(host);
            let h = h.to_ascii_lowercase();
            let allowed = self.allowed_hosts.iter().any(|a| {
                let (ah, aport) = split_host(a);
                ah == h && aport.is_none_or(|ap| port == Some(ap))
            });
            if !allowed {
                return Err(refuse(
                    format!("http '{host}'"),
                    format!(
                        "it is outside [connectors] allowed_hosts ({})",
                        list(&self.allowed_hosts)
                    ),
                ));
            }
        }
        Ok(())
    }
}

fn list(items: &[String]) -> String {
    if items.is_empty() {
        "empty: set it in weir.toml to let connectors reach anything".to_string()
    } else {
        items.join(", ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sink(grants: &str) -> Manifest {
        Manifest::parse(
            &format!("name = \"s\"\nkind = \"sink\"\ncomponent = \"s.wasm\"\n[[attach]]\ntopic = \"t\"\n[grants]\n{grants}"),
            Path::new("s/plugin.toml"),
        )
        .unwrap()
    }

    #[test]
    fn nothing_is_granted_until_the_operator_allows_it() {
        let none = GrantBounds::default();
        assert!(none.check(&sink("")).is_ok());
        let e = none.check(&sink("dirs = [\"/tmp\"]")).unwrap_err();
        assert_eq!(e.code(), "plugin_grant_not_allowed");
        assert!(e.to_string().contains("allowed_dirs (empty"), "{e}");
        assert!(none.check(&sink("http = [\"example.com\"]")).is_err());
    }

    #[test]
    fn grants_must_lie_inside_allowed_dirs_and_away_from_the_brokers_files() {
        let root = tempfile::tempdir().unwrap();
        let out = root.path().join("out");
        let data = root.path().join("data");
        std::fs::create_dir_all(&out).unwrap();
        std::fs::create_dir_all(&data).unwrap();
        let bounds = GrantBounds::new(&[root.path().to_path_buf()], &[], &[&data]);
        let grant = |d: &Path| sink(&format!("dirs = [{:?}]", d.display().to_string()));
        assert!(bounds.check(&grant(&out)).is_ok());
        assert!(bounds.check(&grant(&out.join("not-yet"))).is_ok());
        for refused in [
            data.clone(),
            data.join("sub"),
            root.path().to_path_buf(),
            PathBuf::from("/"),
            PathBuf::from("/etc"),
        ] {
            assert!(
                bounds.check(&grant(&refused)).is_err(),
                "{}",
                refused.display()
            );
        }
        // A link inside an allowed directory that leads to the data directory.
        let link = out.join("sneaky");
        std::os::unix::fs::symlink(&data, &link).unwrap();
        let e = bounds.check(&grant(&link)).unwrap_err();
        assert!(e.to_string().contains("can never be granted"), "{e}");
    }

    #[test]
    fn hosts_must_be_allowed_with_their_port() {
        let bounds = GrantBounds::new(
            &[],
            &["api.example.com".into(), "127.0.0.1:8080".into()],
            &[],
        );
        for ok in ["api.example.com", "API.example.com:443", "127.0.0.1:8080"] {
            assert!(
                bounds.check(&sink(&format!("http = [\"{ok}\"]"))).is_ok(),
                "{ok}"
            );
        }
        for refused in [
            "127.0.0.1",
            "127.0.0.1:9400",
            "example.com",
            "evil.api.example.com",
        ] {
            assert!(
                bounds
                    .check(&sink(&format!("http = [\"{refused}\"]")))
                    .is_err(),
                "{refused}"
            );
        }
    }
}
