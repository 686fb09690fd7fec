//! `weir.toml`: the server's configuration. Every key is optional; unknown keys are
//! errors, so a typo never silently falls back to a default.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use anyhow::Context;
use serde::Deserialize;

mod cluster;
mod kafka;

pub use cluster::ClusterConfig;
pub use kafka::KafkaConfig;
use weir_broker::pipeline::{MissingTopic, PipelineOptions};

/// The whole configuration file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Address the HTTP API listens on.
    pub listen: SocketAddr,
    /// Where the log is stored (created if missing).
    pub data_dir: PathBuf,
    /// Where deployable plugins are read from (created if missing).
    pub plugin_dir: PathBuf,
    /// Request and record size limits.
    pub limits: Limits,
    /// Storage tuning.
    pub storage: StorageConfig,
    /// Consumer groups.
    pub groups: GroupsConfig,
    /// Idempotent produce: how long and how much is remembered.
    pub idempotence: IdempotenceConfig,
    /// Plugin health.
    pub plugins: PluginsConfig,
    /// Pipelines.
    pub pipelines: PipelinesConfig,
    /// Who is calling: API tokens, JWT.
    pub auth: AuthConfig,
    /// What callers may do: the ACL policy plugin.
    pub acl: AclConfig,
    /// TLS for the listener.
    pub tls: Option<TlsConfig>,
    /// What connectors may be granted.
    pub connectors: ConnectorsConfig,
    /// Cluster mode: the log on NATS JetStream instead of `data_dir`.
    pub cluster: Option<ClusterConfig>,
    /// The Kafka wire protocol beside HTTP (off by default).
    pub kafka: Option<KafkaConfig>,
}

/// The operator's bound on connector grants: a manifest's `[grants]` must lie within
/// these, or the version is refused at load, however it was deployed. Empty (the
/// default): no connector reaches any directory or host. The data and plugin
/// directories can never be granted.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ConnectorsConfig {
    /// Absolute directories that grants may name or lie under.
    pub allowed_dirs: Vec<PathBuf>,
    /// `host` (any port) or `host:port` that `[grants] http` may name.
    pub allowed_hosts: Vec<String>,
}

/// Authentication. Off by default (a local first run); the start-up log says so.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AuthConfig {
    /// Require credentials on every request but `/healthz` and `/readyz`.
    pub enabled: bool,
    /// API tokens, stored as the SHA-256 of the token (never the token itself).
    pub tokens: Vec<TokenConfig>,
    /// JSON Web Tokens, when set.
    pub jwt: Option<JwtConfig>,
}

/// One API token.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TokenConfig {
    /// Who the token's bearer is.
    pub principal: String,
    /// Hex SHA-256 of the token (`printf %s "$TOKEN" | sha256sum`).
    pub sha256: String,
    /// Groups or roles of the principal.
    #[serde(default)]
    pub groups: Vec<String>,
}

/// JWT validation. Only the listed algorithms are accepted (never `none`), each with
/// its own key, so an HMAC token can never be checked against a public key.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JwtConfig {
    /// Accepted algorithms: `HS256`, `RS256`, `ES256`.
    pub algorithms: Vec<String>,
    /// The HS256 shared secret.
    #[serde(default)]
    pub hs256_secret: Option<String>,
    /// PEM file of the RS256 public key.
    #[serde(default)]
    pub rs256_public_key: Option<PathBuf>,
    /// PEM file of the ES256 public key.
    #[serde(default)]
    pub es256_public_key: Option<PathBuf>,
    /// Required `iss`.
    #[serde(default)]
    pub issuer: Option<String>,
    /// Required `aud`.
    #[serde(default)]
    pub audience: Option<String>,
    /// The claim naming the principal.
    #[serde(default = "default_principal_claim")]
    pub principal_claim: String,
    /// The claim listing groups or roles (a string array).
    #[serde(default = "default_groups_claim")]
    pub groups_claim: String,
    /// Clock skew allowed on `exp` and `nbf`, in seconds.
    #[serde(default = "default_leeway")]
    pub leeway_s: u64,
}

fn default_principal_claim() -> String {
    "sub".into()
}

fn default_groups_claim() -> String {
    "groups".into()
}

fn default_leeway() -> u64 {
    30
}

