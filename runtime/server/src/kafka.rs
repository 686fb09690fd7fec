//! The Kafka listener (`[kafka]`), started beside HTTP on the same broker, with the
//! same guard: what a Kafka client may do is what an anonymous HTTP caller may do
//! (everything with authentication off, nothing with it on).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use tokio::net::TcpListener;
use weir_broker::Broker;
use weir_kafka::{Allowed, Authorizer, Context, KafkaSettings};

use crate::auth::Guard;
use crate::auth::operations::check;
use crate::config::{Config, KafkaConfig};

/// The running listener.
#[derive(Debug)]
pub struct Kafka {
    /// Where it listens.
    pub addr: SocketAddr,
    stop: tokio::sync::oneshot::Sender<()>,
    task: tokio::task::JoinHandle<()>,
}

impl Kafka {
    /// Stops accepting connections.
    pub async fn stop(self) {
        let _ = self.stop.send(());
        let _ = self.task.await;
    }
}

/// Binds `config.listen` and serves Kafka clients on `broker`. Refused when HTTP
/// admits only clients with certificates and authentication is off: the plain Kafka
/// listener would let anyone in that HTTP keeps out.
pub async fn start(
    config: &KafkaConfig,
    server: &Config,
    broker: Broker,
    guard: Arc<Guard>,
) -> anyhow::Result<Kafka> {
    let limits = &server.limits;
    if server.tls.as_ref().is_some_and(|t| t.require_client_cert) && !guard.enabled() {
        anyhow::bail!(
            "[kafka] is refused while [tls] require_client_cert keeps HTTP to clients with certificates and [auth] is off: the Kafka listener has no TLS yet and would admit anyone"
        );
    }
    if config.listen.ip().is_unspecified() && config.advertised_host.is_none() {
        anyhow::bail!(
            "[kafka] listen = {} needs advertised_host: clients connect to the host Metadata names, and {} is not one",
            config.listen,
            config.listen.ip()
        );
    }
    let listener = TcpListener::bind(config.listen)
        .await
        .with_context(|| format!("binding the Kafka listener on {}", config.listen))?;
    let addr = listener.local_addr()?;
    let settings = KafkaSettings {
        advertised_host: config
            .advertised_host
            .clone()
            .unwrap_or_else(|| addr.ip().to_string()),
        advertised_port: addr.port(),
        max_frame_bytes: limits.max_request_bytes,
        default_partitions: config.default_partitions,
        max_wait: Duration::from_millis(limits.max_wait_ms),
        max_fetch_bytes: limits.max_request_bytes,
        max_fetch_records: limits.max_fetch_records,
        max_connections: limits.max_connections,
        stall_timeout: Duration::from_millis(limits.body_idle_timeout_ms),
    };
    let cx = Context::new(broker, Arc::new(GuardAuthorizer(guard)), settings);
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(weir_kafka::serve(listener, cx, async {
        let _ = stopped.await;
    }));
    Ok(Kafka { addr, stop, task })
}

/// The HTTP API's guard, asked for an anonymous caller.
struct GuardAuthorizer(Arc<Guard>);

impl Authorizer for GuardAuthorizer {
    fn allowed<'a>(&'a self, operation: &'static str, topic: &'a str) -> Allowed<'a> {
        Box::pin(async move {
            self.0
                .require(None, [check(operation, "topic", topic)])
                .await
                .is_ok()
        })
    }
}
