//! `plugin.toml`: what a plugin folder declares. Unknown keys are errors.
//!
//! [`Reach`] (in `reach`) says what a manifest touches beyond the plugin itself:
//! the topics and groups that deploying it needs permissions on.

mod processor;
mod reach;

pub use processor::{EventTime, GROUP_PREFIX, LateEvents, ProcessorSettings, WindowSpec};
pub use reach::Reach;

use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::error::{PluginError, Result};

/// The kind of plugin, i.e. the WIT world its component implements.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
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
    /// Consumes topics with keyed state and windows, and emits records.
    Processor,
}

impl Kind {
    /// Sources and sinks: run by the broker on their own, with grants.
    pub fn is_connector(self) -> bool {
        matches!(self, Kind::Source | Kind::Sink)
    }

    /// The world's name.
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Filter => "filter",
            Kind::Transform => "transform",
            Kind::Router => "router",
            Kind::Acl => "acl",
            Kind::Source => "source",
            Kind::Sink => "sink",
            Kind::Processor => "processor",
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
    /// Core module instances one plugin instance may create (a Rust plugin needs a
    /// handful; componentize-py and componentize-js components dozens).
    pub instances: u64,
    /// Tables those may define.
    pub tables: u64,
    /// Linear memories those may define (`memory_mb` caps them together).
    pub memories: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            timeout_ms: 100,
            // A cap, not a reservation: a JS runtime's heap reaches ~70 MiB under load.
            memory_mb: 128,
            max_component_mb: 32,
            instances: 64,
            tables: 64,
            memories: 16,
        }
    }
}

/// Where a plugin attaches (used by the pipelines).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
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
    #[serde(default)]
    pub dead_letter_topic: Option<String>,
}

impl Attachment {
    /// Where the step sends failed events, when its policy is `dead_letter`.
    pub fn dead_letter(&self) -> Option<String> {
        (self.on_error == "dead_letter").then(|| {
            self.dead_letter_topic
                .clone()
                .unwrap_or_else(|| format!("{}.dlq", self.topic))
        })
    }
}

fn default_stage() -> String {
    "produce".into()
}

fn default_on_error() -> String {
    "dead_letter".into()
}

/// What a connector may reach beyond the broker. Plugins get nothing else: no
/// WASI, no ambient file system or network.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Grants {
    /// Hosts reachable over HTTP: `host` (any port) or `host:port`.
    #[serde(default)]
    pub http: Vec<String>,
    /// Absolute directories the connector may read and write, with everything below.
    #[serde(default)]
    pub dirs: Vec<PathBuf>,
}

impl Grants {
    /// Whether nothing is granted.
    pub fn is_empty(&self) -> bool {
        self.http.is_empty() && self.dirs.is_empty()
    }
}

/// What a sink does with a batch it could not write after its retries.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OnFailure {
    /// Store the events in the dead-letter topic, commit, go on.
    #[default]
    DeadLetter,
    /// Stop the connector (state `failed`) until it is resumed.
    Pause,
}

/// How the broker runs a connector (`[connector]`); every field has a default.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ConnectorSettings {
    /// Most events per `write` (sinks) or per `poll` (sources).
    pub batch_max: u32,
    /// Wait after an empty poll (sources) or when caught up (sinks), in ms. A source
    /// that returns a full batch is polled again at once.
    pub poll_interval_ms: u64,
    /// Attempts of a failing batch after the first, with exponential backoff.
    pub max_retries: u32,
    /// First backoff, in ms; doubles per retry.
    pub backoff_initial_ms: u64,
    /// Longest backoff, in ms.
    pub backoff_max_ms: u64,
    /// What a sink does once retries are exhausted.
    pub on_failure: OnFailure,
    /// Where a sink's failed events go (default `<topic>.dlq`).
    pub dead_letter_topic: Option<String>,
    /// The sink's consumer group (default `connector.<name>`).
    pub group: Option<String>,
    /// Where a new sink group starts: `earliest` (default) or `latest`.
    pub start: String,
}

impl ConnectorSettings {
    /// A sink's consumer group: `group`, or `connector.<name>`.
    pub fn group_of(&self, name: &str) -> String {
        self.group
            .clone()
            .unwrap_or_else(|| format!("connector.{name}"))
    }

    /// Where events of `topic` that cannot be handled go: `dead_letter_topic`, or
    /// `<topic>.dlq`.
    pub fn dead_letter_topic_of(&self, topic: &str) -> String {
        self.dead_letter_topic
            .clone()
            .unwrap_or_else(|| format!("{topic}.dlq"))
    }
}