/// Authorization by an ACL policy plugin.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AclConfig {
    /// The ACL plugin's name in the plugin directory. Unset with auth enabled: every
    /// authenticated caller may do everything (logged at start-up).
    pub plugin: Option<String>,
    /// How long a decision is reused for the same principal, operation and resource.
    pub cache_ttl_ms: u64,
    /// Whether `GET /metrics` needs credentials and the `metrics` permission.
    pub protect_metrics: bool,
    /// A topic that records every admin action and every denial, when set.
    pub audit_topic: Option<String>,
}

impl Default for AclConfig {
    fn default() -> Self {
        Self {
            plugin: None,
            cache_ttl_ms: 5_000,
            protect_metrics: true,
            audit_topic: None,
        }
    }
}

/// TLS for the listener (rustls).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsConfig {
    /// PEM certificate chain.
    pub cert: PathBuf,
    /// PEM private key.
    pub key: PathBuf,
    /// PEM CA bundle for client certificates (mTLS); their subject's common name
    /// becomes the principal.
    #[serde(default)]
    pub client_ca: Option<PathBuf>,
    /// With `client_ca`: refuse connections without a client certificate.
    #[serde(default)]
    pub require_client_cert: bool,
}

/// Plugins: quarantine of failing ones, hot reload and automatic rollback, and where
/// compiled code is kept.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PluginsConfig {
    /// Where compiled plugin code is kept across restarts (default
    /// `<data_dir>/compiled`). Several brokers on one machine may share it.
    pub compile_cache_dir: Option<std::path::PathBuf>,
    /// Failures within `quarantine_window_ms` that quarantine a plugin.
    pub quarantine_failures: u32,
    /// The sliding window failures are counted in.
    pub quarantine_window_ms: u64,
    /// Wait before the first retry of a quarantined plugin; doubles per failed retry.
    pub quarantine_backoff_ms: u64,
    /// Longest wait between retries.
    pub quarantine_max_backoff_ms: u64,
    /// Follow the plugin directory: load, replace and detach plugins as their
    /// folders change.
    pub watch: bool,
    /// Quiet time after the last change in a plugin folder before it is loaded.
    pub reload_debounce_ms: u64,
    /// Events a new version must handle before it counts as good.
    pub probation_events: u64,
    /// Share of a new version's first events in failed calls above which it is
    /// rolled back to the previous version.
    pub rollback_error_rate: f64,
}

impl Default for PluginsConfig {
    fn default() -> Self {
        Self {
            compile_cache_dir: None,
            quarantine_failures: 5,
            quarantine_window_ms: 60_000,
            quarantine_backoff_ms: 1_000,
            quarantine_max_backoff_ms: 60_000,
            watch: true,
            reload_debounce_ms: 200,
            probation_events: 1000,
            rollback_error_rate: 0.5,
        }
    }
}

/// Pipeline settings.
#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PipelinesConfig {
    /// What a router naming a topic that does not exist gets: `error` (the router's
    /// error policy applies, with `unknown_topic`) or `create`.
    pub missing_topic: MissingTopic,
    /// Partitions of topics created for a router.
    pub auto_create_partitions: u32,
    /// Partitions of dead-letter topics the broker creates.
    pub dead_letter_partitions: u32,
}

impl Default for PipelinesConfig {
    fn default() -> Self {
        let d = PipelineOptions::default();
        Self {
            missing_topic: d.missing_topic,
            auto_create_partitions: d.auto_create_partitions,
            dead_letter_partitions: d.dead_letter_partitions,
        }
    }
}

/// Consumer group settings.
#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct GroupsConfig {
    /// A member that has not fetched for this long loses its partitions.
    pub session_timeout_ms: u64,
}

impl Default for GroupsConfig {
    fn default() -> Self {
        Self {
            session_timeout_ms: 30_000,
        }
    }
}

/// Bounds of the idempotent-produce state (see the README's "Retries that never
/// duplicate").
#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct IdempotenceConfig {
    /// How long an `Idempotency-Key` is remembered.
    pub key_window_s: u64,
    /// Most keys remembered; beyond it the oldest are forgotten early.
    pub max_keys: usize,
    /// A producer session idle this long is forgotten.
    pub session_idle_s: u64,
    /// Most producer sessions (per producer and partition) kept.
    pub max_sessions: usize,
}

