//! Connectors: sources bring events into Weir, sinks deliver them out. They run on
//! their own (the broker polls sources and feeds sinks) and may reach what their
//! manifest grants: hosts over [`http`], directories through [`files`].

use crate::guest::{Error, Result};
use crate::packed::{Event, FLAG_VALUE_JSON, Writer};

/// What the broker says when it polls a source.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PollInfo {
    /// The topic the source publishes to.
    pub topic: String,
    /// Its partition count.
    pub partitions: u32,
    /// Most events to return from this poll.
    pub max: u32,
    /// The broker's clock, ms since the Unix epoch (a guest has no clock of its own).
    pub now_ms: i64,
}

/// Where a sink's batch comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivery {
    /// The topic.
    pub topic: String,
    /// The partition.
    pub partition: u32,
    /// Each event's offset, ascending.
    pub offsets: Vec<u64>,
}

/// The events a source returns from one poll.
#[derive(Debug, Default)]
pub struct Emitted {
    writer: Writer,
}

impl Emitted {
    /// Adds an event with a JSON value.
    pub fn json(&mut self, key: Option<&[u8]>, value: &[u8]) {
        self.writer.push(0, FLAG_VALUE_JSON, key, Some(value), []);
    }

    /// Adds an event with a value that is not JSON.
    pub fn bytes(&mut self, key: Option<&[u8]>, value: &[u8]) {
        self.writer.push(0, 0, key, Some(value), []);
    }

    /// Adds an event with headers.
    pub fn event<'h>(
        &mut self,
        key: Option<&[u8]>,
        value: Option<&[u8]>,
        json: bool,
        headers: impl IntoIterator<Item = (&'h str, &'h [u8])>,
    ) {
        let flags = if json { FLAG_VALUE_JSON } else { 0 };
        self.writer.push(0, flags, key, value, headers);
    }

    /// Events added so far.
    pub fn len(&self) -> usize {
        self.writer.len()
    }

    /// Whether nothing was added.
    pub fn is_empty(&self) -> bool {
        self.writer.is_empty()
    }

    #[doc(hidden)]
    pub fn finish(self) -> Vec<u8> {
        self.writer.finish()
    }
}

/// A connector that brings events in. Keep the position (cursor) in [`crate::state`]
/// and read it at the start of every poll: what a poll writes there is committed
/// atomically with the events it returns, and discarded if they cannot be stored,
/// so the next poll starts again from the committed position.
pub trait Source: Sized + 'static {
    /// The plugin's `[config]`, deserialised from JSON.
    type Config: serde::de::DeserializeOwned;
    /// Builds the source; an error rejects it at load.
    fn init(config: Self::Config) -> std::result::Result<Self, String>;
    /// Adds up to `info.max` new events to `out`; none when there is nothing new.
    fn poll(&mut self, info: &PollInfo, out: &mut Emitted) -> Result<()>;
}

