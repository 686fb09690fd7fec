//! Frames: a big-endian `i32` size, then that many bytes; a request starts with its
//! API key, version and correlation id, which are read first so that even a request
//! Weir cannot decode can be answered or named in the log.

use std::time::Duration;

use bytes::{Bytes, BytesMut};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::time::timeout;

/// Why a connection is closed.
#[derive(Debug, thiserror::Error)]
pub(crate) enum FrameError {
    /// The peer closed it (between frames: not an error).
    #[error("the client closed the connection")]
    Closed,
    /// A frame's size is negative or over the limit.
    #[error("a frame of {size} bytes is over the {limit} byte limit")]
    TooLarge { size: i64, limit: usize },
    /// A frame too short for a request header.
    #[error("a {0} byte frame is too short for a request header")]
    TooShort(usize),
    /// The frame does not decode as the request it says it is.
    #[error("malformed {api} v{version} request: {reason}")]
    Malformed {
        api: String,
        version: i16,
        reason: String,
    },
    /// An API or version Weir does not serve (other than ApiVersions, which is
    /// answered with the list): Kafka brokers close the connection too.
    #[error("unsupported request: API key {api_key} version {version}")]
    Unsupported { api_key: i16, version: i16 },
    /// A request other than ApiVersions and SASL before authenticating, a failed
    /// authentication, or an expired credential.
    #[error("not authenticated: {0}")]
    Unauthenticated(String),
    /// Reading or writing the socket failed.
    #[error("socket error: {0}")]
    Io(#[from] std::io::Error),
    /// No request for [`crate::IDLE_TIMEOUT`], or a frame's bytes stopped arriving.
    #[error("{0}")]
    Timeout(&'static str),
}

/// What one frame may take.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Limits {
    /// Its size at most.
    pub max_bytes: usize,
    /// How long to wait for the next request.
    pub idle: Duration,
    /// How long a started frame's bytes may stop arriving.
    pub stall: Duration,
}

/// A request's fixed start.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Start {
    pub api_key: i16,
    pub version: i16,
    pub correlation_id: i32,
}

/// Reads one frame within `limits`.
pub(crate) async fn read<R: AsyncRead + Unpin>(
    reader: &mut R,
    limits: Limits,
) -> Result<(Start, Bytes), FrameError> {
    let limit = limits.max_bytes;
    let size = match timeout(limits.idle, reader.read_i32()).await {
        Err(_) => return Err(FrameError::Timeout("idle for longer than the idle timeout")),
        Ok(Ok(n)) => n,
        Ok(Err(e)) if e.kind() == std::io::ErrorKind::UnexpectedEof => {
            return Err(FrameError::Closed);
        }
        Ok(Err(e)) => return Err(e.into()),
    };
    if size < 0 || size as usize > limit {
        return Err(FrameError::TooLarge {
            size: size.into(),
            limit,
        });
    }
    let size = size as usize;
    if size < 8 {
        return Err(FrameError::TooShort(size));
    }
    // Read as it arrives (not allocated up front from the size alone), each piece
    // within the stall timeout.
    let mut buf = BytesMut::with_capacity(size.min(64 << 10));
    while buf.len() < size {
        let want = (size - buf.len()).min(64 << 10);
        let mut piece = vec![0u8; want];
        let n = match timeout(limits.stall, reader.read(&mut piece)).await {
            Err(_) => return Err(FrameError::Timeout("a frame's bytes stopped arriving")),
            Ok(r) => r?,
        };
        if n == 0 {
            return Err(FrameError::Closed);
        }
        buf.extend_from_slice(&piece[..n]);
    }
    let start = Start {
        api_key: i16::from_be_bytes([buf[0], buf[1]]),
        version: i16::from_be_bytes([buf[2], buf[3]]),
        correlation_id: i32::from_be_bytes([buf[4], buf[5], buf[6], buf[7]]),
    };
    Ok((start, buf.freeze()))
}

/// Writes one response frame (its size, then `body`).
pub(crate) async fn write<W: AsyncWrite + Unpin>(
    writer: &mut W,
    body: &[u8],
) -> Result<(), FrameError> {
    writer.write_i32(body.len() as i32).await?;
    writer.write_all(body).await?;
    Ok(())
}
