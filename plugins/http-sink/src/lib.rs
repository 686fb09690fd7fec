//! http-sink: Weir's first-party HTTP sink. POSTs each batch (one partition's events
//! in offset order) to a URL, as a JSON array of [`event_json`] objects or as
//! newline-delimited JSON, with headers naming the topic, partition and offset range
//! so a receiver can drop the duplicates that at-least-once delivery allows.
//!
//! The response decides what the broker does next: 2xx commits the batch; 408, 429
//! and 5xx (and no response at all) are transient, so the batch is retried with
//! backoff; any other status means the receiver refuses these events, so they go to
//! the dead-letter topic (or pause the sink, as its manifest says) without retries.

use std::collections::BTreeMap;

use serde::Deserialize;
use weir_sdk::connector::{event_json, http, Delivery, Sink};
use weir_sdk::{Error, Event, Result};

/// The plugin's `[config]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Where to POST (`http://` or `https://`; its host must be granted).
    url: String,
    /// Body format.
    #[serde(default)]
    format: Format,
    /// Extra request headers (e.g. `authorization`).
    #[serde(default)]
    headers: BTreeMap<String, String>,
    /// Request timeout in ms.
    #[serde(default = "default_timeout_ms")]
    timeout_ms: u32,
}

fn default_timeout_ms() -> u32 {
    10_000
}

/// Body formats.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Format {
    /// One JSON array of event objects.
    #[default]
    Json,
    /// One event object per line.
    Ndjson,
}

/// The sink.
#[derive(Debug)]
pub struct HttpSink {
    url: String,
    format: Format,
    headers: Vec<(String, String)>,
    timeout_ms: u32,
}

impl Sink for HttpSink {
    type Config = Config;

    fn init(config: Config) -> std::result::Result<Self, String> {
        if !(config.url.starts_with("http://") || config.url.starts_with("https://")) {
            return Err(format!(
                "url '{}' must start with http:// or https://",
                config.url
            ));
        }
        for name in config.headers.keys() {
            let lower = name.to_ascii_lowercase();
            if lower == "content-type" || lower.starts_with("x-weir-") {
                return Err(format!(
                    "header '{name}' is set by the sink and cannot be configured"
                ));
            }
        }
        Ok(HttpSink {
            url: config.url,
            format: config.format,
            headers: config.headers.into_iter().collect(),
            timeout_ms: config.timeout_ms,
        })
    }

