//! Runs plugins natively, without WASM, for unit tests of their logic.

use super::*;

/// An event to feed a plugin under test.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TestEvent {
    /// Key.
    pub key: Option<Vec<u8>>,
    /// Value.
    pub value: Option<Vec<u8>>,
    /// Whether the value is JSON text.
    pub json: bool,
    /// Headers.
    pub headers: Vec<(String, Vec<u8>)>,
    /// Timestamp.
    pub timestamp_ms: i64,
}

impl TestEvent {
    /// An event with a JSON value.
    pub fn json(value: serde_json::Value) -> Self {
        TestEvent {
            value: Some(value.to_string().into_bytes()),
            json: true,
            ..TestEvent::default()
        }
    }

    /// Adds a header.
    pub fn header(mut self, name: &str, value: &str) -> Self {
        self.headers.push((name.into(), value.as_bytes().to_vec()));
        self
    }

    /// Sets the key.
    pub fn key(mut self, key: &str) -> Self {
        self.key = Some(key.as_bytes().to_vec());
        self
    }
}

/// Packs events the way the host does.
pub fn pack(events: &[TestEvent]) -> Vec<u8> {
    let mut w = Writer::default();
    for e in events {
        w.push(
            e.timestamp_ms,
            if e.json { FLAG_VALUE_JSON } else { 0 },
            e.key.as_deref(),
            e.value.as_deref(),
            e.headers.iter().map(|(n, v)| (n.as_str(), v.as_slice())),
        );
    }
    w.finish()
}

/// Initialises filter `F` with `config` and runs it over `events`.
pub fn run_filter<F: Filter>(
    config: serde_json::Value,
    events: &[TestEvent],
) -> std::result::Result<Vec<bool>, String> {
    let f = glue::init(&config.to_string(), F::init)?;
    glue::filter(&f, &pack(events)).map_err(|e| e.to_string())
}

/// Initialises transform `T` with `config` and runs it over `events`; returns the
/// outputs of each input.
pub fn run_transform<T: Transform>(
    config: serde_json::Value,
    events: &[TestEvent],
) -> std::result::Result<Vec<Vec<TestEvent>>, String> {
    let t = glue::init(&config.to_string(), T::init)?;
    let (buf, counts) = glue::transform(&t, &pack(events)).map_err(|e| e.to_string())?;
    let outputs = packed::decode(&buf).map_err(|e| e.to_string())?;
    let mut it = outputs.iter();
    Ok(counts
        .iter()
        .map(|n| {
            (0..*n)
                .filter_map(|_| it.next())
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
                .collect()
        })
        .collect())
}

/// Initialises policy `A` with `config` and asks it `request`.
pub fn run_acl<A: Acl>(
    config: serde_json::Value,
    request: &AclRequest,
) -> std::result::Result<Decision, String> {
    let a = glue::init(&config.to_string(), A::init)?;
    Ok(a.authorize(request))
}

/// Initialises router `R` with `config` and runs it over `events` published to
/// `topic`; returns every destination.
pub fn run_router<R: Router>(
    config: serde_json::Value,
    topic: &str,
    events: &[TestEvent],
) -> std::result::Result<Vec<Route>, String> {
    let r = glue::init(&config.to_string(), R::init)?;
    let info = BatchInfo {
        topic: topic.into(),
        partitions: 1,
    };
    glue::route(&r, &info, &pack(events)).map_err(|e| e.to_string())
}
