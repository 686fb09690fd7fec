//! Produce request bodies → [`NewRecord`]s, borrowing from the body where possible.
//!
//! Formats, chosen by `Content-Type`:
//! - `application/json`: `{"records":[{"key","value"|"value_base64","headers","partition"}]}`
//! - `application/x-ndjson`: one such record object per line
//! - CloudEvents: binary mode (`ce-*` headers, the body is the data), structured
//!   (`application/cloudevents+json`) and batch (`application/cloudevents-batch+json`).
//!   Attributes become headers named `ce_<attribute>` (the Kafka protocol binding's
//!   names), `datacontenttype` becomes `content-type`, and the `partitionkey`
//!   extension becomes the key.
//!
//! A `value` is any JSON value and is stored as its exact JSON text (it comes back as
//! JSON); `value_base64` carries binary and comes back as `value_base64`.

use std::borrow::Cow;
use std::fmt;

use axum::http::HeaderMap;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use serde::Deserialize;
use serde::de::{self, Deserializer, MapAccess, Visitor};
use serde_json::value::RawValue;
use weir_broker::NewRecord;

use crate::api::problem::Problem;

/// The body formats the produce endpoint accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyFormat {
    /// `{"records":[...]}`.
    Json,
    /// One record object per line.
    Ndjson,
    /// CloudEvents binary mode: one event, attributes in `ce-*` headers.
    CloudEventBinary,
    /// `application/cloudevents+json`.
    CloudEventStructured,
    /// `application/cloudevents-batch+json`.
    CloudEventBatch,
}

impl BodyFormat {
    /// Picks the format from the request headers.
    pub fn detect(headers: &HeaderMap) -> Result<BodyFormat, Problem> {
        let content_type = headers
            .get(axum::http::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("application/json");
        let mime = content_type
            .split(';')
            .next()
            .unwrap_or("")
            .trim()
            .to_ascii_lowercase();
        if headers.contains_key("ce-specversion") {
            return Ok(BodyFormat::CloudEventBinary);
        }
        match mime.as_str() {
            "application/json" | "" => Ok(BodyFormat::Json),
            "application/x-ndjson" | "application/ndjson" | "application/jsonl" => {
                Ok(BodyFormat::Ndjson)
            }
            "application/cloudevents+json" => Ok(BodyFormat::CloudEventStructured),
            "application/cloudevents-batch+json" => Ok(BodyFormat::CloudEventBatch),
            other => Err(Problem::new(
                axum::http::StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported_media_type",
                format!(
                    "content type '{other}' is not accepted: use application/json, \
                     application/x-ndjson, or CloudEvents (binary mode with ce-* headers, \
                     application/cloudevents+json, application/cloudevents-batch+json)"
                ),
            )),
        }
    }
}

/// Parses a produce body. JSON bodies must be UTF-8 as a whole: serde_json does not
/// check the bytes inside a string it only borrows as raw text, and such a value
/// would be stored and later served as JSON that is not UTF-8.
pub fn parse<'a>(
    format: BodyFormat,
    headers: &'a HeaderMap,
    body: &'a [u8],
) -> Result<Vec<NewRecord<'a>>, Problem> {
    let text = || {
        std::str::from_utf8(body)
            .map_err(|e| Problem::invalid_json(format!("the request body is not UTF-8: {e}")))
    };
    match format {
        BodyFormat::Json => {
            let envelope: Envelope<'a> = serde_json::from_str(text()?)
                .map_err(|e| Problem::from_json("request body", &e))?;
            envelope
                .records
                .into_iter()
                .enumerate()
                .map(|(i, r)| r.into_record(i))
                .collect()
        }
        BodyFormat::Ndjson => {
            let mut records = Vec::new();
            for (line_no, line) in text()?.split('\n').enumerate() {
                let line = line.strip_suffix('\r').unwrap_or(line);
                if line.trim_ascii().is_empty() {
                    continue;
                }
                let r: JsonRecord<'a> = serde_json::from_str(line)
                    .map_err(|e| Problem::from_json(&format!("line {}", line_no + 1), &e))?;
                records.push(r.into_record(records.len())?);
            }
            Ok(records)
        }
        BodyFormat::CloudEventBinary => Ok(vec![cloud_event_binary(headers, body)?]),
        BodyFormat::CloudEventStructured => {
            let event: CloudEvent<'a> =
                serde_json::from_str(text()?).map_err(|e| Problem::from_json("cloud event", &e))?;
            Ok(vec![event.into_record(0)?])
        }
        BodyFormat::CloudEventBatch => {
            let events: Vec<CloudEvent<'a>> = serde_json::from_str(text()?)
                .map_err(|e| Problem::from_json("cloud event batch", &e))?;
            events
                .into_iter()
                .enumerate()
                .map(|(i, e)| e.into_record(i))
                .collect()
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Envelope<'a> {
    #[serde(borrow)]
    records: Vec<JsonRecord<'a>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct JsonRecord<'a> {
    #[serde(borrow, default)]
    key: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    value: Option<&'a RawValue>,
    #[serde(borrow, default)]
    value_base64: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    headers: Option<HeaderList<'a>>,
    #[serde(default)]
    partition: Option<u32>,
}

impl<'a> JsonRecord<'a> {
    fn into_record(self, index: usize) -> Result<NewRecord<'a>, Problem> {
        let (value, value_is_json) = match (self.value, self.value_base64) {
            (Some(_), Some(_)) => {
                return Err(Problem::invalid_request(format!(
                    "record {index} has both 'value' and 'value_base64'"
                )));
            }
            (Some(raw), None) => (Some(Cow::Borrowed(raw.get().as_bytes())), true),
            (None, Some(b64)) => (Some(Cow::Owned(decode_base64(&b64, index)?)), false),
            (None, None) => (None, false),
        };
        Ok(NewRecord {
            key: self.key.map(cow_str_bytes),
            value,
            value_is_json,
            headers: self
                .headers
                .map(|h| {
                    h.0.into_iter()
                        .map(|(n, v)| (n, cow_str_bytes(v)))
                        .collect()
                })
                .unwrap_or_default(),
            partition: self.partition,
        })
    }
}

fn decode_base64(b64: &str, index: usize) -> Result<Vec<u8>, Problem> {
    BASE64
        .decode(b64)
        .map_err(|e| Problem::invalid_request(format!("record {index}: value_base64: {e}")))
}

fn cow_str_bytes(s: Cow<'_, str>) -> Cow<'_, [u8]> {
    match s {
        Cow::Borrowed(s) => Cow::Borrowed(s.as_bytes()),
        Cow::Owned(s) => Cow::Owned(s.into_bytes()),
    }
}

/// Headers as an ordered list of string pairs (a JSON object keeps its order here).
struct HeaderList<'a>(Vec<(Cow<'a, str>, Cow<'a, str>)>);

impl<'de: 'a, 'a> Deserialize<'de> for HeaderList<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V<'a>(std::marker::PhantomData<&'a ()>);
        impl<'de: 'a, 'a> Visitor<'de> for V<'a> {
            type Value = HeaderList<'a>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an object of string header values")
            }
            fn visit_map<M: MapAccess<'de>>(self, mut map: M) -> Result<Self::Value, M::Error> {
                let mut out = Vec::new();
                while let Some((k, v)) = map.next_entry::<Cow<'de, str>, Cow<'de, str>>()? {
                    out.push((k, v));
                }
                Ok(HeaderList(out))
            }
        }
        d.deserialize_map(V(std::marker::PhantomData))
    }
}

