//! Options, the connection and the checks made before a node serves: the server must
//! be 2.12 or newer (atomic batches) and have JetStream; the stream is created with
//! what cluster mode relies on.

use std::path::PathBuf;
use std::time::Duration;

use async_nats::Client;
use async_nats::jetstream::{self, stream};
use weir_storage::StorageError;

use crate::subjects::Subjects;

/// The oldest NATS server cluster mode runs on: 2.12.0 brought atomic batch
/// publish, 2.12.1 its deduplication (a retried batch refused as a duplicate), which
/// exactly-once appends rest on.
const MIN_VERSION: (u64, u64, u64) = (2, 12, 1);

/// How to reach the cluster and what to create in it.
#[derive(Debug, Clone)]
pub struct ClusterOptions {
    /// Server URLs (`nats://host:4222`); the client learns the rest of the cluster.
    pub servers: Vec<String>,
    /// Prefix of every subject, and of the stream's name: several Weir clusters may
    /// share one NATS cluster under different prefixes.
    pub prefix: String,
    /// Copies of the stream (3 survives one lost server; 1 for a single dev server).
    pub replicas: usize,
    /// A NATS credentials file (JWT and seed), if the cluster wants one.
    pub credentials: Option<PathBuf>,
    /// CA certificate (PEM) to verify the servers with, for TLS.
    pub tls_ca: Option<PathBuf>,
    /// Client certificate and key (PEM), for mutual TLS.
    pub tls_client: Option<(PathBuf, PathBuf)>,
    /// How long one request to the cluster may take.
    pub request_timeout: Duration,
    /// How long an append keeps retrying (leader elections take seconds) before it
    /// is refused; never acknowledged twice.
    pub append_deadline: Duration,
    /// Most bytes of one message (JetStream's `max_payload` is 1 MiB by default).
    pub max_message_bytes: usize,
    /// Recent messages each node keeps per partition to serve reads from memory.
    pub cache_bytes_per_partition: usize,
    /// How often retention runs.
    pub retention_interval: Duration,
}

impl Default for ClusterOptions {
    fn default() -> Self {
        ClusterOptions {
            servers: vec!["nats://127.0.0.1:4222".into()],
            prefix: "weir".into(),
            replicas: 3,
            credentials: None,
            tls_ca: None,
            tls_client: None,
            request_timeout: Duration::from_secs(5),
            append_deadline: Duration::from_secs(30),
            max_message_bytes: 900 << 10,
            cache_bytes_per_partition: 4 << 20,
            retention_interval: Duration::from_secs(5),
        }
    }
}

impl ClusterOptions {
    /// Checks the options alone (no network).
    pub fn validate(&self) -> Result<(), String> {
        if self.servers.is_empty() {
            return Err("cluster.servers must name at least one server".into());
        }
        let ok = |c: char| c.is_ascii_alphanumeric() || c == '_' || c == '-';
        if self.prefix.is_empty() || !self.prefix.chars().all(ok) {
            return Err(format!(
                "cluster.prefix '{}' must be letters, digits, '_' or '-'",
                self.prefix
            ));
        }
        if !(1..=5).contains(&self.replicas) {
            return Err(format!("cluster.replicas is {}; use 1 to 5", self.replicas));
        }
        Ok(())
    }

    /// The stream's name.
    pub fn stream_name(&self) -> String {
        format!("{}_LOG", self.prefix.to_uppercase())
    }
}

/// Parses "2.15.1" (or "2.12.0-beta") into (major, minor).
fn version(v: &str) -> Option<(u64, u64, u64)> {
    let mut parts = v.trim_start_matches('v').split(['.', '-']);
    let mut next = || parts.next()?.parse().ok();
    Some((next()?, next()?, next()?))
}

pub(crate) async fn connect(
    options: &ClusterOptions,
) -> Result<(Client, stream::Stream, String), StorageError> {
    options.validate().map_err(StorageError::Unusable)?;
    let servers = options.servers.join(",");
    let mut connect = async_nats::ConnectOptions::new()
        .name("weir")
        .request_timeout(Some(options.request_timeout))
        .connection_timeout(options.request_timeout);
    if let Some(creds) = &options.credentials {
        connect = connect.credentials_file(creds).await.map_err(|e| {
            StorageError::Unusable(format!("cluster credentials {}: {e}", creds.display()))
        })?;
    }
    if let Some(ca) = &options.tls_ca {
        connect = connect.require_tls(true).add_root_certificates(ca.clone());
    }
    if let Some((cert, key)) = &options.tls_client {
        connect = connect.add_client_certificate(cert.clone(), key.clone());
    }
    let client = connect
        .connect(options.servers.as_slice())
        .await
        .map_err(|e| {
            StorageError::Unavailable(format!(
                "cannot connect to the NATS cluster at {servers}: {e}"
            ))
        })?;
    let info = client.server_info();
    match version(&info.version) {
        Some(v) if v >= MIN_VERSION => {}
        _ => {
            return Err(StorageError::Unusable(format!(
                "NATS server {} at {servers} is version {}; cluster mode needs {}.{}.{} or \
                 newer (atomic batch publish with deduplication)",
                info.server_name, info.version, MIN_VERSION.0, MIN_VERSION.1, MIN_VERSION.2
            )));
        }
    }
    if !info.jetstream {
        return Err(StorageError::Unusable(format!(
            "NATS server {} at {servers} has JetStream off; start it with JetStream enabled \
             (`-js`, or a `jetstream {{}}` block)",
            info.server_name
        )));
    }
    let js = jetstream::new(client.clone());
    let name = options.stream_name();
    let subjects = Subjects::new(&options.prefix);
    let config = stream::Config {
        name: name.clone(),
        description: Some("Weir's topics, records, offsets and plugin state".into()),
        subjects: vec![subjects.all()],
        num_replicas: options.replicas,
        storage: stream::StorageType::File,
        retention: stream::RetentionPolicy::Limits,
        allow_direct: true,
        allow_rollup: true,
        allow_atomic_publish: true,
        duplicate_window: Duration::from_secs(120),
        ..Default::default()
    };
    let stream = js.get_or_create_stream(config).await.map_err(|e| {
        StorageError::Unavailable(format!("creating or finding stream {name}: {e}"))
    })?;
    let found = &stream.cached_info().config;
    if !found.allow_atomic_publish || !found.allow_rollup {
        return Err(StorageError::Unusable(format!(
            "stream {name} exists without atomic publish or rollups; it was not made by Weir"
        )));
    }
    Ok((client, stream, name))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_and_options_are_checked() {
        assert_eq!(version("2.15.1"), Some((2, 15, 1)));
        assert_eq!(version("v2.12.0-beta.1"), Some((2, 12, 0)));
        assert!(version("2.12.0").unwrap() < MIN_VERSION);
        assert!(version("2.12.1").unwrap() >= MIN_VERSION);
        assert!(version("2.9.10").unwrap() < MIN_VERSION);
        assert!(version("x").is_none());
        assert!(ClusterOptions::default().validate().is_ok());
        let bad = ClusterOptions {
            prefix: "a.b".into(),
            ..ClusterOptions::default()
        };
        assert!(bad.validate().is_err());
        assert_eq!(ClusterOptions::default().stream_name(), "WEIR_LOG");
    }
}
