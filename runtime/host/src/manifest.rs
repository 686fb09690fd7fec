//! `plugin.toml`: what a plugin folder declares. Unknown keys are errors.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::{PluginError, Result};

/// The kind of plugin, i.e. the WIT world its component implements.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    /// Keeps or drops events.
    Filter,
    /// Rewrites events.
    Transform,
    /// Chooses destination topics.
    Router,
    /// Authorises operations.
    Acl,
    /// Brings events in.
    Source,
    /// Delivers events out.
    Sink,
}

impl Kind {
    /// The world's name.
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Filter => "filter",
            Kind::Transform => "transform",
            Kind::Router => "router",
            Kind::Acl => "acl",
            Kind::Source => "source",
            Kind::Sink => "sink",
        }
    }
}

/// Per-plugin limits, with defaults.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Limits {
    /// Deadline of one call, in milliseconds.
    pub timeout_ms: u64,
    /// Memory cap, in MiB.
    pub memory_mb: u64,
    /// Largest component file accepted, in MiB.
    pub max_component_mb: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            timeout_ms: 100,
            memory_mb: 64,
            max_component_mb: 32,
        }
    }
}

/// Where a plugin attaches (used by the pipelines).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Attachment {
    /// Topic.
    pub topic: String,
    /// `produce` (in-line before storage) or `consume`.
    #[serde(default = "default_stage")]
    pub stage: String,
    /// `reject`, `skip` or `dead_letter` (the default).
    #[serde(default = "default_on_error")]
    pub on_error: String,
    /// Where `dead_letter` sends failed events (default `<topic>.dlq`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dead_letter_topic: Option<String>,
}

fn default_stage() -> String {
    "produce".into()
}

fn default_on_error() -> String {
    "dead_letter".into()
}

/// A parsed `plugin.toml`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    /// The plugin's name.
    pub name: String,
    /// Its kind (world).
    pub kind: Kind,
    /// The component file, relative to the manifest.
    pub component: PathBuf,
    /// Limits.
    #[serde(default)]
    pub limits: Limits,
    /// Handed to `init` as JSON.
    #[serde(default)]
    pub config: toml::Table,
    /// Attachments.
    #[serde(default)]
    pub attach: Vec<Attachment>,
}

impl Manifest {
    /// Parses manifest text; `path` is only used in errors.
    pub fn parse(text: &str, path: &Path) -> Result<Manifest> {
        let m: Manifest = toml::from_str(text).map_err(|e| PluginError::Manifest {
            path: path.display().to_string(),
            reason: e.to_string().trim().to_string(),
        })?;
        if !m
            .name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
            || m.name.is_empty()
            || m.name.starts_with('.')
        {
            return Err(PluginError::Manifest {
                path: path.display().to_string(),
                reason: format!("invalid plugin name '{}'", m.name),
            });
        }
        for a in &m.attach {
            let bad = if !matches!(a.stage.as_str(), "produce") {
                Some(format!(
                    "attachment to '{}': stage must be 'produce', got '{}' (consumers choose their own filters with ?filter=)",
                    a.topic, a.stage
                ))
            } else if !matches!(a.on_error.as_str(), "reject" | "skip" | "dead_letter") {
                Some(format!(
                    "attachment to '{}': on_error must be 'reject', 'skip' or 'dead_letter', got '{}'",
                    a.topic, a.on_error
                ))
            } else if !matches!(m.kind, Kind::Filter | Kind::Transform | Kind::Router) {
                Some(format!(
                    "a {} plugin cannot be attached to a topic's pipeline",
                    m.kind.as_str()
                ))
            } else {
                None
            };
            if let Some(reason) = bad {
                return Err(PluginError::Manifest {
                    path: path.display().to_string(),
                    reason,
                });
            }
        }
        if m.limits.timeout_ms == 0 || m.limits.memory_mb == 0 {
            return Err(PluginError::Manifest {
                path: path.display().to_string(),
                reason: "limits.timeout_ms and limits.memory_mb must be positive".into(),
            });
        }
        Ok(m)
    }

    /// Reads `<dir>/plugin.toml`.
    pub fn load(dir: &Path) -> Result<Manifest> {
        let path = dir.join("plugin.toml");
        let text = std::fs::read_to_string(&path).map_err(|e| PluginError::Manifest {
            path: path.display().to_string(),
            reason: e.to_string(),
        })?;
        Self::parse(&text, &path)
    }

    /// The config as JSON text for `init`.
    pub fn config_json(&self) -> String {
        serde_json::to_string(&self.config).unwrap_or_else(|_| "{}".into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_keys_and_kinds_are_errors() {
        let p = Path::new("x/plugin.toml");
        let ok = Manifest::parse(
            "name = \"a\"\nkind = \"filter\"\ncomponent = \"a.wasm\"\n[config]\nk = 1",
            p,
        )
        .unwrap();
        assert_eq!(ok.limits, Limits::default());
        assert_eq!(ok.config_json(), "{\"k\":1}");
        let e = Manifest::parse(
            "name = \"a\"\nkind = \"filter\"\ncomponent = \"a.wasm\"\nextra = 1",
            p,
        )
        .unwrap_err();
        assert!(e.to_string().contains("unknown field"), "{e}");
        assert!(e.to_string().contains("x/plugin.toml"), "{e}");
        let e = Manifest::parse("name = \"a\"\nkind = \"mangle\"\ncomponent = \"a.wasm\"", p)
            .unwrap_err();
        assert!(e.to_string().contains("unknown variant"), "{e}");
    }
}
