//! A lingering close. When the server answers before it has read a request's body (a
//! 413 from `Content-Length`, a 401, a 415), closing the socket with that body still
//! arriving makes the kernel reset the connection, and a client that writes its
//! whole body before reading (Python's urllib, most scripts) sees "broken pipe" and
//! never the answer. So, like nginx, the server first sends its end of the
//! connection, then reads and discards what the client still sends, for a bounded
//! time, and only then closes: the client finishes writing, then reads the answer.
//!
//! The bound keeps a hostile client from holding the connection: at most
//! [`LINGER_TOTAL`] in all, and [`LINGER_IDLE`] without a byte.

use std::future::Future as _;
use std::pin::Pin;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::{Instant, Sleep};

/// Longest a closing connection is drained.
pub(crate) const LINGER_TOTAL: Duration = Duration::from_secs(5);
/// Longest a closing connection may send nothing before it is closed.
pub(crate) const LINGER_IDLE: Duration = Duration::from_secs(1);

/// `S` whose shutdown lingers: send FIN, drain, close.
#[derive(Debug)]
pub(crate) struct Lingering<S> {
    inner: S,
    draining: Option<Drain>,
}

#[derive(Debug)]
struct Drain {
    until: Instant,
    idle: Pin<Box<Sleep>>,
}

impl<S> Lingering<S> {
    pub(crate) fn new(inner: S) -> Self {
        Self {
            inner,
            draining: None,
        }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Lingering<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncWrite for Lingering<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    /// Ends the server's side (the client sees the whole answer), then drains what
    /// the client still sends until it closes too or the bounds pass.
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        let this = &mut *self;
        if this.draining.is_none() {
            ready!(Pin::new(&mut this.inner).poll_shutdown(cx))?;
            this.draining = Some(Drain {
                until: Instant::now() + LINGER_TOTAL,
                idle: Box::pin(tokio::time::sleep(LINGER_IDLE)),
            });
        }
        let drain = this.draining.as_mut().expect("set above");
        let mut scratch = [0u8; 8192];
        loop {
            if drain.idle.as_mut().poll(cx).is_ready() {
                return Poll::Ready(Ok(()));
            }
            let mut buf = ReadBuf::new(&mut scratch);
            match Pin::new(&mut this.inner).poll_read(cx, &mut buf) {
                Poll::Ready(Ok(())) if !buf.filled().is_empty() => {
                    let now = Instant::now();
                    if now >= drain.until {
                        return Poll::Ready(Ok(()));
                    }
                    drain
                        .idle
                        .as_mut()
                        .reset((now + LINGER_IDLE).min(drain.until));
                }
                // The client closed too, or the connection failed: done either way.
                Poll::Ready(_) => return Poll::Ready(Ok(())),
                Poll::Pending => return Poll::Pending,
            }
        }
    }
}
