//! `[cluster]`: run on a NATS JetStream cluster instead of the embedded store.

use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;
use weir_broker::ClusterOptions;

/// Cluster mode. Without this section (the default) the log is the embedded sled
/// store in `data_dir`; with it, topics, records, offsets and plugin state live in a
/// replicated JetStream stream and this node keeps nothing durable of its own.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClusterConfig {
    /// NATS server URLs, e.g. `["nats://10.0.0.1:4222", "nats://10.0.0.2:4222"]`
    /// (`weir serve --cluster URLS` sets them).
    #[serde(default)]
    pub servers: Vec<String>,
    /// Prefix of the stream and its subjects (several Weir clusters may share NATS).
    #[serde(default = "default_prefix")]
    pub prefix: String,
    /// Copies of the stream: 3 survives the loss of one server.
    #[serde(default = "default_replicas")]
    pub replicas: usize,
    /// A NATS credentials file.
    #[serde(default)]
    pub credentials: Option<PathBuf>,
    /// CA (PEM) to verify the NATS servers with; turns TLS on.
    #[serde(default)]
    pub tls_ca: Option<PathBuf>,
    /// Client certificate (PEM) for mutual TLS, with `tls_key`.
    #[serde(default)]
    pub tls_cert: Option<PathBuf>,
    /// Client key (PEM) for mutual TLS.
    #[serde(default)]
    pub tls_key: Option<PathBuf>,
    /// How long one request to the cluster may take (ms).
    #[serde(default = "default_request_timeout_ms")]
    pub request_timeout_ms: u64,
    /// How long a publish keeps retrying through a leader election before it gets
    /// 503 (ms). A retried publish is never stored twice.
    #[serde(default = "default_append_deadline_ms")]
    pub append_deadline_ms: u64,
    /// Recent records each node keeps per partition to answer reads from memory.
    #[serde(default = "default_cache_bytes")]
    pub cache_bytes_per_partition: usize,
    /// This node's id among the Weir nodes (default `<hostname>:<port>`). Two nodes
    /// must not share one.
    #[serde(default)]
    pub node: Option<String>,
    /// How long a node may stay silent before the others take over its connectors
    /// (ms). A node rewrites its report every second.
    #[serde(default = "default_node_timeout_ms")]
    pub node_timeout_ms: u64,
}

fn default_node_timeout_ms() -> u64 {
    weir_broker::cluster::DEFAULT_NODE_TIMEOUT.as_millis() as u64
}

fn default_prefix() -> String {
    ClusterOptions::default().prefix
}
fn default_replicas() -> usize {
    ClusterOptions::default().replicas
}
fn default_request_timeout_ms() -> u64 {
    ClusterOptions::default().request_timeout.as_millis() as u64
}
fn default_append_deadline_ms() -> u64 {
    ClusterOptions::default().append_deadline.as_millis() as u64
}
fn default_cache_bytes() -> usize {
    ClusterOptions::default().cache_bytes_per_partition
}

impl ClusterConfig {
    /// The section for `servers` with every other setting at its default.
    pub fn with_servers(servers: Vec<String>) -> Self {
        ClusterConfig {
            servers,
            prefix: default_prefix(),
            replicas: default_replicas(),
            credentials: None,
            tls_ca: None,
            tls_cert: None,
            tls_key: None,
            request_timeout_ms: default_request_timeout_ms(),
            append_deadline_ms: default_append_deadline_ms(),
            cache_bytes_per_partition: default_cache_bytes(),
            node: None,
            node_timeout_ms: default_node_timeout_ms(),
        }
    }

    /// The log's options, checked.
    pub fn options(&self) -> anyhow::Result<ClusterOptions> {
        let tls_client = match (&self.tls_cert, &self.tls_key) {
            (Some(c), Some(k)) => Some((c.clone(), k.clone())),
            (None, None) => None,
            _ => anyhow::bail!("cluster.tls_cert and cluster.tls_key go together"),
        };
        let options = ClusterOptions {
            servers: self.servers.clone(),
            prefix: self.prefix.clone(),
            replicas: self.replicas,
            credentials: self.credentials.clone(),
            tls_ca: self.tls_ca.clone(),
            tls_client,
            request_timeout: Duration::from_millis(self.request_timeout_ms.max(1)),
            append_deadline: Duration::from_millis(self.append_deadline_ms),
            cache_bytes_per_partition: self.cache_bytes_per_partition,
            ..ClusterOptions::default()
        };
        options.validate().map_err(anyhow::Error::msg)?;
        if self.node_timeout_ms < 2 * weir_broker::cluster::BEAT.as_millis() as u64 {
            anyhow::bail!(
                "cluster.node_timeout_ms must be at least 2000: nodes report every second"
            );
        }
        Ok(options)
    }

    /// This node's id: `node`, or `<hostname>:<port>`.
    pub fn node_id(&self, port: u16) -> String {
        self.node.clone().unwrap_or_else(|| {
            let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
                .map(|h| h.trim().to_string())
                .ok()
                .filter(|h| !h.is_empty())
                .unwrap_or_else(|| "weir".to_string());
            format!("{host}:{port}")
        })
    }
}

#[cfg(test)]
mod tests {
    use crate::config::Config;

    #[test]
    fn a_cluster_section_keeps_defaults_and_is_checked() {
        let c: Config =
            toml::from_str("[cluster]\nservers = [\"nats://a:4222\", \"nats://b:4222\"]").unwrap();
        let options = c.cluster.as_ref().unwrap().options().unwrap();
        assert_eq!(options.servers.len(), 2);
        assert_eq!((options.replicas, options.prefix.as_str()), (3, "weir"));
        for bad in [
            "[cluster]\nservers = []",
            "[cluster]\nservers = [\"nats://a:4222\"]\nreplicas = 0",
            "[cluster]\nservers = [\"nats://a:4222\"]\nprefix = \"a.b\"",
            "[cluster]\nservers = [\"nats://a:4222\"]\ntls_cert = \"/c.pem\"",
        ] {
            let c: Config = toml::from_str(bad).unwrap();
            assert!(c.cluster.unwrap().options().is_err(), "{bad}");
        }
        let typo = toml::from_str::<Config>("[cluster]\nservers = []\nreplica = 3");
        assert!(typo.is_err());
    }
}
