//! RFC 9457 problem details: every error the API returns, with a stable `code`.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value, json};
use weir_broker::BrokerError;
use weir_broker::StorageError;

/// An API error: HTTP status, stable code, human detail and optional extension members.
#[derive(Debug)]
pub struct Problem {
    status: StatusCode,
    code: &'static str,
    detail: String,
    extra: Map<String, Value>,
}

impl Problem {
    /// A problem with the given status and code.
    pub fn new(status: StatusCode, code: &'static str, detail: impl Into<String>) -> Self {
        Self {
            status,
            code,
            detail: detail.into(),
            extra: Map::new(),
        }
    }

    /// 400 `invalid_request`.
    pub fn invalid_request(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "invalid_request", detail)
    }

    /// 400 `invalid_json`.
    pub fn invalid_json(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "invalid_json", detail)
    }

    /// 413 `payload_too_large`.
    pub fn too_large(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large", detail)
    }

    /// Adds an extension member.
    pub fn with(mut self, key: &str, value: impl Into<Value>) -> Self {
        self.extra.insert(key.to_string(), value.into());
        self
    }

    /// Maps a serde_json error to `invalid_json` (syntax) or `invalid_request` (shape).
    pub fn from_json(what: &str, e: &serde_json::Error) -> Self {
        match e.classify() {
            serde_json::error::Category::Data => Self::invalid_request(format!("{what}: {e}")),
            _ => Self::invalid_json(format!("{what} is not valid JSON: {e}")),
        }
    }

    /// The HTTP status.
    pub fn status(&self) -> StatusCode {
        self.status
    }

    /// The stable code.
    pub fn code(&self) -> &'static str {
        self.code
    }

    /// The human-readable detail.
    pub fn detail(&self) -> &str {
        &self.detail
    }
}

impl From<BrokerError> for Problem {
    fn from(e: BrokerError) -> Self {
        let status = match e.code() {
            "invalid_request" => StatusCode::BAD_REQUEST,
            "topic_not_found" | "partition_not_found" | "group_not_found" => StatusCode::NOT_FOUND,
            "topic_exists" | "not_assigned" | "group_not_empty" | "group_in_use"
            | "pipeline_invalid" | "version_conflict" | "processor_fenced" => StatusCode::CONFLICT,
            "plugin_rejected" | "plugin_bad_input" | "idempotency_key_reused" => {
                StatusCode::UNPROCESSABLE_ENTITY
            }
            "sequence_out_of_order" => StatusCode::CONFLICT,
            "unsupported" => StatusCode::NOT_IMPLEMENTED,
            "plugin_unavailable" => StatusCode::NOT_FOUND,
            "plugin_wrong_kind" | "plugin_init_rejected" => StatusCode::BAD_REQUEST,
            "plugin_quarantined" => StatusCode::SERVICE_UNAVAILABLE,
            "internal_error" => StatusCode::INTERNAL_SERVER_ERROR,
            code if code.starts_with("plugin_") => StatusCode::BAD_GATEWAY,
            "offset_out_of_range" => StatusCode::RANGE_NOT_SATISFIABLE,
            "payload_too_large" => StatusCode::PAYLOAD_TOO_LARGE,
            "storage_full" => StatusCode::INSUFFICIENT_STORAGE,
            _ => StatusCode::SERVICE_UNAVAILABLE,
        };
        let mut p = Problem::new(status, e.code(), e.to_string());
        if let BrokerError::PluginRejected { index, failure } = &e {
            p = p
                .with("index", *index)
                .with("plugin", failure.plugin.as_str())
                .with("error_kind", failure.kind.as_ref());
            if let Some(v) = &failure.version {
                p = p.with("version", v.as_str());
            }
        }
        if let BrokerError::SequenceOutOfOrder {
            expected,
            partition,
            ..
        } = &e
        {
            p = p
                .with("expected_sequence", *expected)
                .with("partition", *partition);
        }
        if let BrokerError::Storage(s) = &e {
            for (k, v) in storage_extras(s) {
                p = p.with(k, v);
            }
            if p.code == "storage_corrupt" {
                p.status = StatusCode::INTERNAL_SERVER_ERROR;
            }
        }
        if p.status.is_server_error() {
            tracing::error!(code = p.code, error = %e, "request failed");
        }
        p
    }
}

impl From<StorageError> for Problem {
    fn from(e: StorageError) -> Self {
        Problem::from(BrokerError::from(e))
    }
}

impl IntoResponse for Problem {
    fn into_response(self) -> Response {
        let mut body = json!({
            "type": format!("urn:weir:problem:{}", self.code),
            "title": self.status.canonical_reason().unwrap_or("Error"),
            "status": self.status.as_u16(),
            "code": self.code,
            "detail": self.detail,
        });
        if let Value::Object(map) = &mut body {
            map.extend(self.extra);
        }
        let mut resp = (self.status, body.to_string()).into_response();
        resp.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/problem+json"),
        );
        resp
    }
}

/// Extension members that make storage errors actionable.
fn storage_extras(e: &StorageError) -> Vec<(&'static str, Value)> {
    match e {
        StorageError::OffsetOutOfRange {
            log_start_offset,
            high_watermark,
            ..
        } => vec![
            ("log_start_offset", (*log_start_offset).into()),
            ("high_watermark", (*high_watermark).into()),
        ],
        StorageError::Full {
            free_bytes,
            floor_bytes,
        } => vec![
            ("free_bytes", (*free_bytes).into()),
            ("floor_bytes", (*floor_bytes).into()),
        ],
        _ => Vec::new(),
    }
}

/// Turns the plain-text 4xx answers axum's extractors give on their own (a path
/// segment that is not UTF-8 or not a number, a query that does not parse) into
/// problem+json like every other error, so clients can rely on one error shape.
pub async fn from_plain_rejection(resp: Response) -> Response {
    let plain = resp
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|ct| ct.starts_with("text/plain"));
    if !resp.status().is_client_error() || !plain {
        return resp;
    }
    let status = resp.status();
    let detail = match axum::body::to_bytes(resp.into_body(), 64 << 10).await {
        Ok(b) if !b.is_empty() => String::from_utf8_lossy(&b).into_owned(),
        _ => status
            .canonical_reason()
            .unwrap_or("invalid request")
            .to_string(),
    };
    let code = match status {
        StatusCode::UNSUPPORTED_MEDIA_TYPE => "unsupported_media_type",
        StatusCode::PAYLOAD_TOO_LARGE => "payload_too_large",
        _ => "invalid_request",
    };
    Problem::new(status, code, detail).into_response()
}