/// A structured-mode CloudEvent: required attributes, data, and everything else.
struct CloudEvent<'a> {
    attributes: Vec<(Cow<'a, str>, &'a RawValue)>,
}

impl<'de: 'a, 'a> Deserialize<'de> for CloudEvent<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V<'a>(std::marker::PhantomData<&'a ()>);
        impl<'de: 'a, 'a> Visitor<'de> for V<'a> {
            type Value = CloudEvent<'a>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a CloudEvent object")
            }
            fn visit_map<M: MapAccess<'de>>(self, mut map: M) -> Result<Self::Value, M::Error> {
                let mut attributes = Vec::new();
                while let Some((k, v)) = map.next_entry::<Cow<'de, str>, &'de RawValue>()? {
                    attributes.push((k, v));
                }
                Ok(CloudEvent { attributes })
            }
        }
        d.deserialize_map(V(std::marker::PhantomData))
    }
}

fn is_json_media_type(ct: &str) -> bool {
    let mime = ct
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    mime == "application/json" || mime.ends_with("+json") || mime == "text/json"
}

impl<'a> CloudEvent<'a> {
    fn into_record(self, index: usize) -> Result<NewRecord<'a>, Problem> {
        let mut record = NewRecord::default();
        let mut data: Option<&'a RawValue> = None;
        let mut data_base64: Option<Cow<'a, str>> = None;
        let mut content_type: Option<String> = None;
        let mut seen = [false; 4];
        for (name, raw) in self.attributes {
            match name.as_ref() {
                "data" => data = Some(raw),
                "data_base64" => {
                    data_base64 = Some(serde_json::from_str::<Cow<'a, str>>(raw.get()).map_err(
                        |_| {
                            Problem::invalid_request(format!(
                                "event {index}: data_base64 must be a string"
                            ))
                        },
                    )?)
                }
                _ => {
                    let value = attribute_text(raw).ok_or_else(|| {
                        Problem::invalid_request(format!(
                            "event {index}: attribute '{name}' must be a string, number or boolean"
                        ))
                    })?;
                    if let Some(i) = ["specversion", "id", "source", "type"]
                        .iter()
                        .position(|r| *r == name)
                    {
                        check_required_attribute(&name, &value, index)?;
                        seen[i] = true;
                    }
                    match name.as_ref() {
                        "datacontenttype" => {
                            content_type = Some(value.clone());
                            record.headers.push((
                                Cow::Borrowed("content-type"),
                                Cow::Owned(value.into_bytes()),
                            ));
                        }
                        "partitionkey" => {
                            record.key = Some(Cow::Owned(value.clone().into_bytes()));
                            record.headers.push((
                                Cow::Borrowed("ce_partitionkey"),
                                Cow::Owned(value.into_bytes()),
                            ));
                        }
                        _ => record.headers.push((
                            Cow::Owned(format!("ce_{name}")),
                            Cow::Owned(value.into_bytes()),
                        )),
                    }
                }
            }
        }
        require_ce_attributes(&seen, index)?;
        match (data, data_base64) {
            (Some(_), Some(_)) => {
                return Err(Problem::invalid_request(format!(
                    "event {index} has both 'data' and 'data_base64'"
                )));
            }
            (Some(raw), None) => {
                let textual = content_type
                    .as_deref()
                    .is_some_and(|ct| !is_json_media_type(ct));
                match serde_json::from_str::<Cow<'a, str>>(raw.get()) {
                    // Non-JSON content carried as a JSON string: store the text itself.
                    Ok(text) if textual => {
                        record.value = Some(cow_str_bytes(text));
                    }
                    _ => {
                        record.value = Some(Cow::Borrowed(raw.get().as_bytes()));
                        record.value_is_json = true;
                    }
                }
            }
            (None, Some(b64)) => record.value = Some(Cow::Owned(decode_base64(&b64, index)?)),
            (None, None) => {}
        }
        Ok(record)
    }
}

