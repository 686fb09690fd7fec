//! Accepting connections, plain or TLS, HTTP/1.1 or HTTP/2 ([`sniff`] tells them
//! apart by the first bytes), with what a listener facing unknown clients needs:
//! admission bounds checked before any request is read ([`admission`]: a total
//! cap, a cap per client address, and room made among connections that have not sent
//! a request yet), 503 beyond them, a deadline for the first request and for request
//! headers (slow-header clients are closed), a lingering close ([`linger`]) so early
//! answers reach clients still sending their body, no Nagle delay, and a graceful
//! shutdown that gives open requests 5 s.

mod admission;
mod linger;
mod sniff;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::graceful::{GracefulShutdown, Watcher};
use hyper_util::service::TowerToHyperService;
use tokio::io::{AsyncRead, AsyncReadExt as _, AsyncWrite, AsyncWriteExt as _};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tokio_rustls::TlsAcceptor;
use tower::ServiceExt as _;

use crate::auth::ClientIdentity;
use crate::config::Limits;
use admission::{Admission, Arrivals, Refused};
use linger::Lingering;

/// The answer to a connection over the cap: written without reading the request (no
/// task, no parser, no buffers spent on it), then the connection is closed.
const OVERLOADED: &str = concat!(
    "HTTP/1.1 503 Service Unavailable\r\n",
    "content-type: application/problem+json\r\n",
    "retry-after: 1\r\n",
    "connection: close\r\n",
    "content-length: 224\r\n",
    "\r\n",
    r#"{"type":"urn:weir:problem:too_many_connections","title":"Service Unavailable","status":503,"code":"too_many_connections","detail":"the server's connection cap (in total or for this client address) is reached; retry shortly"}"#,
);

/// Refusals being written at once, at most: beyond it (a flood) connections over the
/// cap are dropped without an answer, so refusing costs no more than this many tasks.
const MAX_REFUSALS: usize = 64;

