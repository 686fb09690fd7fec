//! http-source: Weir's first-party HTTP source. Polls a JSON API that pages by cursor
//! (`GET /items?cursor=<last id seen>`) and publishes every element it returns as a
//! JSON event.
//!
//! The cursor lives in the plugin's durable state and is read at the start of every
//! poll. The broker commits it atomically with the events of that poll, so after a
//! failed publish or a restart the next poll asks again from the last committed
//! cursor: nothing is skipped, and nothing stored twice.
//!
//! The response body is a JSON array or newline-delimited JSON (one value per
//! line). At most `max` elements are taken per poll; the rest are asked for again
//! from the new cursor.

use std::collections::BTreeMap;

use serde::Deserialize;
use serde_json::value::RawValue;
use weir_sdk::connector::{http, Emitted, PollInfo, Source};
use weir_sdk::json::Pointer;
use weir_sdk::{state, Error, Result};

/// The state key of the cursor.
const CURSOR: &[u8] = b"cursor";

/// The plugin's `[config]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// The API endpoint (`http://` or `https://`; its host must be granted).
    url: String,
    /// Query parameter that carries the cursor.
    #[serde(default = "default_cursor_param")]
    cursor_param: String,
    /// Field of each element that is its cursor (a name, or a JSON pointer `/a/b`).
    #[serde(default = "default_cursor_field")]
    cursor_field: String,
    /// Query parameter that carries the most elements wanted, if the API has one.
    #[serde(default)]
    limit_param: Option<String>,
    /// Field whose value (as text) becomes the event key.
    #[serde(default)]
    key_field: Option<String>,
    /// Extra request headers (e.g. `authorization`).
    #[serde(default)]
    headers: BTreeMap<String, String>,
    /// Request timeout in ms.
    #[serde(default = "default_timeout_ms")]
    timeout_ms: u32,
}

fn default_cursor_param() -> String {
    "cursor".into()
}

fn default_cursor_field() -> String {
    "id".into()
}

fn default_timeout_ms() -> u32 {
    10_000
}

/// The source.
#[derive(Debug)]
pub struct HttpSource {
    url: String,
    cursor_param: String,
    cursor_field: Field,
    limit_param: Option<String>,
    key_field: Option<Field>,
    headers: Vec<(String, String)>,
    timeout_ms: u32,
}

impl Source for HttpSource {
    type Config = Config;

    fn init(config: Config) -> std::result::Result<Self, String> {
        if !(config.url.starts_with("http://") || config.url.starts_with("https://")) {
            return Err(format!(
                "url '{}' must start with http:// or https://",
                config.url
            ));
        }
        if config.cursor_param.is_empty() || config.limit_param.as_deref() == Some("") {
            return Err("cursor_param and limit_param must not be empty".into());
        }
        Ok(HttpSource {
            url: config.url,
            cursor_param: config.cursor_param,
            cursor_field: Field::parse(&config.cursor_field)?,
            limit_param: config.limit_param,
            key_field: config.key_field.as_deref().map(Field::parse).transpose()?,
            headers: config.headers.into_iter().collect(),
            timeout_ms: config.timeout_ms,
        })
    }

    fn poll(&mut self, info: &PollInfo, out: &mut Emitted) -> Result<()> {
        if info.max == 0 {
            return Ok(());
        }
        let cursor = match state::get(CURSOR) {
            Some(c) => Some(
                String::from_utf8(c)
                    .map_err(|_| Error::Failed("the saved cursor is not UTF-8".into()))?,
            ),
            None => None,
        };
        let mut req = http::Request::get(&self.request_url(cursor.as_deref(), info.max))
            .header("accept", "application/json");
        req.headers.extend(self.headers.iter().cloned());
        req.timeout_ms = self.timeout_ms;
        let response = http::send(&req).map_err(Error::Failed)?;
        if !(200..300).contains(&response.status) {
            let text = String::from_utf8_lossy(&response.body[..response.body.len().min(200)]);
            return Err(Error::Failed(format!(
                "{} answered {}: {}",
                self.url,
                response.status,
                text.trim()
            )));
        }
        if let Some(next) = self.emit(&response.body, info.max as usize, out)? {
            state::set(CURSOR, next.as_bytes());
        }
        Ok(())
    }
}