fn require_ce_attributes(seen: &[bool; 4], index: usize) -> Result<(), Problem> {
    let names = ["specversion", "id", "source", "type"];
    let missing: Vec<_> = names
        .iter()
        .zip(seen)
        .filter(|(_, s)| !**s)
        .map(|(n, _)| *n)
        .collect();
    if missing.is_empty() {
        Ok(())
    } else {
        Err(Problem::invalid_request(format!(
            "event {index} lacks required CloudEvents attribute(s): {}",
            missing.join(", ")
        )))
    }
}

/// CloudEvents 1.0: `specversion` must be `1.0` (the only version this speaks), and
/// `id`, `source` and `type` non-empty.
fn check_required_attribute(name: &str, value: &str, index: usize) -> Result<(), Problem> {
    if name == "specversion" && value != "1.0" {
        return Err(Problem::invalid_request(format!(
            "event {index}: specversion '{value}' is not supported (only 1.0)"
        )));
    }
    if value.is_empty() {
        return Err(Problem::invalid_request(format!(
            "event {index}: attribute '{name}' must not be empty"
        )));
    }
    Ok(())
}

/// The text of a scalar attribute: strings unescaped, numbers and booleans as written.
fn attribute_text(raw: &RawValue) -> Option<String> {
    let text = raw.get();
    if text.starts_with('"') {
        serde_json::from_str::<String>(text).ok()
    } else if text.starts_with('{') || text.starts_with('[') || text == "null" {
        None
    } else {
        Some(text.to_string())
    }
}

