//! The Kafka listener (`[kafka]`), started beside HTTP on the same broker, with the
//! same guard: with authentication off a Kafka client may do what an anonymous HTTP
//! caller may (everything); with it on, it is the principal of its client
//! certificate or of the token or JWT it sends over SASL (PLAIN, OAUTHBEARER), and
//! the ACL policy decides for it as for HTTP. SASL without TLS is refused beyond
//! loopback.

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use anyhow::Context as _;
use tokio::net::TcpListener;
use weir_broker::Broker;
use weir_kafka::{
    Accepted, Allowed, Authorizer, Caller, Context, KafkaSettings, PlainTcp, Transport,
};

use crate::auth::operations::check;
use crate::auth::{ClientIdentity, Guard, Principal, Refusal};
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
    let transport: Arc<dyn Transport> = match (config.tls, &server.tls) {
        (true, Some(tls)) => Arc::new(TlsTransport(crate::tls::acceptor(tls)?)),
        (true, None) => anyhow::bail!(
            "[kafka] tls = true needs a [tls] section: the Kafka listener uses its certificate and key"
        ),
        (false, Some(tls)) if tls.require_client_cert && !guard.enabled() => anyhow::bail!(
            "[kafka] without tls is refused while [tls] require_client_cert keeps HTTP to clients with certificates and [auth] is off: it would admit anyone; set [kafka] tls = true"
        ),
        (false, _) if guard.enabled() && !config.listen.ip().is_loopback() => anyhow::bail!(
            "[kafka] on {} with [auth] on needs tls = true: SASL credentials (tokens, JWTs) would cross the network in clear",
            config.listen
        ),
        (false, _) => Arc::new(PlainTcp),
    };
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
    let cx = Context::new(
        broker,
        Arc::new(GuardAuthorizer(guard)),
        transport,
        settings,
    );
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(weir_kafka::serve(listener, cx, async {
        let _ = stopped.await;
    }));
    Ok(Kafka { addr, stop, task })
}

/// The HTTP API's guard: the same credentials, principals and ACL policy.
struct GuardAuthorizer(Arc<Guard>);

impl Authorizer for GuardAuthorizer {
    fn connected(&self, certificate: Option<&str>) -> Option<Arc<dyn Caller>> {
        if !self.0.enabled() {
            return Some(self.caller(Principal::anonymous()));
        }
        let identity = ClientIdentity(certificate?.to_string());
        let principal = self.0.authenticate(None, Some(&identity)).ok()?;
        Some(self.caller(principal))
    }

    fn authenticate(
        &self,
        username: Option<&str>,
        secret: &str,
    ) -> Result<Arc<dyn Caller>, String> {
        let principal = self
            .0
            .authenticate(Some(&format!("Bearer {secret}")), None)
            .map_err(|r| match r {
                Refusal::Missing => "no credentials".to_string(),
                Refusal::Invalid(why) => why,
            })?;
        if username.is_some_and(|u| u != principal.name) {
            return Err("the username is not the principal the credential names".into());
        }
        Ok(self.caller(principal))
    }
}

impl GuardAuthorizer {
    fn caller(&self, principal: Principal) -> Arc<dyn Caller> {
        Arc::new(GuardCaller {
            guard: self.0.clone(),
            principal,
        })
    }
}

/// A principal on a Kafka connection.
struct GuardCaller {
    guard: Arc<Guard>,
    principal: Principal,
}

impl Caller for GuardCaller {
    fn name(&self) -> &str {
        &self.principal.name
    }

    fn expires_at(&self) -> Option<SystemTime> {
        self.principal.expires_at
    }

    fn allowed<'a>(
        &'a self,
        operation: &'static str,
        kind: &'static str,
        name: &'a str,
    ) -> Allowed<'a> {
        Box::pin(async move {
            self.guard
                .require(Some(&self.principal), [check(operation, kind, name)])
                .await
                .is_ok()
        })
    }
}

/// TLS with the server's `[tls]` acceptor: the client certificate's common name
/// is the connection's principal, as for HTTP.
struct TlsTransport(tokio_rustls::TlsAcceptor);

impl Transport for TlsTransport {
    fn accept(
        &self,
        tcp: tokio::net::TcpStream,
        peer: SocketAddr,
    ) -> Pin<Box<dyn Future<Output = Option<Accepted>> + Send>> {
        let acceptor = self.0.clone();
        Box::pin(async move {
            tcp.set_nodelay(true).ok()?;
            let (stream, identity) = crate::tls::handshake(&acceptor, tcp, peer).await?;
            Some(Accepted {
                stream: Box::new(stream),
                certificate: identity.map(|i| i.0),
            })
        })
    }
}
