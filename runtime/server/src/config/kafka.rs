//! `[kafka]`: the Kafka wire protocol beside HTTP. Off without this section.

use std::net::SocketAddr;

use serde::Deserialize;

/// The Kafka listener.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KafkaConfig {
    /// Address it listens on, e.g. `"127.0.0.1:9092"` (port 0: any free port, logged).
    pub listen: SocketAddr,
    /// The host clients are told to connect to (Metadata), when it is not the
    /// listen address's (behind NAT, in a container).
    #[serde(default)]
    pub advertised_host: Option<String>,
    /// TLS on this listener with the server's `[tls]` certificate (and its client
    /// certificates, if any): Kafka's `SSL` and `SASL_SSL`.
    #[serde(default)]
    pub tls: bool,
    /// Partitions of a topic a client creates with `num_partitions = -1`.
    #[serde(default = "default_partitions")]
    pub default_partitions: u32,
}

fn default_partitions() -> u32 {
    1
}
