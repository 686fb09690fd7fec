//! Which HTTP a connection speaks, told by its first bytes.
//!
//! An HTTP/2 client always opens with the same 24-byte preface (RFC 9113 §3.4), in
//! cleartext with prior knowledge (h2c) and after ALPN `h2` over TLS alike; an HTTP/1
//! request starts with a method, which differs from the preface by its second byte at
//! the latest. So reading until the bytes leave the preface, or match it whole, tells
//! the two apart without a second listener or an `Upgrade` round trip. What was read is
//! replayed to the chosen server by [`Prefixed`].
//!
//! The read needs no deadline of its own: the connection's first-request deadline
//! (admission) closes a client that sends nothing.

use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, ReadBuf};

/// The HTTP/2 connection preface.
const PREFACE: &[u8; 24] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// Reads from `stream` until its first bytes match the HTTP/2 preface or leave it;
/// returns whether it is HTTP/2, and the stream with those bytes put back.
pub(crate) async fn sniff<S: AsyncRead + Unpin>(
    mut stream: S,
) -> std::io::Result<(bool, Prefixed<S>)> {
    let mut buf = [0u8; PREFACE.len()];
    let mut n = 0;
    while n < PREFACE.len() && buf[..n] == PREFACE[..n] {
        let read = stream.read(&mut buf[n..]).await?;
        if read == 0 {
            break;
        }
        n += read;
    }
    let h2 = n == PREFACE.len() && buf == *PREFACE;
    Ok((
        h2,
        Prefixed {
            prefix: buf[..n].to_vec(),
            at: 0,
            inner: stream,
        },
    ))
}

/// `S` with bytes already read from it put back in front.
#[derive(Debug)]
pub(crate) struct Prefixed<S> {
    prefix: Vec<u8>,
    at: usize,
    inner: S,
}

impl<S: AsyncRead + Unpin> AsyncRead for Prefixed<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        if self.at < self.prefix.len() {
            let rest = &self.prefix[self.at..];
            let n = rest.len().min(buf.remaining());
            buf.put_slice(&rest[..n]);
            self.at += n;
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Prefixed<S> {
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

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
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
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn told(bytes: &[u8]) -> (bool, Vec<u8>) {
        let (h2, mut s) = sniff(bytes).await.unwrap();
        let mut all = Vec::new();
        s.read_to_end(&mut all).await.unwrap();
        (h2, all)
    }

    #[tokio::test]
    async fn the_preface_is_http2_anything_else_http1_and_nothing_is_lost() {
        let mut h2 = PREFACE.to_vec();
        h2.extend_from_slice(b"\x00\x00\x00\x04");
        assert_eq!(told(&h2).await, (true, h2.clone()));
        let h1 = b"POST /v1/topics/t/records HTTP/1.1\r\n\r\n".to_vec();
        assert_eq!(told(&h1).await, (false, h1.clone()));
        assert_eq!(
            told(b"PRI * HTTP/1.1").await,
            (false, b"PRI * HTTP/1.1".to_vec())
        );
        assert_eq!(told(b"").await, (false, Vec::new()));
    }
}