/// A connector that delivers events out. `write` gets one partition's events in
/// offset order; offsets are committed only after it returns `Ok` (at least once, so
/// a destination may see an event again after a failure; `offsets` let it tell).
/// Return [`Error::BadInput`] when the destination refuses the events themselves
/// (they are dead-lettered without retries) and [`Error::Failed`] when it is
/// unavailable (retried with backoff).
pub trait Sink: Sized + 'static {
    /// The plugin's `[config]`, deserialised from JSON.
    type Config: serde::de::DeserializeOwned;
    /// Builds the sink; an error rejects it at load.
    fn init(config: Self::Config) -> std::result::Result<Self, String>;
    /// Delivers `events` (offsets in `batch.offsets`).
    fn write(&mut self, batch: &Delivery, events: &[Event<'_>]) -> Result<()>;
}

/// One event as a JSON object, for sinks that write JSON:
/// `{"topic","partition","offset","timestamp","key","value","headers"}`. A JSON value
/// is embedded as JSON, other UTF-8 as a string, anything else as `value_base64`.
pub fn event_json(batch: &Delivery, index: usize, event: &Event<'_>) -> String {
    let mut s = String::with_capacity(96 + event.value.map_or(0, <[u8]>::len));
    s.push_str("{\"topic\":");
    s.push_str(&serde_json::to_string(&batch.topic).unwrap_or_default());
    s.push_str(&format!(
        ",\"partition\":{},\"offset\":{},\"timestamp\":{}",
        batch.partition,
        batch.offsets.get(index).copied().unwrap_or_default(),
        event.timestamp_ms
    ));
    if let Some(k) = event.key {
        push_bytes(&mut s, "key", k);
    }
    match event.value {
        Some(v) if event.value_is_json() => {
            s.push_str(",\"value\":");
            s.push_str(std::str::from_utf8(v).unwrap_or("null"));
        }
        Some(v) => push_bytes(&mut s, "value", v),
        None => s.push_str(",\"value\":null"),
    }
    if event.header_count() > 0 {
        let headers: serde_json::Map<String, serde_json::Value> = event
            .headers()
            .map(|(n, v)| {
                (
                    n.to_string(),
                    String::from_utf8_lossy(v).into_owned().into(),
                )
            })
            .collect();
        s.push_str(",\"headers\":");
        s.push_str(&serde_json::Value::Object(headers).to_string());
    }
    s.push('}');
    s
}

fn push_bytes(s: &mut String, field: &str, bytes: &[u8]) {
    match std::str::from_utf8(bytes) {
        Ok(text) => {
            s.push_str(&format!(",\"{field}\":"));
            s.push_str(&serde_json::to_string(text).unwrap_or_default());
        }
        Err(_) => s.push_str(&format!(",\"{field}_base64\":\"{}\"", base64(bytes))),
    }
}

/// Standard base64 with padding.
fn base64(bytes: &[u8]) -> String {
    const A: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |n, (i, b)| n | u32::from(*b) << (16 - 8 * i));
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(A[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// Outbound HTTP, to the hosts the manifest grants (`[grants] http`).
pub mod http {
    /// A request.
    #[derive(Debug, Clone, Default, PartialEq, Eq)]
    pub struct Request {
        /// GET, POST, ...
        pub method: String,
        /// An `http://` or `https://` URL.
        pub url: String,
        /// Header names and values.
        pub headers: Vec<(String, String)>,
        /// The body.
        pub body: Vec<u8>,
        /// Timeout in ms; 0 for the host's default (10 s).
        pub timeout_ms: u32,
    }

    impl Request {
        /// A GET of `url`.
        pub fn get(url: &str) -> Self {
            Request {
                method: "GET".into(),
                url: url.into(),
                ..Request::default()
            }
        }

        /// A POST of `body` to `url`.
        pub fn post(url: &str, body: Vec<u8>) -> Self {
            Request {
                method: "POST".into(),
                url: url.into(),
                body,
                ..Request::default()
            }
        }

        /// Adds a header.
        pub fn header(mut self, name: &str, value: &str) -> Self {
            self.headers.push((name.into(), value.into()));
            self
        }
    }

    /// A response.
    #[derive(Debug, Clone, Default, PartialEq, Eq)]
    pub struct Response {
        /// Status code.
        pub status: u16,
        /// Header names and values.
        pub headers: Vec<(String, String)>,
        /// The body.
        pub body: Vec<u8>,
    }

    impl Response {
        /// The first header called `name` (case-insensitive).
        pub fn header(&self, name: &str) -> Option<&str> {
            self.headers
                .iter()
                .find(|(n, _)| n.eq_ignore_ascii_case(name))
                .map(|(_, v)| v.as_str())
        }
    }

    /// Sends `req`. `Err` says why there is no response (not granted — the message
    /// starts with `capability_denied` —, unreachable, timed out).
    pub fn send(req: &Request) -> Result<Response, String> {
        #[cfg(target_arch = "wasm32")]
        {
            use crate::guest::bindings::source::weir::plugin::http as wit;
            let r = wit::send(&wit::Request {
                method: req.method.clone(),
                url: req.url.clone(),
                headers: req.headers.clone(),
                body: req.body.clone(),
                timeout_ms: req.timeout_ms,
            })?;
            Ok(Response {
                status: r.status,
                headers: r.headers,
                body: r.body,
            })
        }
        #[cfg(not(target_arch = "wasm32"))]
        Err(format!(
            "no network when run natively ({} {})",
            req.method, req.url
        ))
    }
}

/// Files inside the directories the manifest grants (`[grants] dirs`). Paths are
/// absolute. Run natively (unit tests), these use the file system directly.
pub mod files {
    /// A directory entry.
    #[derive(Debug, Clone, PartialEq, Eq)]
    pub struct Entry {
        /// File name.
        pub name: String,
        /// Size in bytes.
        pub size: u64,
        /// Whether it is a directory.
        pub is_dir: bool,
    }

    #[cfg(target_arch = "wasm32")]
    use crate::guest::bindings::source::weir::plugin::files as wit;

    /// The entries of `dir`, sorted by name.
    pub fn list_dir(dir: &str) -> Result<Vec<Entry>, String> {
        #[cfg(target_arch = "wasm32")]
        return Ok(wit::list_dir(dir)?
            .into_iter()
            .map(|e| Entry {
                name: e.name,
                size: e.size,
                is_dir: e.is_dir,
            })
            .collect());
        #[cfg(not(target_arch = "wasm32"))]
        {
            let mut out = Vec::new();
            for e in std::fs::read_dir(dir).map_err(|e| e.to_string())? {
                let e = e.map_err(|e| e.to_string())?;
                let meta = e.metadata().map_err(|e| e.to_string())?;
                out.push(Entry {
                    name: e.file_name().to_string_lossy().into_owned(),
                    size: meta.len(),
                    is_dir: meta.is_dir(),
                });
            }
            out.sort_by(|a, b| a.name.cmp(&b.name));
            Ok(out)
        }
    }

    /// Up to `max` bytes of `path` from `offset`.
    pub fn read_at(path: &str, offset: u64, max: u32) -> Result<Vec<u8>, String> {
        #[cfg(target_arch = "wasm32")]
        return wit::read_at(path, offset, max);
        #[cfg(not(target_arch = "wasm32"))]
        {
            use std::io::{Read, Seek};
            let mut f = std::fs::File::open(path).map_err(|e| e.to_string())?;
            f.seek(std::io::SeekFrom::Start(offset))
                .map_err(|e| e.to_string())?;
            let mut buf = Vec::new();
            f.take(u64::from(max))
                .read_to_end(&mut buf)
                .map_err(|e| e.to_string())?;
            Ok(buf)
        }
    }

    /// Appends `data` to `path` (creating it); returns its new size.
    pub fn append(path: &str, data: &[u8]) -> Result<u64, String> {
        #[cfg(target_arch = "wasm32")]
        return wit::append(path, data);
        #[cfg(not(target_arch = "wasm32"))]
        {
            use std::io::Write;
            let mut f = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)
                .map_err(|e| e.to_string())?;
            f.write_all(data).map_err(|e| e.to_string())?;
            Ok(f.metadata().map_err(|e| e.to_string())?.len())
        }
    }

    /// Makes what was appended to `path` durable.
    pub fn sync(path: &str) -> Result<(), String> {
        #[cfg(target_arch = "wasm32")]
        return wit::sync(path);
        #[cfg(not(target_arch = "wasm32"))]
        std::fs::File::open(path)
            .and_then(|f| f.sync_all())
            .map_err(|e| e.to_string())
    }

    /// Renames `from` to `to`.
    pub fn rename(from: &str, to: &str) -> Result<(), String> {
        #[cfg(target_arch = "wasm32")]
        return wit::rename(from, to);
        #[cfg(not(target_arch = "wasm32"))]
        std::fs::rename(from, to).map_err(|e| e.to_string())
    }

    /// Creates `dir` and its parents.
    pub fn create_dir(dir: &str) -> Result<(), String> {
        #[cfg(target_arch = "wasm32")]
        return wit::create_dir(dir);
        #[cfg(not(target_arch = "wasm32"))]
        std::fs::create_dir_all(dir).map_err(|e| e.to_string())
    }
}

/// Glue for the export macros. Not part of the API.
#[doc(hidden)]
pub mod glue {
    use super::*;

    /// Polls a source: the packed events.
    pub fn poll<S: Source>(s: &mut S, info: &PollInfo) -> Result<Vec<u8>> {
        let mut out = Emitted::default();
        s.poll(info, &mut out)?;
        Ok(out.finish())
    }

    /// Hands a sink a packed batch.
    pub fn write<S: Sink>(s: &mut S, batch: &Delivery, buf: &[u8]) -> Result<()> {
        let events = crate::guest::glue::events(buf)?;
        if events.len() != batch.offsets.len() {
            return Err(Error::Failed(format!(
                "{} events but {} offsets",
                events.len(),
                batch.offsets.len()
            )));
        }
        s.write(batch, &events)
    }
}

/// Exports a [`Source`] as the plugin's `source` world.
#[macro_export]
macro_rules! export_source {
    ($t:ty) => {
        const _: () = {
            use $crate::bindings::source::weir::plugin::types as __types;
            thread_local! {
                static __WEIR_SLOT: $crate::glue::Slot<$t> = const { $crate::glue::Slot::new() };
            }
            #[allow(dead_code)]
            struct __WeirSource;
            impl $crate::bindings::source::Guest for __WeirSource {
                fn init(config: String) -> Result<(), String> {
                    let p = $crate::glue::init(&config, <$t as $crate::connector::Source>::init)?;
                    __WEIR_SLOT.with(|s| s.set(p));
                    Ok(())
                }
                fn poll(info: __types::PollInfo) -> Result<Vec<u8>, __types::Error> {
                    let info = $crate::connector::PollInfo {
                        topic: info.topic,
                        partitions: info.partitions,
                        max: info.max,
                        now_ms: info.now_ms,
                    };
                    __WEIR_SLOT
                        .with(|s| s.with_mut(|p| $crate::connector::glue::poll(p, &info)))
                        .map_err(|e| $crate::glue::to_wit(e, __types::Error::BadInput, __types::Error::Failed))
                }
            }
            // Exported only in wasm: natively the export would define a global
            // `poll` symbol that replaces libc's (native unit tests crash).
            #[cfg(target_arch = "wasm32")]
            $crate::bindings::source::__export_source_world!(__WeirSource with_types_in $crate::bindings::source);
        };
    };
}

/// Exports a [`Sink`] as the plugin's `sink` world.
#[macro_export]
macro_rules! export_sink {
    ($t:ty) => {
        const _: () = {
            use $crate::bindings::sink::weir::plugin::types as __types;
            thread_local! {
                static __WEIR_SLOT: $crate::glue::Slot<$t> = const { $crate::glue::Slot::new() };
            }
            #[allow(dead_code)]
            struct __WeirSink;
            impl $crate::bindings::sink::Guest for __WeirSink {
                fn init(config: String) -> Result<(), String> {
                    let p = $crate::glue::init(&config, <$t as $crate::connector::Sink>::init)?;
                    __WEIR_SLOT.with(|s| s.set(p));
                    Ok(())
                }
                fn write(batch: __types::Delivery, events: Vec<u8>) -> Result<(), __types::Error> {
                    let batch = $crate::connector::Delivery {
                        topic: batch.topic,
                        partition: batch.partition,
                        offsets: batch.offsets,
                    };
                    __WEIR_SLOT
                        .with(|s| s.with_mut(|p| $crate::connector::glue::write(p, &batch, &events)))
                        .map_err(|e| $crate::glue::to_wit(e, __types::Error::BadInput, __types::Error::Failed))
                }
            }
            // Exported only in wasm: natively the export would define a global
            // `write` symbol that replaces libc's (native unit tests crash).
            #[cfg(target_arch = "wasm32")]
            $crate::bindings::sink::__export_sink_world!(__WeirSink with_types_in $crate::bindings::sink);
        };
    };
}

/// Runs connectors natively for unit tests (files work on the real file system;
/// HTTP is unavailable).
pub mod testing {
    use super::*;
    use crate::guest::testing::{TestEvent, pack};

    /// Initialises source `S` with `config`.
    pub fn source<S: Source>(config: serde_json::Value) -> std::result::Result<S, String> {
        crate::guest::glue::init(&config.to_string(), S::init)
    }

    /// Polls `source` once; the events it returned.
    pub fn poll<S: Source>(
        source: &mut S,
        info: &PollInfo,
    ) -> std::result::Result<Vec<TestEvent>, String> {
        let buf = glue::poll(source, info).map_err(|e| e.to_string())?;
        let events = crate::packed::decode(&buf).map_err(|e| e.to_string())?;
        Ok(events
            .iter()
            .map(|e| TestEvent {
                key: e.key.map(<[u8]>::to_vec),
                value: e.value.map(<[u8]>::to_vec),
                json: e.value_is_json(),
                headers: e
                    .headers()
                    .map(|(n, v)| (n.to_string(), v.to_vec()))
                    .collect(),
                timestamp_ms: e.timestamp_ms,
            })
            .collect())
    }

    /// Initialises sink `S` with `config`.
    pub fn sink<S: Sink>(config: serde_json::Value) -> std::result::Result<S, String> {
        crate::guest::glue::init(&config.to_string(), S::init)
    }

    /// Writes `events` (offsets from `first_offset`) of `topic` partition 0 to `sink`.
    pub fn write<S: Sink>(
        sink: &mut S,
        topic: &str,
        first_offset: u64,
        events: &[TestEvent],
    ) -> std::result::Result<(), String> {
        let batch = Delivery {
            topic: topic.into(),
            partition: 0,
            offsets: (first_offset..first_offset + events.len() as u64).collect(),
        };
        glue::write(sink, &batch, &pack(events)).map_err(|e| e.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_matches_the_standard() {
        assert_eq!(base64(b""), "");
        assert_eq!(base64(b"f"), "Zg==");
        assert_eq!(base64(b"fo"), "Zm8=");
        assert_eq!(base64(b"foo"), "Zm9v");
        assert_eq!(base64(&[0xff, 0x00, 0x10, 0x80]), "/wAQgA==");
    }

    #[test]
    fn events_become_json_lines() {
        let mut w = Writer::default();
        w.push(
            5,
            FLAG_VALUE_JSON,
            Some(b"k"),
            Some(br#"{"a":1}"#),
            [("h", &b"v"[..])],
        );
        w.push(6, 0, None, Some(&[0xff, 0xfe]), []);
        let buf = w.finish();
        let events = crate::packed::decode(&buf).unwrap();
        let batch = Delivery {
            topic: "t".into(),
            partition: 2,
            offsets: vec![10, 12],
        };
        assert_eq!(
            event_json(&batch, 0, &events[0]),
            r#"{"topic":"t","partition":2,"offset":10,"timestamp":5,"key":"k","value":{"a":1},"headers":{"h":"v"}}"#
        );
        assert_eq!(
            event_json(&batch, 1, &events[1]),
            r#"{"topic":"t","partition":2,"offset":12,"timestamp":6,"value_base64":"//4="}"#
        );
    }
}