impl Default for IdempotenceConfig {
    fn default() -> Self {
        let d = weir_broker::idempotence::IdempotenceOptions::default();
        Self {
            key_window_s: d.key_window.as_secs(),
            max_keys: d.max_keys,
            session_idle_s: d.session_idle.as_secs(),
            max_sessions: d.max_sessions,
        }
    }
}

impl IdempotenceConfig {
    /// The broker's options.
    pub fn options(&self) -> weir_broker::idempotence::IdempotenceOptions {
        weir_broker::idempotence::IdempotenceOptions {
            key_window: std::time::Duration::from_secs(self.key_window_s),
            max_keys: self.max_keys,
            session_idle: std::time::Duration::from_secs(self.session_idle_s),
            max_sessions: self.max_sessions,
        }
    }
}

impl Default for Config {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 9400)),
            data_dir: PathBuf::from("weir-data"),
            plugin_dir: PathBuf::from("weir-plugins"),
            limits: Limits::default(),
            storage: StorageConfig::default(),
            groups: GroupsConfig::default(),
            idempotence: IdempotenceConfig::default(),
            plugins: PluginsConfig::default(),
            pipelines: PipelinesConfig::default(),
            auth: AuthConfig::default(),
            acl: AclConfig::default(),
            tls: None,
            connectors: ConnectorsConfig::default(),
            cluster: None,
            kafka: None,
        }
    }
}

/// Size and time limits of the HTTP API.
#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Limits {
    /// Largest request body; larger ones get 413 before they are read.
    pub max_request_bytes: usize,
    /// Largest record (key + value + headers).
    pub max_record_bytes: usize,
    /// Longest long-poll a fetch may ask for.
    pub max_wait_ms: u64,
    /// Most records one fetch returns.
    pub max_fetch_records: usize,
    /// Open connections at most; one more is answered 503 `too_many_connections`
    /// and closed, so no client can take every socket.
    pub max_connections: usize,
    /// Connections from one client address at most (its next ones get 503), so one
    /// address cannot hold the slots others need. Raise it behind a proxy, whose
    /// clients all share its address.
    pub max_connections_per_address: usize,
    /// Connections that have not yet sent their first request, at most: when one
    /// more arrives, the one that has waited longest is closed to make room, so idle
    /// sockets cannot keep clients that do send requests out.
    pub max_pending_connections: usize,
    /// A new connection must send its first request's headers within this (or within
    /// `header_read_timeout_ms` if that is shorter), or it is closed.
    pub first_request_timeout_ms: u64,
    /// A request's headers must arrive within this (slow-header clients are closed);
    /// it also closes keep-alive connections idle for as long.
    pub header_read_timeout_ms: u64,
    /// A request body that stalls this long (nothing arrives) gets 408.
    pub body_idle_timeout_ms: u64,
}

impl Limits {
    /// Values that would refuse every client or close every connection at once.
    pub fn validate(&self) -> anyhow::Result<()> {
        for (name, value) in [
            ("limits.max_connections", self.max_connections as u64),
            (
                "limits.max_connections_per_address",
                self.max_connections_per_address as u64,
            ),
            (
                "limits.max_pending_connections",
                self.max_pending_connections as u64,
            ),
            (
                "limits.first_request_timeout_ms",
                self.first_request_timeout_ms,
            ),
            ("limits.header_read_timeout_ms", self.header_read_timeout_ms),
            ("limits.body_idle_timeout_ms", self.body_idle_timeout_ms),
        ] {
            anyhow::ensure!(value > 0, "{name} must be above 0");
        }
        anyhow::ensure!(
            self.max_pending_connections < self.max_connections,
            "limits.max_pending_connections ({}) must be below limits.max_connections ({}), so clients that send requests always find a slot",
            self.max_pending_connections,
            self.max_connections
        );
        Ok(())
    }

    /// How long a new connection may take to send its first request's headers.
    pub fn first_request_timeout(&self) -> std::time::Duration {
        std::time::Duration::from_millis(
            self.first_request_timeout_ms
                .min(self.header_read_timeout_ms),
        )
    }