impl Default for ConnectorSettings {
    fn default() -> Self {
        Self {
            batch_max: 500,
            poll_interval_ms: 500,
            max_retries: 5,
            backoff_initial_ms: 100,
            backoff_max_ms: 30_000,
            on_failure: OnFailure::DeadLetter,
            dead_letter_topic: None,
            group: None,
            start: "earliest".into(),
        }
    }
}

/// Where a router may send events (`[router]`, routers only).
///
/// Declared, not discovered: a deploy is checked against these names (the deployer
/// needs `produce` on each), and at run time a route to any other topic is refused
/// (`route_not_declared`) under the step's error policy. Names are exact; a pattern
/// could not be checked against a policy that denies single topics.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RouterSettings {
    /// Every topic the router may choose.
    pub destinations: Vec<String>,
}

impl RouterSettings {
    /// Whether `topic` is one of the declared destinations.
    pub fn allows(&self, topic: &str) -> bool {
        self.destinations.iter().any(|d| d == topic)
    }
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
    /// Attachments: a pipeline step's topics; a sink's input topics; a source's
    /// output topic.
    #[serde(default)]
    pub attach: Vec<Attachment>,
    /// Capabilities (connectors only).
    #[serde(default)]
    pub grants: Grants,
    /// How the broker runs the connector (connectors only).
    #[serde(default)]
    pub connector: Option<ConnectorSettings>,
    /// The topics a router may send to (routers only, required for them).
    #[serde(default)]
    pub router: Option<RouterSettings>,
    /// What a processor consumes and emits (processors only, required for them).
    #[serde(default)]
    pub processor: Option<ProcessorSettings>,
    /// A transform that masks data (stateless, one output per event): samples of
    /// records shown to operators (a shadow's, a diff replay's) pass through the
    /// chain's redacting steps first.
    #[serde(default)]
    pub redacts: bool,
}

