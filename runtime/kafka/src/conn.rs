//! The listener and one connection: frames in, answers out, in order.

use std::future::Future;
use std::sync::Arc;

use tokio::sync::Semaphore;

use std::time::{Duration, Instant, SystemTime};
use tokio::io::BufWriter;

use tokio::net::TcpListener;

use crate::api::sasl::Sasl;
use crate::frame::{self, FrameError};
use crate::{Accepted, Context};

/// Accepts Kafka connections on `listener` until `shutdown` completes; each
/// connection runs on its own task.
pub async fn serve(listener: TcpListener, cx: Context, shutdown: impl Future<Output = ()>) {
    tokio::pin!(shutdown);
    let coordinator = tokio::spawn(cx.groups.clone().run());
    let _stop_coordinator = AbortOnDrop(coordinator, cx.groups.clone());
    let slots = Arc::new(Semaphore::new(cx.settings.max_connections));
    loop {
        tokio::select! {
            () = &mut shutdown => return,
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => {
                    // At the cap, a new connection is closed at once: no client can
                    // take every socket (clients retry with backoff).
                    let Ok(slot) = slots.clone().try_acquire_owned() else {
                        tracing::warn!(%peer, "Kafka connection refused: too many connections");
                        drop(stream);
                        continue;
                    };
                    let cx = cx.clone();
                    tokio::spawn(async move {
                        let _slot = slot;
                        let Some(accepted) = cx.transport.accept(stream, peer).await else {
                            return;
                        };
                        if let Err(e) = connection(accepted, cx, &peer.ip().to_string()).await {
                            tracing::warn!(%peer, error = %e, "Kafka connection closed");
                        }
                    });
                }
                Err(e) => {
                    tracing::warn!(error = %e, "accepting a Kafka connection failed");
                    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                }
            },
        }
    }
}

/// How long a connection has to authenticate when it must (Kafka's SASL).
const AUTHENTICATION_TIMEOUT: Duration = Duration::from_secs(10);
/// The largest frame before authentication (Kafka's `sasl.server.max.receive.size`).
const UNAUTHENTICATED_MAX_FRAME: usize = 512 * 1024;

/// Serves one connection until the client closes it or sends what cannot be
/// answered.
async fn connection(accepted: Accepted, mut cx: Context, peer: &str) -> Result<(), FrameError> {
    // Who the connection is before any SASL exchange (anonymous with auth off, a
    // client certificate's principal, or nobody yet).
    cx.caller = cx.authorizer.connected(accepted.certificate.as_deref());
    let mut sasl = Sasl::default();
    let (reader, writer) = tokio::io::split(accepted.stream);
    let mut reader = tokio::io::BufReader::new(reader);
    let mut writer = BufWriter::new(writer);
    let must_authenticate_by = Instant::now() + AUTHENTICATION_TIMEOUT;
    loop {
        // Before it authenticates a client gets small frames and a few seconds, so
        // clients without credentials cannot hold memory or connection slots.
        let limits = if cx.caller.is_none() {
            let left = must_authenticate_by.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(FrameError::Unauthenticated(format!(
                    "no authentication within {AUTHENTICATION_TIMEOUT:?}"
                )));
            }
            frame::Limits {
                max_bytes: cx.settings.max_frame_bytes.min(UNAUTHENTICATED_MAX_FRAME),
                idle: left,
                stall: cx.settings.stall_timeout.min(left),
            }
        } else {
            frame::Limits {
                max_bytes: cx.settings.max_frame_bytes,
                idle: crate::IDLE_TIMEOUT,
                stall: cx.settings.stall_timeout,
            }
        };
        let (start, body) = match frame::read(&mut reader, limits).await {
            Ok(f) => f,
            Err(FrameError::Closed) => return Ok(()),
            Err(e) => return Err(e),
        };
        // A credential past its expiry closes the connection, unless the client
        // authenticated again meanwhile (KIP-368); it reconnects.
        if let Some(caller) = &cx.caller
            && caller
                .expires_at()
                .is_some_and(|at| at <= SystemTime::now())
        {
            return Err(FrameError::Unauthenticated(format!(
                "the credential of '{}' expired",
                caller.name()
            )));
        }
        if let Some(answer) = crate::api::handle(&mut cx, &mut sasl, peer, start, body).await? {
            frame::write(&mut writer, &answer).await?;
            tokio::io::AsyncWriteExt::flush(&mut writer).await?;
        }
        if sasl.failed {
            return Err(FrameError::Unauthenticated(
                "SASL authentication failed".into(),
            ));
        }
    }
}

/// Stops the group coordinator's ticker with the listener, and forgets its groups.
struct AbortOnDrop(tokio::task::JoinHandle<()>, Arc<crate::groups::Coordinator>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
        self.1.clear();
    }
}
