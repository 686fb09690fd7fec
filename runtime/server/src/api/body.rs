//! Reading request bodies under a size limit.

use axum::body::Body;
use axum::http::{HeaderMap, header};
use bytes::Bytes;
use http_body_util::{BodyExt, Limited};

use super::problem::Problem;

/// Reads the whole body, refusing more than `limit` bytes. A `Content-Length` over the
/// limit is refused before a byte of the body is read; a chunked body is cut off as soon
/// as it passes the limit.
pub async fn read_limited(headers: &HeaderMap, body: Body, limit: usize) -> Result<Bytes, Problem> {
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if let Some(len) = declared
        && len > limit as u64
    {
        return Err(too_large(limit));
    }
    match Limited::new(body, limit).collect().await {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(e) if e.is::<http_body_util::LengthLimitError>() => Err(too_large(limit)),
        Err(e) => Err(Problem::invalid_request(format!(
            "reading the request body failed: {e}"
        ))),
    }
}

fn too_large(limit: usize) -> Problem {
    Problem::too_large(format!("request body is over the {limit}-byte limit"))
        .with("limit_bytes", limit)
}