    /// [`Limits::body_idle_timeout_ms`] as a duration.
    pub fn body_idle_timeout(&self) -> std::time::Duration {
        std::time::Duration::from_millis(self.body_idle_timeout_ms)
    }
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_request_bytes: 16 << 20,
            max_record_bytes: 1 << 20,
            max_wait_ms: 60_000,
            max_fetch_records: 10_000,
            max_connections: 1024,
            max_connections_per_address: 256,
            max_pending_connections: 256,
            first_request_timeout_ms: 5_000,
            header_read_timeout_ms: 10_000,
            body_idle_timeout_ms: 30_000,
        }
    }
}

/// Storage tuning.
#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StorageConfig {
    /// How often retention and compaction run.
    pub cleaner_interval_ms: u64,
    /// sled's page cache, in bytes.
    pub cache_bytes: u64,
    /// Publishes get 507 `storage_full` while the data dir's filesystem has less free
    /// space than this many bytes (0: no floor). Reads keep working; publishing resumes
    /// by itself once space is freed.
    pub min_free_bytes: u64,
}

impl Default for StorageConfig {
    fn default() -> Self {
        Self {
            cleaner_interval_ms: 30_000,
            cache_bytes: 256 << 20,
            min_free_bytes: 64 << 20,
        }
    }
}

impl Config {
    /// Reads a TOML file and checks it.
    pub fn load(path: &Path) -> anyhow::Result<Config> {
        let config = Self::read(path)?;
        config
            .validate()
            .with_context(|| format!("config {}", path.display()))?;
        Ok(config)
    }

    /// Reads a TOML file without checking it: for `weir serve`, whose flags may
    /// complete it (`--cluster` names the servers of a `[cluster]` section).
    pub fn read(path: &Path) -> anyhow::Result<Config> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("reading config {}", path.display()))?;
        toml::from_str(&text).with_context(|| format!("parsing config {}", path.display()))
    }

    /// What the types cannot say: values that would refuse everyone, and paths and
    /// hosts that are not what they must be. (Keys and certificates are loaded by
    /// [`crate::check`], before the broker opens its port.)
    pub fn validate(&self) -> anyhow::Result<()> {
        self.limits.validate()?;
        if let Some(c) = &self.cluster {
            c.options()?;
        }
        for d in &self.connectors.allowed_dirs {
            anyhow::ensure!(
                weir_broker::plugins::is_plain_absolute(d),
                "connectors.allowed_dirs: '{}' is not an absolute path without '.' or '..'",
                d.display()
            );
        }
        for h in &self.connectors.allowed_hosts {
            anyhow::ensure!(
                weir_broker::plugins::is_host_grant(h),
                "connectors.allowed_hosts: '{h}' is not a host or host:port"
            );
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_that_would_refuse_everyone_are_errors() {
        assert!(Limits::default().validate().is_ok());
        for limits in [
            Limits {
                max_connections: 0,
                ..Limits::default()
            },
            Limits {
                header_read_timeout_ms: 0,
                ..Limits::default()
            },
            Limits {
                body_idle_timeout_ms: 0,
                ..Limits::default()
            },
            Limits {
                max_pending_connections: 1024,
                ..Limits::default()
            },
        ] {
            assert!(limits.validate().is_err(), "{limits:?}");
        }
    }

    #[test]
    fn unknown_keys_are_errors() {
        let err = toml::from_str::<Config>("listn = \"127.0.0.1:1\"").unwrap_err();
        assert!(err.to_string().contains("unknown field"), "{err}");
        let err = toml::from_str::<Config>("[limits]\nmax_body = 1").unwrap_err();
        assert!(err.to_string().contains("unknown field"), "{err}");
    }

    #[test]
    fn the_example_config_states_the_defaults() {
        let text = include_str!("../../../../examples/weir.toml");
        let c: Config = toml::from_str(text).unwrap();
        let d = Config::default();
        assert_eq!(format!("{c:?}"), format!("{d:?}"));
    }

    #[test]
    fn partial_files_keep_defaults() {
        let c: Config = toml::from_str("[limits]\nmax_record_bytes = 10").unwrap();
        assert_eq!(c.limits.max_record_bytes, 10);
        assert_eq!(c.limits.max_request_bytes, 16 << 20);
        assert_eq!(c.listen.port(), 9400);
    }
}
