//! The Kafka wire protocol beside HTTP: Kafka clients (kcat, librdkafka, the Java
//! client) produce and fetch through the same broker, topics and pipelines as HTTP
//! clients, so WASM filters, transforms and routers apply to them too.
//!
//! Message schemas come from the `kafka-protocol` crate; this crate only maps them
//! onto Weir: one task per connection reads size-prefixed frames (bounded like HTTP
//! bodies), answers each request in order (as a Kafka broker does: one request at a
//! time per connection), and closes the connection with a log line on a malformed
//! frame. Weir presents itself as a single broker (node 0) that leads every
//! partition; records carry the time Weir stored them (as a Kafka topic with
//! `message.timestamp.type=LogAppendTime`).
//!
//! - [`conn`]: the listener and one connection's loop.
//! - `frame`: reading a frame, its header, and writing a response.
//! - `api`: one module per API: versions, metadata, produce, fetch, offsets,
//!   topics.
//! - `groups`: Kafka's consumer-group protocol, with offsets committed into
//!   Weir's groups (one lag for Kafka and HTTP consumers).
//! - `records`: Kafka record batches to Weir records and back; `decompress`: their
//!   codecs, bounded.
//! - `errors`: Weir's errors as Kafka error codes.

pub(crate) mod api;
pub mod conn;
mod decompress;
mod errors;
mod frame;
mod groups;
mod records;

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

pub use api::decode_frame;
pub use conn::serve;

/// An authorization answer, computed asynchronously (an ACL policy plugin may run).
pub type Allowed<'a> = Pin<Box<dyn Future<Output = bool> + Send + 'a>>;

/// Decides what a Kafka client may do. The server answers with the same guard as
/// for HTTP (tokens, the ACL policy plugin): Kafka clients are anonymous until they
/// authenticate, so with authentication on they may do nothing.
pub trait Authorizer: Send + Sync + 'static {
    /// Whether the connection may do `operation` (`produce`, `consume`, `describe`,
    /// `topic-admin`) on `topic`.
    fn allowed<'a>(&'a self, operation: &'static str, topic: &'a str) -> Allowed<'a>;
}

/// How the listener presents itself and what it accepts.
#[derive(Debug, Clone)]
pub struct KafkaSettings {
    /// The host clients are told to connect to (Metadata's broker list).
    pub advertised_host: String,
    /// And its port.
    pub advertised_port: u16,
    /// Largest request frame; a bigger one closes the connection.
    pub max_frame_bytes: usize,
    /// Partitions of a topic created with `num_partitions = -1`.
    pub default_partitions: u32,
    /// Longest a fetch waits for records, whatever it asks.
    pub max_wait: std::time::Duration,
    /// Most record bytes in one fetch answer, whatever it asks.
    pub max_fetch_bytes: usize,
    /// Most records read from one partition for one answer.
    pub max_fetch_records: usize,
    /// Open Kafka connections at most; more are closed at once.
    pub max_connections: usize,
    /// A frame whose bytes stop arriving this long closes its connection, and so
    /// does a connection idle (between requests) for [`IDLE_TIMEOUT`].
    pub stall_timeout: std::time::Duration,
}

/// A connection with no request for this long is closed (Kafka brokers close idle
/// connections after 10 minutes too; clients reconnect).
pub const IDLE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(600);

/// What every connection shares.
#[derive(Clone)]
pub struct Context {
    /// The broker.
    pub broker: weir_broker::Broker,
    /// The authorization.
    pub authorizer: Arc<dyn Authorizer>,
    /// The settings.
    pub settings: Arc<KafkaSettings>,
    /// The Kafka consumer groups' membership.
    pub(crate) groups: Arc<groups::Coordinator>,
}

impl Context {
    /// What the connections of one listener share.
    pub fn new(
        broker: weir_broker::Broker,
        authorizer: Arc<dyn Authorizer>,
        settings: KafkaSettings,
    ) -> Self {
        Self {
            groups: Arc::new(groups::Coordinator::new(broker.clone())),
            broker,
            authorizer,
            settings: Arc::new(settings),
        }
    }
}

impl std::fmt::Debug for Context {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Context")
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}