/// Serves `app` on `listener` (over TLS with `tls`) until `shutdown` resolves, within
/// `limits`' admission bounds and deadlines. Over TLS a refused connection is closed
/// without a handshake (no CPU spent on a client that will be refused).
pub async fn serve(
    listener: TcpListener,
    tls: Option<TlsAcceptor>,
    app: Router,
    limits: Limits,
    shutdown: impl Future<Output = ()> + Send + 'static,
) {
    let graceful = GracefulShutdown::new();
    let admission = Admission::new(&limits);
    let refusals = Arc::new(Semaphore::new(MAX_REFUSALS));
    let header_timeout = Duration::from_millis(limits.header_read_timeout_ms);
    let first_request = limits.first_request_timeout();
    tokio::pin!(shutdown);
    loop {
        let (tcp, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    // Out of file descriptors and the like: back off, keep serving.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        // No Nagle: small writes (single acks, SSE events) must leave at once.
        let _ = tcp.set_nodelay(true);
        let ticket = match admission.admit(peer.ip()) {
            Ok(ticket) => ticket,
            Err(why) => {
                match why {
                    Refused::Full => {
                        tracing::debug!(%peer, cap = limits.max_connections, "connection cap reached")
                    }
                    Refused::AddressFull => tracing::debug!(
                        %peer,
                        cap = limits.max_connections_per_address,
                        "connection cap of this address reached"
                    ),
                }
                if tls.is_none()
                    && let Ok(refusing) = refusals.clone().try_acquire_owned()
                {
                    tokio::spawn(async move {
                        refuse(tcp).await;
                        drop(refusing);
                    });
                }
                continue;
            }
        };
        let (tls, app, watcher) = (tls.clone(), app.clone(), graceful.watcher());
        tokio::spawn(async move {
            let arrivals = ticket.arrivals();
            let served = async {
                match tls {
                    None => connection(tcp, None, app, header_timeout, watcher, arrivals).await,
                    Some(acceptor) => {
                        if let Some((stream, identity)) =
                            crate::tls::handshake(&acceptor, tcp, peer).await
                        {
                            connection(stream, identity, app, header_timeout, watcher, arrivals)
                                .await;
                        }
                    }
                }
            };
            // The TLS handshake and the first request's headers must arrive within
            // the first-request deadline, and a connection still waiting for them
            // may be evicted to make room; both close it unanswered.
            tokio::select! {
                () = served => {}
                why = ticket.dismissed(first_request) => {
                    tracing::debug!(%peer, why, "connection closed before its first request");
                }
            }
            drop(ticket);
        });
    }
    drop(listener);
    // Long polls and SSE streams may hold connections open; do not wait forever.
    if tokio::time::timeout(Duration::from_secs(5), graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!("requests still open after 5 s; stopping anyway");
    }
}

/// Streams one HTTP/2 connection may carry at once (what a client multiplexes).
const H2_MAX_STREAMS: u32 = 256;
/// Largest header block of one HTTP/2 request, decoded.
const H2_MAX_HEADER_LIST: u32 = 64 << 10;

/// Serves one accepted connection, telling `arrivals` of each request: HTTP/2 when
/// it opens with the HTTP/2 preface (h2c with prior knowledge, or after ALPN `h2`),
/// HTTP/1.1 otherwise ([`sniff`]).
async fn connection<S>(
    stream: S,
    identity: Option<ClientIdentity>,
    app: Router,
    header_timeout: Duration,
    watcher: Watcher,
    arrivals: Arrivals,
) where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let service = app.map_request(move |req: hyper::Request<hyper::body::Incoming>| {
        arrivals.request_arrived();
        let mut req = req.map(axum::body::Body::new);
        if let Some(id) = &identity {
            req.extensions_mut().insert(id.clone());
        }
        req
    });
    let (h2, stream) = match sniff::sniff(Lingering::new(stream)).await {
        Ok(told) => told,
        Err(e) => {
            tracing::debug!(error = %e, "connection ended before its first bytes");
            return;
        }
    };
    let io = TokioIo::new(stream);
    let served = if h2 {
        // Every stream is a request through the same router and middleware, so body
        // limits and deadlines apply per stream; keep-alive pings find dead peers.
        let conn = hyper::server::conn::http2::Builder::new(TokioExecutor::new())
            .timer(TokioTimer::new())
            .max_concurrent_streams(H2_MAX_STREAMS)
            .max_header_list_size(H2_MAX_HEADER_LIST)
            .keep_alive_interval(header_timeout)
            .keep_alive_timeout(header_timeout)
            .serve_connection(io, TowerToHyperService::new(service));
        watcher.watch(conn).await
    } else {
        // hyper's own http1 server rather than the version-sniffing one: that one
        // waits for a first byte with no deadline of its own.
        let conn = hyper::server::conn::http1::Builder::new()
            .timer(TokioTimer::new())
            .header_read_timeout(header_timeout)
            .serve_connection(io, TowerToHyperService::new(service));
        watcher.watch(conn).await
    };
    if let Err(e) = served {
        tracing::debug!(error = %e, "connection ended with an error");
    }
}

/// Answers a refused connection with a 503 and closes it, all within 1 s. The
/// request is drained briefly first so that closing does not reset the connection
/// before the client has read the answer.
async fn refuse(mut stream: TcpStream) {
    let answered = async {
        stream.write_all(OVERLOADED.as_bytes()).await?;
        stream.flush().await?;
        stream.shutdown().await?;
        let mut buf = [0u8; 4096];
        while stream.read(&mut buf).await? > 0 {}
        Ok::<_, std::io::Error>(())
    };
    let _ = tokio::time::timeout(Duration::from_secs(1), answered).await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_overloaded_answer_declares_its_exact_length() {
        let (head, body) = OVERLOADED.split_once("\r\n\r\n").unwrap();
        assert!(head.contains(&format!("content-length: {}", body.len())));
        let v: serde_json::Value = serde_json::from_str(body).unwrap();
        assert_eq!(v["status"], 503);
        assert_eq!(v["code"], "too_many_connections");
    }
}