impl HttpSource {
    /// The URL of the next page: the cursor (if any) and the limit (if configured).
    fn request_url(&self, cursor: Option<&str>, max: u32) -> String {
        let mut params = Vec::new();
        if let Some(c) = cursor {
            params.push((self.cursor_param.as_str(), c.to_string()));
        }
        if let Some(l) = &self.limit_param {
            params.push((l.as_str(), max.to_string()));
        }
        let mut url = self.url.clone();
        for (name, value) in params {
            if !(url.ends_with('?') || url.ends_with('&')) {
                url.push(if url.contains('?') { '&' } else { '?' });
            }
            url.push_str(&percent_encode(name));
            url.push('=');
            url.push_str(&percent_encode(&value));
        }
        url
    }

    /// Emits up to `max` elements of `body`; the cursor of the last one, if any.
    fn emit(&self, body: &[u8], max: usize, out: &mut Emitted) -> Result<Option<String>> {
        let mut cursor = None;
        for raw in elements(body)?.into_iter().take(max) {
            let json = raw.get().as_bytes();
            let text = |f: &Field| {
                f.text(json)
                    .map_err(|e| Error::BadInput(format!("{e}: {}", clip(raw.get()))))
            };
            let Some(c) = text(&self.cursor_field)? else {
                return Err(Error::BadInput(format!(
                    "an element has no cursor field '{}': {}",
                    self.cursor_field.name,
                    clip(raw.get())
                )));
            };
            let key = match &self.key_field {
                Some(f) => text(f)?,
                None => None,
            };
            out.json(key.as_deref().map(str::as_bytes), json);
            cursor = Some(c);
        }
        Ok(cursor)
    }
}

/// The elements of a JSON array body, or the values of an NDJSON body.
fn elements(body: &[u8]) -> Result<Vec<&RawValue>> {
    let bad = |e: serde_json::Error| {
        Error::BadInput(format!("the response is not a JSON array or NDJSON: {e}"))
    };
    match body.iter().find(|b| !b.is_ascii_whitespace()) {
        None => Ok(Vec::new()),
        Some(b'[') => serde_json::from_slice(body).map_err(bad),
        Some(_) => body
            .split(|&b| b == b'\n')
            .filter(|line| line.iter().any(|b| !b.is_ascii_whitespace()))
            .map(|line| serde_json::from_slice(line).map_err(bad))
            .collect(),
    }
}

/// A field named in the config: a top-level name, or a JSON pointer (`/a/b`).
#[derive(Debug)]
struct Field {
    name: String,
    pointer: Pointer,
}

impl Field {
    fn parse(name: &str) -> std::result::Result<Field, String> {
        if name.is_empty() {
            return Err("field names must not be empty".into());
        }
        let pointer = if name.starts_with('/') {
            Pointer::parse(name)?
        } else {
            Pointer::parse(&format!("/{}", name.replace('~', "~0").replace('/', "~1")))?
        };
        Ok(Field {
            name: name.into(),
            pointer,
        })
    }

    /// The field's value as text: a string's contents, or any other value's JSON.
    fn text(&self, json: &[u8]) -> std::result::Result<Option<String>, serde_json::Error> {
        Ok(match self.pointer.find(json)? {
            Some(raw) if raw.starts_with('"') => Some(serde_json::from_str(raw)?),
            Some(raw) => Some(raw.to_string()),
            None => None,
        })
    }
}