    fn write(&mut self, batch: &Delivery, events: &[Event<'_>]) -> Result<()> {
        if events.is_empty() {
            return Ok(());
        }
        let response = http::send(&self.request(batch, events)).map_err(Error::Failed)?;
        outcome(response.status, &response.body)
    }
}

impl HttpSink {
    /// The POST for one batch.
    fn request(&self, batch: &Delivery, events: &[Event<'_>]) -> http::Request {
        let (body, content_type) = body(self.format, batch, events);
        let first = batch.offsets.first().copied().unwrap_or_default();
        let last = batch.offsets.last().copied().unwrap_or_default();
        let mut req = http::Request::post(&self.url, body)
            .header("content-type", content_type)
            .header("x-weir-topic", &batch.topic)
            .header("x-weir-partition", &batch.partition.to_string())
            .header("x-weir-first-offset", &first.to_string())
            .header("x-weir-last-offset", &last.to_string());
        req.headers.extend(self.headers.iter().cloned());
        req.timeout_ms = self.timeout_ms;
        req
    }
}

/// The body of one batch and its content type.
fn body(format: Format, batch: &Delivery, events: &[Event<'_>]) -> (Vec<u8>, &'static str) {
    let objects = events
        .iter()
        .enumerate()
        .map(|(i, e)| event_json(batch, i, e));
    match format {
        Format::Json => {
            let mut s = String::from("[");
            for (i, o) in objects.enumerate() {
                if i > 0 {
                    s.push(',');
                }
                s.push_str(&o);
            }
            s.push(']');
            (s.into_bytes(), "application/json")
        }
        Format::Ndjson => {
            let mut s = String::new();
            for o in objects {
                s.push_str(&o);
                s.push('\n');
            }
            (s.into_bytes(), "application/x-ndjson")
        }
    }
}

/// What a response status means for the batch.
fn outcome(status: u16, body: &[u8]) -> Result<()> {
    let why = || {
        let text = String::from_utf8_lossy(&body[..body.len().min(200)]);
        format!("the receiver answered {status}: {}", text.trim())
    };
    match status {
        200..=299 => Ok(()),
        408 | 429 | 500..=599 => Err(Error::Failed(why())),
        400..=499 => Err(Error::BadInput(why())),
        // 1xx and 3xx (redirects are not followed): the receiver is misconfigured.
        _ => Err(Error::Failed(why())),
    }
}

weir_sdk::export_sink!(HttpSink);

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{json, Value};
    use weir_sdk::connector::testing;
    use weir_sdk::testing::{pack, TestEvent};

    fn batch() -> Delivery {
        Delivery {
            topic: "orders".into(),
            partition: 3,
            offsets: vec![7, 9],
        }
    }

    fn events() -> Vec<TestEvent> {
        vec![
            TestEvent::json(json!({"a": 1})).key("k"),
            TestEvent::json(json!("b")),
        ]
    }

    fn sink(config: Value) -> HttpSink {
        testing::sink::<HttpSink>(config).unwrap()
    }

    #[test]
    fn json_body_is_an_array_of_events() {
        let buf = pack(&events());
        let decoded = weir_sdk::packed::decode(&buf).unwrap();
        let (body, ct) = body(Format::Json, &batch(), &decoded);
        assert_eq!(ct, "application/json");
        let v: Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(v[0]["value"], json!({"a": 1}));
        assert_eq!(v[0]["offset"], 7);
        assert_eq!(v[1]["offset"], 9);
        assert_eq!(v[1]["partition"], 3);
    }

    #[test]
    fn ndjson_body_has_one_line_per_event() {
        let buf = pack(&events());
        let decoded = weir_sdk::packed::decode(&buf).unwrap();
        let (body, ct) = body(Format::Ndjson, &batch(), &decoded);
        assert_eq!(ct, "application/x-ndjson");
        let text = String::from_utf8(body).unwrap();
        let lines: Vec<Value> = text
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(lines.len(), 2);
        assert_eq!(lines[1]["value"], "b");
        assert!(text.ends_with('\n'));
    }

    #[test]
    fn request_carries_offsets_and_configured_headers() {
        let s = sink(json!({
            "url": "http://collector:8080/in",
            "headers": {"authorization": "Bearer t"},
            "timeout_ms": 500,
        }));
        let buf = pack(&events());
        let decoded = weir_sdk::packed::decode(&buf).unwrap();
        let req = s.request(&batch(), &decoded);
        assert_eq!(req.method, "POST");
        assert_eq!(req.url, "http://collector:8080/in");
        assert_eq!(req.timeout_ms, 500);
        let header = |n: &str| {
            req.headers
                .iter()
                .find(|(k, _)| k == n)
                .map(|(_, v)| v.as_str())
        };
        assert_eq!(header("x-weir-topic"), Some("orders"));
        assert_eq!(header("x-weir-partition"), Some("3"));
        assert_eq!(header("x-weir-first-offset"), Some("7"));
        assert_eq!(header("x-weir-last-offset"), Some("9"));
        assert_eq!(header("authorization"), Some("Bearer t"));
        assert_eq!(header("content-type"), Some("application/json"));
    }

    #[test]
    fn statuses_map_to_retry_or_dead_letter() {
        assert_eq!(outcome(200, b""), Ok(()));
        assert_eq!(outcome(204, b""), Ok(()));
        for retried in [408, 429, 500, 503, 302] {
            assert!(
                matches!(outcome(retried, b"busy"), Err(Error::Failed(_))),
                "{retried}"
            );
        }
        for refused in [400, 401, 404, 413, 422] {
            assert!(
                matches!(outcome(refused, b"no"), Err(Error::BadInput(_))),
                "{refused}"
            );
        }
        let Err(Error::BadInput(why)) = outcome(422, b" bad field \n") else {
            panic!()
        };
        assert_eq!(why, "the receiver answered 422: bad field");
    }

    #[test]
    fn config_is_checked() {
        assert!(testing::sink::<HttpSink>(json!({"url": "ftp://x"})).is_err());
        assert!(testing::sink::<HttpSink>(json!({})).is_err());
        assert!(testing::sink::<HttpSink>(json!({"url": "http://x", "format": "xml"})).is_err());
        assert!(testing::sink::<HttpSink>(
            json!({"url": "http://x", "headers": {"X-Weir-Topic": "y"}})
        )
        .is_err());
        assert_eq!(
            sink(json!({"url": "https://x", "format": "ndjson"})).format,
            Format::Ndjson
        );
    }

    #[test]
    fn no_response_is_retried() {
        // Natively there is no network: `send` fails, as for an unreachable host.
        let mut s = sink(json!({"url": "http://127.0.0.1:9/"}));
        let err = testing::write(&mut s, "t", 0, &events()).unwrap_err();
        assert!(err.starts_with("failed:"), "{err}");
        assert_eq!(testing::write(&mut s, "t", 0, &[]), Ok(()));
    }
}
