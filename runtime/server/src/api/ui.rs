//! `GET /ui`: the web console, one page compiled into the binary (no build step, no
//! files at runtime). The page itself is a static shell with no data; everything it
//! shows comes from the API (`/v1/overview/stream`, `/v1/topics/{t}/events`) with the
//! same credentials and permissions as any client. It only reads.

use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};

const PAGE: &str = include_str!("ui/index.html");

/// `GET /ui`.
pub async fn page() -> Response {
    let mut resp = PAGE.into_response();
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    // Inline script and style only, talking to this origin only.
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; connect-src 'self'; img-src 'self' data:; frame-ancestors 'none'",
        ),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    resp
}