fn cloud_event_binary<'a>(
    headers: &'a HeaderMap,
    body: &'a [u8],
) -> Result<NewRecord<'a>, Problem> {
    let mut record = NewRecord::default();
    let mut seen = [false; 4];
    let mut attributes: Vec<&str> = Vec::new();
    for (name, value) in headers {
        let Some(attr) = name.as_str().strip_prefix("ce-") else {
            continue;
        };
        // CloudEvents attribute names are lower-case letters and digits; one that is
        // given twice would be stored twice, and readers that keep the first or the
        // last would disagree about the event.
        if attr.is_empty()
            || !attr
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
        {
            return Err(Problem::invalid_request(format!(
                "header '{name}' does not name a CloudEvents attribute (lower-case letters and digits after 'ce-')"
            )));
        }
        if attributes.contains(&attr) {
            return Err(Problem::invalid_request(format!(
                "header '{name}' is given more than once"
            )));
        }
        attributes.push(attr);
        let value = value.to_str().map_err(|_| {
            Problem::invalid_request(format!("header '{name}' is not visible ASCII"))
        })?;
        if let Some(i) = ["specversion", "id", "source", "type"]
            .iter()
            .position(|r| *r == attr)
        {
            check_required_attribute(attr, value, 0)?;
            seen[i] = true;
        }
        if attr == "partitionkey" {
            record.key = Some(Cow::Borrowed(value.as_bytes()));
        }
        record.headers.push((
            Cow::Owned(format!("ce_{attr}")),
            Cow::Borrowed(value.as_bytes()),
        ));
    }
    require_ce_attributes(&seen, 0)?;
    let content_type = headers
        .get(axum::http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok());
    if let Some(ct) = content_type {
        record
            .headers
            .push((Cow::Borrowed("content-type"), Cow::Borrowed(ct.as_bytes())));
    }
    record.value_is_json = content_type.is_some_and(is_json_media_type)
        && serde_json::from_slice::<de::IgnoredAny>(body).is_ok();
    record.value = Some(Cow::Borrowed(body));
    Ok(record)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn json(body: &str) -> Result<Vec<NewRecord<'_>>, Problem> {
        static EMPTY: std::sync::OnceLock<HeaderMap> = std::sync::OnceLock::new();
        parse(
            BodyFormat::Json,
            EMPTY.get_or_init(HeaderMap::new),
            body.as_bytes(),
        )
    }

    #[test]
    fn json_values_keep_their_exact_text() {
        let r =
            json(r#"{"records":[{"key":"k","value":{"a": [1, 2]},"headers":{"z":"1","a":"2"}}]}"#)
                .unwrap();
        assert_eq!(r[0].value.as_deref(), Some(br#"{"a": [1, 2]}"#.as_slice()));
        assert!(r[0].value_is_json);
        let names: Vec<_> = r[0].headers.iter().map(|(n, _)| n.as_ref()).collect();
        assert_eq!(names, ["z", "a"]);
    }

    #[test]
    fn base64_values_are_binary() {
        let r = json(r#"{"records":[{"value_base64":"AAEC/w=="}]}"#).unwrap();
        assert_eq!(r[0].value.as_deref(), Some([0u8, 1, 2, 255].as_slice()));
        assert!(!r[0].value_is_json);
    }

    #[test]
    fn shape_errors_are_invalid_request_and_syntax_errors_invalid_json() {
        assert_eq!(
            json(r#"{"records":[{"valu":1}]}"#).unwrap_err().code(),
            "invalid_request"
        );
        assert_eq!(
            json(r#"{"records":[{"value":1}"#).unwrap_err().code(),
            "invalid_json"
        );
        assert_eq!(
            json(r#"{"records":[{"value":1,"value_base64":"AA=="}]}"#)
                .unwrap_err()
                .code(),
            "invalid_request"
        );
        assert_eq!(
            json(r#"{"records":[{"value_base64":"!!"}]}"#)
                .unwrap_err()
                .code(),
            "invalid_request"
        );
    }

    #[test]
    fn bytes_that_are_not_utf8_are_refused_even_inside_a_raw_value() {
        static EMPTY: std::sync::OnceLock<HeaderMap> = std::sync::OnceLock::new();
        let headers = EMPTY.get_or_init(HeaderMap::new);
        let body = b"{\"records\":[{\"value\":\"\xff\"}]}";
        let err = parse(BodyFormat::Json, headers, body).err().unwrap();
        assert_eq!(err.code(), "invalid_json");
        assert!(parse(BodyFormat::Ndjson, headers, b"{\"value\":\"\xfe\"}\n").is_err());
    }

    #[test]
    fn cloud_events_need_version_1_0_and_non_empty_attributes() {
        static EMPTY: std::sync::OnceLock<HeaderMap> = std::sync::OnceLock::new();
        let headers = EMPTY.get_or_init(HeaderMap::new);
        for body in [
            r#"{"specversion":"0.3","id":"1","source":"/s","type":"t"}"#,
            r#"{"specversion":"1.0","id":"","source":"/s","type":"t"}"#,
            r#"{"specversion":"1.0","id":"1","source":"","type":"t"}"#,
        ] {
            let r = parse(BodyFormat::CloudEventStructured, headers, body.as_bytes());
            assert!(r.is_err(), "{body}");
        }
    }

    #[test]
    fn structured_cloud_event() {
        let body = br#"{"specversion":"1.0","id":"1","source":"/s","type":"t","partitionkey":"pk","datacontenttype":"text/plain","data":"hello"}"#;
        let h = HeaderMap::new();
        let r = parse(BodyFormat::CloudEventStructured, &h, body).unwrap();
        assert_eq!(r[0].key.as_deref(), Some(b"pk".as_slice()));
        assert_eq!(r[0].value.as_deref(), Some(b"hello".as_slice()));
        assert!(!r[0].value_is_json);
        let missing = parse(
            BodyFormat::CloudEventStructured,
            &h,
            br#"{"specversion":"1.0","data":1}"#,
        );
        assert_eq!(missing.unwrap_err().code(), "invalid_request");
    }
}
