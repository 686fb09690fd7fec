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
//! - `api::sasl`: SASL/PLAIN and SASL/OAUTHBEARER onto Weir's tokens and JWTs.
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
use std::time::SystemTime;

pub use api::decode_frame;
pub use conn::serve;

/// An authorization answer, computed asynchronously (an ACL policy plugin may run).
pub type Allowed<'a> = Pin<Box<dyn Future<Output = bool> + Send + 'a>>;

/// Who is on a connection, once known: what Weir's guard (tokens, JWTs, client
/// certificates, the ACL policy plugin) says it may do.
pub trait Caller: Send + Sync + 'static {
    /// The principal's name, for the log.
    fn name(&self) -> &str;
    /// When its credential stops being valid (a JWT's `exp`): the connection is
    /// closed then, and the client connects and authenticates again.
    fn expires_at(&self) -> Option<SystemTime>;
    /// Whether it may do `operation` (`produce`, `consume`, `commit`, `describe`,
    /// `topic-admin`) on the resource of `kind` (`topic`, `group`) named `name`:
    /// HTTP's permission names, so one policy serves both.
    fn allowed<'a>(
        &'a self,
        operation: &'static str,
        kind: &'static str,
        name: &'a str,
    ) -> Allowed<'a>;
}

/// How connections authenticate, decided by the server's `[auth]`.
pub trait Authorizer: Send + Sync + 'static {
    /// The caller a connection is before any SASL exchange: anonymous with
    /// authentication off; with it on, the principal of the client certificate
    /// the TLS handshake verified, or `None`: the client must authenticate.
    fn connected(&self, certificate: Option<&str>) -> Option<Arc<dyn Caller>>;
    /// The caller behind SASL credentials: `secret` is what an HTTP client would
    /// send as `Authorization: Bearer` (an API token or a JWT); `username`, given by
    /// PLAIN, must name the same principal. The error is told to the client.
    fn authenticate(&self, username: Option<&str>, secret: &str)
    -> Result<Arc<dyn Caller>, String>;
}

/// A connection as accepted: its byte stream (TLS or plain TCP) and the subject of
/// a verified client certificate.
pub struct Accepted {
    /// The stream.
    pub stream: Box<dyn Stream>,
    /// The client certificate's principal, if TLS verified one.
    pub certificate: Option<String>,
}

impl std::fmt::Debug for Accepted {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Accepted")
            .field("certificate", &self.certificate)
            .finish_non_exhaustive()
    }
}

/// A connection's bytes.
pub trait Stream: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static {}

impl<T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static> Stream for T {}

/// Turns an accepted TCP connection into a stream: a TLS handshake (the server's
/// `[tls]`), or nothing. `None` drops the connection (a failed handshake).
pub trait Transport: Send + Sync + 'static {
    /// The handshake, if any.
    fn accept(
        &self,
        tcp: tokio::net::TcpStream,
        peer: std::net::SocketAddr,
    ) -> Pin<Box<dyn Future<Output = Option<Accepted>> + Send>>;
}

/// Plain TCP.
#[derive(Debug, Clone, Copy)]
pub struct PlainTcp;

impl Transport for PlainTcp {
    fn accept(
        &self,
        tcp: tokio::net::TcpStream,
        _peer: std::net::SocketAddr,
    ) -> Pin<Box<dyn Future<Output = Option<Accepted>> + Send>> {
        Box::pin(async move {
            // Answers are small and written whole: no Nagle delay.
            tcp.set_nodelay(true).ok()?;
            Some(Accepted {
                stream: Box::new(tcp),
                certificate: None,
            })
        })
    }
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
    /// Authentication.
    pub authorizer: Arc<dyn Authorizer>,
    /// TLS or plain TCP.
    pub transport: Arc<dyn Transport>,
    /// The settings.
    pub settings: Arc<KafkaSettings>,
    /// The Kafka consumer groups' membership.
    pub(crate) groups: Arc<groups::Coordinator>,
    /// Who is on this connection (per connection; `None` until it authenticates).
    pub(crate) caller: Option<Arc<dyn Caller>>,
}

impl Context {
    /// What the connections of one listener share.
    pub fn new(
        broker: weir_broker::Broker,
        authorizer: Arc<dyn Authorizer>,
        transport: Arc<dyn Transport>,
        settings: KafkaSettings,
    ) -> Self {
        Self {
            groups: Arc::new(groups::Coordinator::new(broker.clone())),
            broker,
            authorizer,
            transport,
            settings: Arc::new(settings),
            caller: None,
        }
    }

    /// Whether this connection's caller may do `operation` on `topic`.
    pub(crate) async fn allowed(&self, operation: &'static str, topic: &str) -> bool {
        self.permits(operation, "topic", topic).await
    }

    /// Whether this connection's caller may do `operation` on consumer `group`
    /// (Kafka's group ACLs: `consume` to be a member, `commit`, `describe`).
    pub(crate) async fn allowed_group(&self, operation: &'static str, group: &str) -> bool {
        self.permits(operation, "group", group).await
    }

    async fn permits(&self, operation: &'static str, kind: &'static str, name: &str) -> bool {
        match &self.caller {
            Some(c) => c.allowed(operation, kind, name).await,
            None => false,
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