impl Manifest {
    /// Parses manifest text; `path` is only used in errors.
    pub fn parse(text: &str, path: &Path) -> Result<Manifest> {
        let mut m: Manifest = toml::from_str(text).map_err(|e| PluginError::Manifest {
            path: path.display().to_string(),
            reason: e.to_string().trim().to_string(),
        })?;
        if m.kind.is_connector() && !text_sets_timeout(text) {
            // Connectors wait on networks and disks; a pipeline step's 100 ms is too
            // short for them.
            m.limits.timeout_ms = CONNECTOR_TIMEOUT_MS;
        }
        if !is_valid_plugin_name(&m.name) {
            return Err(PluginError::Manifest {
                path: path.display().to_string(),
                reason: format!("invalid plugin name '{}'", m.name),
            });
        }
        let fail = |reason: String| {
            Err(PluginError::Manifest {
                path: path.display().to_string(),
                reason,
            })
        };
        if let Some(reason) = m
            .connector_problem()
            .or_else(|| m.router_problem())
            .or_else(|| m.processor_problem())
        {
            return fail(reason);
        }
        for a in &m.attach {
            let bad = if m.kind.is_connector() {
                None
            } else if !matches!(a.stage.as_str(), "produce") {
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
        if m.redacts && m.kind != Kind::Transform {
            return fail(format!(
                "redacts = true is for transforms that mask data; this is a {}",
                m.kind.as_str()
            ));
        }
        if m.limits.timeout_ms == 0 || m.limits.memory_mb == 0 {
            return fail("limits.timeout_ms and limits.memory_mb must be positive".into());
        }
        Ok(m)
    }

    /// What is wrong with the connector parts of the manifest, if anything.
    fn connector_problem(&self) -> Option<String> {
        if !self.kind.is_connector() {
            return (!self.grants.is_empty() || self.connector.is_some()).then(|| {
                format!(
                    "[grants] and [connector] are for source and sink plugins, not a {} plugin",
                    self.kind.as_str()
                )
            });
        }
        if let Some(d) = self.grants.dirs.iter().find(|d| !is_plain_absolute(d)) {
            return Some(format!(
                "[grants] dirs: '{}' is not an absolute path without '.' or '..'",
                d.display()
            ));
        }
        if let Some(h) = self.grants.http.iter().find(|h| !is_host_grant(h)) {
            return Some(format!(
                "[grants] http: '{h}' is not a host or host:port (no scheme, path or wildcard)"
            ));
        }
        let topics = self.attach.len();
        match self.kind {
            Kind::Source if topics != 1 => {
                return Some(format!(
                    "a source publishes to exactly one topic: one [[attach]] topic, not {topics}"
                ));
            }
            Kind::Sink if topics == 0 => {
                return Some("a sink needs at least one [[attach]] topic".into());
            }
            _ => {}
        }
        let s = self.connector_settings();
        if s.batch_max == 0 || s.backoff_initial_ms == 0 || s.backoff_max_ms < s.backoff_initial_ms
        {
            return Some(
                "[connector]: batch_max and backoff_initial_ms must be positive and backoff_max_ms at least backoff_initial_ms".into(),
            );
        }
        if s.poll_interval_ms < MIN_POLL_INTERVAL_MS {
            return Some(format!(
                "[connector] poll_interval_ms must be at least {MIN_POLL_INTERVAL_MS} (an idle connector would spin)"
            ));
        }
        for (what, name) in [
            ("group", &s.group),
            ("dead_letter_topic", &s.dead_letter_topic),
        ] {
            if let Some(n) = name.as_deref().filter(|n| !valid_name(n)) {
                return Some(format!(
                    "[connector] {what} '{n}' is not a valid name: use 1-249 characters of A-Z, a-z, 0-9, '.', '_', '-'"
                ));
            }
        }
        if !matches!(s.start.as_str(), "earliest" | "latest") {
            return Some(format!(
                "[connector] start must be 'earliest' or 'latest', got '{}'",
                s.start
            ));
        }
        None
    }

    /// What is wrong with `[router]`, if anything.
    fn router_problem(&self) -> Option<String> {
        match (&self.router, self.kind) {
            (Some(_), kind) if kind != Kind::Router => Some(format!(
                "[router] is for router plugins, not a {} plugin",
                kind.as_str()
            )),
            (Some(r), _) if r.destinations.is_empty() => {
                Some("[router] destinations must name at least one topic".into())
            }
            (Some(r), _) => r.destinations.iter().find(|d| !valid_name(d)).map(|d| {
                format!(
                    "[router] destination '{d}' is not a topic name (names are exact: 1-249 characters of A-Z, a-z, 0-9, '.', '_', '-')"
                )
            }),
            (None, _) => None,
        }
    }

    /// What is wrong with `[processor]`, if anything.
    fn processor_problem(&self) -> Option<String> {
        match (&self.processor, self.kind) {
            (Some(_), kind) if kind != Kind::Processor => Some(format!(
                "[processor] is for processor plugins, not a {} plugin",
                kind.as_str()
            )),
            (None, Kind::Processor) => Some(
                "a processor declares what it consumes: add [processor] inputs = [\"topic\", ...] to plugin.toml".into(),
            ),
            (Some(p), _) => p.problem(),
            (None, _) => None,
        }
    }

    /// Why this manifest cannot be loaded although it parses. A router without
    /// `[router]` parses (it was valid before routers declared destinations), so its
    /// attachments stay known and its steps fail closed under their error policy
    /// rather than let records through unrouted; it does not load.
    pub fn load_problem(&self) -> Option<String> {
        (self.kind == Kind::Router && self.router.is_none()).then(|| {
            "a router declares every topic it may send to: add [router] destinations = [\"topic\", ...] to plugin.toml".to_string()
        })
    }

    /// The connector settings, defaults filled in.
    pub fn connector_settings(&self) -> ConnectorSettings {
        self.connector.clone().unwrap_or_default()
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

/// A plugin name: letters, digits, `-`, `_` and `.`, not empty, not starting with `.`
/// (it names a folder in the plugin directory).
pub fn is_valid_plugin_name(name: &str) -> bool {
    !name.is_empty()
        && !name.starts_with('.')
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
}

/// The shortest wait of an idle connector, in ms.
pub const MIN_POLL_INTERVAL_MS: u64 = 10;

/// A topic or group name: 1-249 characters of `A-Za-z0-9._-`, not `.` or `..`.
fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 249
        && name != "."
        && name != ".."
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

/// A connector call's default deadline, in ms.
pub const CONNECTOR_TIMEOUT_MS: u64 = 30_000;

/// Whether the manifest sets `[limits] timeout_ms` itself.
fn text_sets_timeout(text: &str) -> bool {
    toml::from_str::<toml::Table>(text)
        .ok()
        .and_then(|t| t.get("limits")?.get("timeout_ms").cloned())
        .is_some()
}

/// An absolute path with no `.` or `..` in it, so what it names is what it says.
pub fn is_plain_absolute(path: &Path) -> bool {
    path.is_absolute()
        && path.components().all(|c| {
            matches!(
                c,
                std::path::Component::RootDir | std::path::Component::Normal(_)
            )
        })
}

/// `host` or `host:port`: letters, digits, `-`, `.`, or a bracketed IPv6 address.
pub fn is_host_grant(grant: &str) -> bool {
    let (host, port) = match grant.rsplit_once(':') {
        Some((h, p)) if !h.contains(':') || h.ends_with(']') => (h, Some(p)),
        _ => (grant, None),
    };
    let host_ok = !host.is_empty()
        && (host
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.'))
            || (host.starts_with('[') && host.ends_with(']')));
    host_ok && port.is_none_or(|p| p.parse::<u16>().is_ok())
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

    #[test]
    fn connector_sections_are_checked() {
        let p = Path::new("c/plugin.toml");
        let sink =
            "name = \"s\"\nkind = \"sink\"\ncomponent = \"s.wasm\"\n[[attach]]\ntopic = \"t\"\n";
        let ok = Manifest::parse(
            &format!("{sink}[grants]\nhttp = [\"127.0.0.1:8080\", \"example.com\"]\ndirs = [\"/tmp/out\"]\n[connector]\nmax_retries = 2\n"),
            p,
        )
        .unwrap();
        assert_eq!(ok.connector_settings().max_retries, 2);
        assert_eq!(ok.connector_settings().batch_max, 500);
        for (extra, why) in [
            ("[grants]\ndirs = [\"relative\"]\n", "absolute"),
            ("[grants]\ndirs = [\"/tmp/x/../../etc\"]\n", "absolute"),
            ("[grants]\nhttp = [\"http://x\"]\n", "host or host:port"),
            (
                "[grants]\nhttp = [\"*.example.com\"]\n",
                "host or host:port",
            ),
            ("[connector]\nbatch_max = 0\n", "batch_max"),
            ("[connector]\nstart = \"middle\"\n", "start"),
            ("[connector]\npoll_interval_ms = 0\n", "poll_interval_ms"),
            ("[connector]\ngroup = \"a b\"\n", "group"),
            (
                "[connector]\ndead_letter_topic = \"\"\n",
                "dead_letter_topic",
            ),
        ] {
            let e = Manifest::parse(&format!("{sink}{extra}"), p).unwrap_err();
            assert!(e.to_string().contains(why), "{extra}: {e}");
        }
        let e = Manifest::parse(
            "name = \"f\"\nkind = \"filter\"\ncomponent = \"f.wasm\"\n[grants]\nhttp = [\"x\"]\n",
            p,
        )
        .unwrap_err();
        assert!(e.to_string().contains("not a filter plugin"), "{e}");
        let e = Manifest::parse(
            "name = \"s\"\nkind = \"source\"\ncomponent = \"s.wasm\"\n",
            p,
        )
        .unwrap_err();
        assert!(e.to_string().contains("exactly one topic"), "{e}");
    }

    #[test]
    fn routers_declare_exact_destinations() {
        let p = Path::new("r/plugin.toml");
        let router = "name = \"r\"\nkind = \"router\"\ncomponent = \"r.wasm\"\n";
        let ok = Manifest::parse(
            &format!("{router}[router]\ndestinations = [\"a\", \"b\"]\n"),
            p,
        )
        .unwrap();
        let settings = ok.router.unwrap();
        assert!(settings.allows("a") && !settings.allows("c"));
        let undeclared = Manifest::parse(router, p).unwrap();
        assert!(
            undeclared
                .load_problem()
                .unwrap()
                .contains("[router] destinations")
        );
        for (text, why) in [
            (format!("{router}[router]\ndestinations = []\n"), "at least one"),
            (format!("{router}[router]\ndestinations = [\"a*\"]\n"), "not a topic name"),
            (
                "name = \"f\"\nkind = \"filter\"\ncomponent = \"f.wasm\"\n[router]\ndestinations = [\"a\"]\n".to_string(),
                "not a filter plugin",
            ),
        ] {
            let e = Manifest::parse(&text, p).unwrap_err();
            assert!(e.to_string().contains(why), "{text}: {e}");
        }
    }
}
