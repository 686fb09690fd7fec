//! Frames: a big-endian `i32` size, then that many bytes; a request starts with its
//! API key, version and correlation id, which are read first so that even a request
//! Weir cannot decode can be answered or named in the log.

use bytes::{Bytes, BytesMut};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

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
    /// Reading or writing the socket failed.
    #[error("socket error: {0}")]
    Io(#[from] std::io::Error),
}

/// A request's fixed start.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Start {
    pub api_key: i16,
    pub version: i16,
    pub correlation_id: i32,
}

/// Reads one frame, at most `limit` bytes.
pub(crate) async fn read<R: AsyncRead + Unpin>(
    reader: &mut R,
    limit: usize,
) -> Result<(Start, Bytes), FrameError> {
    let size = match reader.read_i32().await {
        Ok(n) => n,
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Err(FrameError::Closed),
        Err(e) => return Err(e.into()),
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
    let mut buf = BytesMut::zeroed(size);
    reader.read_exact(&mut buf).await?;
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
