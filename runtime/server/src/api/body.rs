//! Reading request bodies under a size limit.

use std::time::Duration;

use axum::body::Body;
use axum::http::{HeaderMap, StatusCode, header};
use bytes::{Bytes, BytesMut};
use http_body_util::{BodyExt, Limited};

use super::problem::Problem;

/// The slowest a whole body may arrive (see [`read_limited`]).
const MIN_BODY_BYTES_PER_SEC: f64 = 64.0 * 1024.0;

/// Reads the whole body, refusing more than `limit` bytes. A `Content-Length` over the
/// limit is refused before a byte of the body is read; a chunked body is cut off as soon
/// as it passes the limit. A body that stalls — nothing arrives for `idle`, or the
/// whole of it comes slower than 64 KiB/s (plus `idle`) — gets 408 `request_timeout`,
/// so a slow client cannot hold a connection and its task forever (the header
/// deadline covers only the headers).
pub async fn read_limited(
    headers: &HeaderMap,
    body: Body,
    limit: usize,
    idle: Duration,
) -> Result<Bytes, Problem> {
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if let Some(len) = declared
        && len > limit as u64
    {
        return Err(too_large(limit));
    }
    let mut body = Limited::new(body, limit);
    // What a client declares is not reserved up front: it may never send it.
    let mut buf = BytesMut::with_capacity(declared.unwrap_or(0).min(64 << 10) as usize);
    // A body trickled a byte at a time never stays idle: it must also arrive at
    // MIN_BODY_BYTES_PER_SEC on the whole, so it cannot hold a connection forever.
    let deadline = tokio::time::Instant::now()
        + idle
        + Duration::from_secs_f64(limit as f64 / MIN_BODY_BYTES_PER_SEC);
    loop {
        let wait = tokio::time::Instant::now() + idle;
        match tokio::time::timeout_at(wait.min(deadline), body.frame()).await {
            Err(_) => {
                return Err(Problem::new(
                    StatusCode::REQUEST_TIMEOUT,
                    "request_timeout",
                    format!(
                        "the request body stalled: nothing arrived for {} ms, or it \
                         came slower than {} KiB/s",
                        idle.as_millis(),
                        MIN_BODY_BYTES_PER_SEC as u64 / 1024
                    ),
                ));
            }
            Ok(None) => return Ok(buf.freeze()),
            Ok(Some(Ok(frame))) => {
                if let Ok(data) = frame.into_data() {
                    buf.extend_from_slice(&data);
                }
            }
            Ok(Some(Err(e))) if e.is::<http_body_util::LengthLimitError>() => {
                return Err(too_large(limit));
            }
            Ok(Some(Err(e))) => {
                return Err(Problem::invalid_request(format!(
                    "reading the request body failed: {e}"
                )));
            }
        }
    }
}

fn too_large(limit: usize) -> Problem {
    Problem::too_large(format!("request body is over the {limit}-byte limit"))
        .with("limit_bytes", limit)
}