/// Percent-encodes everything but RFC 3986's unreserved characters.
fn percent_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// At most 200 bytes of `s`, for error messages.
fn clip(s: &str) -> &str {
    let mut end = s.len().min(200);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

weir_sdk::export_source!(HttpSource);

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{json, Value};
    use weir_sdk::connector::testing;

    fn source(config: Value) -> HttpSource {
        testing::source::<HttpSource>(config).unwrap()
    }

    /// Events as (key, value).
    type Events = Vec<(Option<String>, Value)>;

    /// Runs `emit` natively: the events and the new cursor.
    fn emit(s: &HttpSource, body: &str, max: usize) -> Result<(Events, Option<String>)> {
        let mut out = Emitted::default();
        let cursor = s.emit(body.as_bytes(), max, &mut out)?;
        let buf = out.finish();
        let events = weir_sdk::packed::decode(&buf).unwrap();
        let pairs = events
            .iter()
            .map(|e| {
                assert!(e.value_is_json());
                (
                    e.key_str().map(String::from),
                    serde_json::from_slice(e.value.unwrap()).unwrap(),
                )
            })
            .collect();
        Ok((pairs, cursor))
    }

    #[test]
    fn urls_carry_the_encoded_cursor_and_limit() {
        let s = source(json!({"url": "https://api.example.com/items"}));
        assert_eq!(s.request_url(None, 100), "https://api.example.com/items");
        assert_eq!(
            s.request_url(Some("a b&c/é"), 100),
            "https://api.example.com/items?cursor=a%20b%26c%2F%C3%A9"
        );
        let s = source(
            json!({"url": "http://h/items?type=x", "cursor_param": "after", "limit_param": "limit"}),
        );
        assert_eq!(s.request_url(None, 50), "http://h/items?type=x&limit=50");
        assert_eq!(
            s.request_url(Some("42"), 50),
            "http://h/items?type=x&after=42&limit=50"
        );
        let s = source(json!({"url": "http://h/items?"}));
        assert_eq!(s.request_url(Some("1"), 5), "http://h/items?cursor=1");
    }

    #[test]
    fn arrays_emit_elements_and_advance_the_cursor() {
        let s = source(json!({"url": "http://h/", "key_field": "user"}));
        let (events, cursor) = emit(
            &s,
            r#"[{"id": 1, "user": "ann"}, {"id": 2, "user": 7}, {"id": 3}]"#,
            10,
        )
        .unwrap();
        assert_eq!(events.len(), 3);
        assert_eq!(
            events[0],
            (Some("ann".into()), json!({"id": 1, "user": "ann"}))
        );
        assert_eq!(events[1].0.as_deref(), Some("7"));
        assert_eq!(events[2].0, None);
        assert_eq!(cursor.as_deref(), Some("3"));
        // At most `max`: the cursor is the last one taken.
        let (events, cursor) = emit(&s, r#"[{"id": "a"}, {"id": "b"}, {"id": "c"}]"#, 2).unwrap();
        assert_eq!(events.len(), 2);
        assert_eq!(cursor.as_deref(), Some("b"));
        // Nothing new: no cursor to save.
        assert_eq!(emit(&s, " [ ] ", 10).unwrap(), (vec![], None));
        assert_eq!(emit(&s, "", 10).unwrap(), (vec![], None));
    }

    #[test]
    fn ndjson_bodies_and_nested_cursor_fields() {
        let s = source(json!({"url": "http://h/", "cursor_field": "/meta/seq"}));
        let body = "{\"meta\":{\"seq\":10}}\n\n  {\"meta\":{\"seq\":11},\"x\":\"y\"}\r\n";
        let (events, cursor) = emit(&s, body, 10).unwrap();
        assert_eq!(events.len(), 2);
        assert_eq!(events[1].1["x"], "y");
        assert_eq!(cursor.as_deref(), Some("11"));
    }

    #[test]
    fn bad_bodies_are_bad_input() {
        let s = source(json!({"url": "http://h/"}));
        let err = emit(&s, r#"[{"id": 1}, {"name": "no id"}]"#, 10).unwrap_err();
        assert!(
            matches!(&err, Error::BadInput(m) if m.contains("'id'")),
            "{err}"
        );
        assert!(matches!(emit(&s, "[1, 2", 10), Err(Error::BadInput(_))));
        assert!(matches!(
            emit(&s, "{\"id\":1}\nnot json\n", 10),
            Err(Error::BadInput(_))
        ));
    }

    #[test]
    fn poll_reads_the_cursor_from_state() {
        // Natively there is no network: the poll fails, and the cursor is untouched.
        let mut s = source(json!({"url": "http://127.0.0.1:9/"}));
        state::set(CURSOR, b"5");
        let info = PollInfo {
            topic: "t".into(),
            partitions: 1,
            max: 10,
            now_ms: 0,
        };
        let err = testing::poll(&mut s, &info).unwrap_err();
        assert!(
            err.starts_with("failed:") && err.contains("cursor=5"),
            "{err}"
        );
        assert_eq!(state::get(CURSOR).as_deref(), Some(&b"5"[..]));
    }

    #[test]
    fn config_is_checked() {
        assert!(testing::source::<HttpSource>(json!({})).is_err());
        assert!(testing::source::<HttpSource>(json!({"url": "file:///etc/passwd"})).is_err());
        assert!(
            testing::source::<HttpSource>(json!({"url": "http://h", "cursor_field": ""})).is_err()
        );
        assert!(
            testing::source::<HttpSource>(json!({"url": "http://h", "limit_param": ""})).is_err()
        );
        assert!(testing::source::<HttpSource>(json!({"url": "http://h", "extra": 1})).is_err());
    }
}
