//! The plugin-facing API: traits, errors, outputs, logging, state, the export macros,
//! and the native test harness.

use std::cell::RefCell;

use crate::packed::{self, Writer};
pub use crate::packed::{Event, FLAG_VALUE_JSON, Headers};

#[doc(hidden)]
pub mod bindings {
    //! Generated bindings, one module per world. Not part of the API.
    #![allow(missing_docs, clippy::all)]

    /// The `filter` world.
    pub mod filter {
        wit_bindgen::generate!({
            path: "../wit",
            world: "filter",
            pub_export_macro: true,
            export_macro_name: "__export_filter_world",
            default_bindings_module: "weir_sdk::bindings::filter",
        });
    }

    /// The `transform` world.
    pub mod transform {
        wit_bindgen::generate!({
            path: "../wit",
            world: "transform",
            pub_export_macro: true,
            export_macro_name: "__export_transform_world",
            default_bindings_module: "weir_sdk::bindings::transform",
        });
    }

    /// The `router` world.
    pub mod router {
        wit_bindgen::generate!({
            path: "../wit",
            world: "router",
            pub_export_macro: true,
            export_macro_name: "__export_router_world",
            default_bindings_module: "weir_sdk::bindings::router",
        });
    }

    /// The `source` world.
    pub mod source {
        wit_bindgen::generate!({
            path: "../wit",
            world: "source",
            pub_export_macro: true,
            export_macro_name: "__export_source_world",
            default_bindings_module: "weir_sdk::bindings::source",
        });
    }

    /// The `sink` world.
    pub mod sink {
        wit_bindgen::generate!({
            path: "../wit",
            world: "sink",
            pub_export_macro: true,
            export_macro_name: "__export_sink_world",
            default_bindings_module: "weir_sdk::bindings::sink",
        });
    }

    /// The `acl` world.
    pub mod acl {
        wit_bindgen::generate!({
            path: "../wit",
            world: "acl",
            pub_export_macro: true,
            export_macro_name: "__export_acl_world",
            default_bindings_module: "weir_sdk::bindings::acl",
        });
    }
}

/// Why a plugin could not handle an event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Error {
    /// The event is at fault (malformed, violates a rule); retrying will not help.
    BadInput(String),
    /// The plugin failed.
    Failed(String),
}

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Error::BadInput(m) => write!(f, "bad input: {m}"),
            Error::Failed(m) => write!(f, "failed: {m}"),
        }
    }
}

impl std::error::Error for Error {}

/// Result of a plugin's per-event function.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// What the host says about the batch being processed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BatchInfo {
    /// The topic the events belong to.
    pub topic: String,
    /// Its partition count.
    pub partitions: u32,
}

/// A plugin that keeps or drops events.
pub trait Filter: Sized + 'static {
    /// The plugin's `[config]`, deserialised from JSON.
    type Config: serde::de::DeserializeOwned;
    /// Builds the plugin; an error rejects it at load.
    fn init(config: Self::Config) -> std::result::Result<Self, String>;
    /// Whether to keep `event`.
    fn keep(&self, event: &Event<'_>) -> Result<bool>;
}

/// A plugin that rewrites events: each input may produce 0..N outputs.
pub trait Transform: Sized + 'static {
    /// The plugin's `[config]`, deserialised from JSON.
    type Config: serde::de::DeserializeOwned;
    /// Builds the plugin; an error rejects it at load.
    fn init(config: Self::Config) -> std::result::Result<Self, String>;
    /// Writes the outputs for `event` into `out`.
    fn transform(&self, event: &Event<'_>, out: &mut Output) -> Result<()>;
}

/// A plugin that chooses the topics events go to.
pub trait Router: Sized + 'static {
    /// The plugin's `[config]`, deserialised from JSON.
    type Config: serde::de::DeserializeOwned;
    /// Builds the plugin; an error rejects it at load.
    fn init(config: Self::Config) -> std::result::Result<Self, String>;
    /// Adds the destinations of `event` to `routes` (none drops it).
    fn route(&self, event: &Event<'_>, info: &BatchInfo, routes: &mut Routes) -> Result<()>;
}

/// What an ACL policy is asked: may `principal` do `operation` on a resource?
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AclRequest {
    /// Who is calling (a token's principal, a JWT's subject, a client certificate's
    /// subject, or `anonymous`).
    pub principal: String,
    /// The caller's groups or roles.
    pub groups: Vec<String>,
    /// `produce`, `consume`, `commit`, `topic-admin`, `group-admin`,
    /// `plugin-admin`, `plugin-read`, `plugin-use`, `connector-admin`, `metrics`.
    pub operation: String,
    /// `topic`, `group`, `plugin` or `cluster`.
    pub resource_kind: String,
    /// The resource's name (exactly as the broker will use it).
    pub resource_name: String,
    /// Headers of the produced records, for produce requests.
    pub headers: Vec<(String, Vec<u8>)>,
}

impl AclRequest {
    /// `kind:name`, e.g. `topic:orders`.
    pub fn resource(&self) -> String {
        format!("{}:{}", self.resource_kind, self.resource_name)
    }
}

/// A verdict. `Deny` carries the reason shown to the caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Go ahead.
    Allow,
    /// Refused, with why.
    Deny(String),
}

/// A policy that authorises operations (the `acl` world).
pub trait Acl: Sized + 'static {
    /// The plugin's `[config]`, deserialised from JSON.
    type Config: serde::de::DeserializeOwned;
    /// Builds the policy; an error rejects it at load.
    fn init(config: Self::Config) -> std::result::Result<Self, String>;
    /// Decides one request.
    fn authorize(&self, request: &AclRequest) -> Decision;
}

/// The outputs a transform writes for one input event.
#[derive(Debug, Default)]
pub struct Output {
    writer: Writer,
}

impl Output {
    /// Emits `event` unchanged.
    pub fn keep(&mut self, event: &Event<'_>) {
        self.writer.push_event(event);
    }

    /// Emits a new event.
    pub fn emit<'h>(
        &mut self,
        key: Option<&[u8]>,
        value: Option<&[u8]>,
        value_is_json: bool,
        headers: impl IntoIterator<Item = (&'h str, &'h [u8])>,
        timestamp_ms: i64,
    ) {
        let flags = if value_is_json { FLAG_VALUE_JSON } else { 0 };
        self.writer.push(timestamp_ms, flags, key, value, headers);
    }

    /// Emits `event` with a new JSON value (key, headers and timestamp kept).
    pub fn emit_json(&mut self, event: &Event<'_>, value: &serde_json::Value) {
        let text = value.to_string();
        self.writer.push(
            event.timestamp_ms,
            FLAG_VALUE_JSON,
            event.key,
            Some(text.as_bytes()),
            event.headers(),
        );
    }

    fn len(&self) -> usize {
        self.writer.len()
    }
}

/// The destinations a router chooses for one event.
#[derive(Debug, Default)]
pub struct Routes {
    list: Vec<(String, Option<Vec<u8>>)>,
}

impl Routes {
    /// Sends the event to `topic`, keeping its key.
    pub fn to(&mut self, topic: impl Into<String>) {
        self.list.push((topic.into(), None));
    }

    /// Sends the event to `topic`, partitioned by `key` there.
    pub fn to_with_key(&mut self, topic: impl Into<String>, key: impl Into<Vec<u8>>) {
        self.list.push((topic.into(), Some(key.into())));
    }
}

/// One destination chosen by a router: the event's index in the batch, the topic, and
/// an optional partition key for that topic.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route {
    /// Index of the event in the batch.
    pub event: u32,
    /// Destination topic.
    pub topic: String,
    /// Partition key there, instead of the event's own.
    pub key: Option<Vec<u8>>,
}

/// Parses an event's value as JSON.
pub fn value_json(event: &Event<'_>) -> Result<serde_json::Value> {
    let v = event
        .value
        .ok_or_else(|| Error::BadInput("the event has no value".into()))?;
    serde_json::from_slice(v).map_err(|e| Error::BadInput(format!("value is not JSON: {e}")))
}

/// Logging into the broker's log, tagged with the plugin's name.
pub mod log {
    /// Log levels.
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    pub enum Level {
        /// Very detailed.
        Trace,
        /// Detailed.
        Debug,
        /// Normal.
        Info,
        /// Something looks wrong.
        Warn,
        /// Something went wrong.
        Error,
    }

    /// Writes `message` at `level`.
    pub fn write(level: Level, message: &str) {
        #[cfg(target_arch = "wasm32")]
        {
            use crate::guest::bindings::filter::weir::plugin::{host, types};
            let l = match level {
                Level::Trace => types::Level::Trace,
                Level::Debug => types::Level::Debug,
                Level::Info => types::Level::Info,
                Level::Warn => types::Level::Warn,
                Level::Error => types::Level::Error,
            };
            host::log(l, message);
        }
        #[cfg(not(target_arch = "wasm32"))]
        eprintln!("[{level:?}] {message}");
    }

    /// Info-level message.
    pub fn info(message: &str) {
        write(Level::Info, message);
    }

    /// Warn-level message.
    pub fn warn(message: &str) {
        write(Level::Warn, message);
    }
}

/// A small durable key-value state per plugin, kept by the broker (in memory when the
/// plugin runs natively under [`crate::testing`]).
pub mod state {
    #[cfg(not(target_arch = "wasm32"))]
    thread_local! {
        static NATIVE: std::cell::RefCell<std::collections::HashMap<Vec<u8>, Vec<u8>>> =
            std::cell::RefCell::default();
    }

    /// The value stored under `key`.
    pub fn get(key: &[u8]) -> Option<Vec<u8>> {
        #[cfg(target_arch = "wasm32")]
        return crate::guest::bindings::filter::weir::plugin::host::state_get(key);
        #[cfg(not(target_arch = "wasm32"))]
        NATIVE.with(|m| m.borrow().get(key).cloned())
    }

    /// Stores `value` under `key`.
    pub fn set(key: &[u8], value: &[u8]) {
        #[cfg(target_arch = "wasm32")]
        crate::guest::bindings::filter::weir::plugin::host::state_set(key, value);
        #[cfg(not(target_arch = "wasm32"))]
        NATIVE.with(|m| m.borrow_mut().insert(key.to_vec(), value.to_vec()));
    }

    /// Removes `key`.
    pub fn delete(key: &[u8]) {
        #[cfg(target_arch = "wasm32")]
        crate::guest::bindings::filter::weir::plugin::host::state_delete(key);
        #[cfg(not(target_arch = "wasm32"))]
        NATIVE.with(|m| m.borrow_mut().remove(key));
    }
}

/// Glue between the generated bindings and the traits. Not part of the API.
#[doc(hidden)]
pub mod glue {
    use super::*;

    /// Deserialises the init config JSON (an absent `[config]` is `{}`).
    pub fn config<C: serde::de::DeserializeOwned>(json: &str) -> std::result::Result<C, String> {
        let json = if json.trim().is_empty() { "{}" } else { json };
        serde_json::from_str(json).map_err(|e| format!("invalid config: {e}"))
    }

    /// Deserialises the config and builds the plugin with it.
    pub fn init<C: serde::de::DeserializeOwned, T>(
        json: &str,
        build: fn(C) -> std::result::Result<T, String>,
    ) -> std::result::Result<T, String> {
        build(config(json)?)
    }

    /// Maps an SDK error onto a world's generated error type.
    pub fn to_wit<E>(e: Error, bad_input: fn(String) -> E, failed: fn(String) -> E) -> E {
        match e {
            Error::BadInput(m) => bad_input(m),
            Error::Failed(m) => failed(m),
        }
    }

    /// Decodes a packed batch; a malformed one is the host's fault, reported as such.
    pub fn events(buf: &[u8]) -> Result<Vec<Event<'_>>> {
        packed::decode(buf).map_err(|e| Error::Failed(e.to_string()))
    }

    /// Runs a filter over a packed batch.
    pub fn filter<F: Filter>(f: &F, buf: &[u8]) -> Result<Vec<bool>> {
        events(buf)?.iter().map(|e| f.keep(e)).collect()
    }

    /// Runs a transform over a packed batch: packed outputs and per-input counts.
    pub fn transform<T: Transform>(t: &T, buf: &[u8]) -> Result<(Vec<u8>, Vec<u32>)> {
        let events = events(buf)?;
        let mut out = Output {
            writer: Writer::with_capacity(buf.len()),
        };
        let mut counts = Vec::with_capacity(events.len());
        for e in &events {
            let before = out.len();
            t.transform(e, &mut out)?;
            counts.push((out.len() - before) as u32);
        }
        Ok((out.writer.finish(), counts))
    }

    /// Runs a router over a packed batch: `(event index, topic, key)` per destination.
    pub fn route<R: Router>(r: &R, info: &BatchInfo, buf: &[u8]) -> Result<Vec<Route>> {
        let mut out = Vec::new();
        for (i, e) in events(buf)?.iter().enumerate() {
            let mut routes = Routes::default();
            r.route(e, info, &mut routes)?;
            out.extend(routes.list.into_iter().map(|(topic, key)| Route {
                event: i as u32,
                topic,
                key,
            }));
        }
        Ok(out)
    }

    /// Holds the plugin instance between calls (a component instance is
    /// single-threaded).
    pub struct Slot<T>(RefCell<Option<T>>);

    impl<T> Slot<T> {
        /// An empty slot.
        pub const fn new() -> Self {
            Slot(RefCell::new(None))
        }
        /// Stores the instance.
        pub fn set(&self, t: T) {
            *self.0.borrow_mut() = Some(t);
        }
        /// Runs `f` with the instance.
        pub fn with<R>(&self, f: impl FnOnce(&T) -> Result<R>) -> Result<R> {
            match self.0.borrow().as_ref() {
                Some(t) => f(t),
                None => Err(Error::Failed("called before init".into())),
            }
        }

        /// Runs `f` with the instance, mutably (connectors keep state between calls).
        pub fn with_mut<R>(&self, f: impl FnOnce(&mut T) -> Result<R>) -> Result<R> {
            match self.0.borrow_mut().as_mut() {
                Some(t) => f(t),
                None => Err(Error::Failed("called before init".into())),
            }
        }
    }

    impl<T> Default for Slot<T> {
        fn default() -> Self {
            Self::new()
        }
    }
}

/// Exports a [`Filter`] as the plugin's `filter` world.
#[macro_export]
macro_rules! export_filter {
    ($t:ty) => {
        const _: () = {
            use $crate::bindings::filter::weir::plugin::types as __types;
            thread_local! {
                static __WEIR_SLOT: $crate::glue::Slot<$t> = const { $crate::glue::Slot::new() };
            }
            struct __WeirFilter;
            impl $crate::bindings::filter::Guest for __WeirFilter {
                fn init(config: String) -> Result<(), String> {
                    let p = $crate::glue::init(&config, <$t as $crate::Filter>::init)?;
                    __WEIR_SLOT.with(|s| s.set(p));
                    Ok(())
                }
                fn filter(_info: __types::BatchInfo, events: Vec<u8>) -> Result<Vec<bool>, __types::Error> {
                    __WEIR_SLOT
                        .with(|s| s.with(|p| $crate::glue::filter(p, &events)))
                        .map_err(|e| $crate::glue::to_wit(e, __types::Error::BadInput, __types::Error::Failed))
                }
            }
            $crate::bindings::filter::__export_filter_world!(__WeirFilter with_types_in $crate::bindings::filter);
        };
    };
}

/// Exports a [`Transform`] as the plugin's `transform` world.
#[macro_export]
macro_rules! export_transform {
    ($t:ty) => {
        const _: () = {
            use $crate::bindings::transform::weir::plugin::types as __types;
            thread_local! {
                static __WEIR_SLOT: $crate::glue::Slot<$t> = const { $crate::glue::Slot::new() };
            }
            struct __WeirTransform;
            impl $crate::bindings::transform::Guest for __WeirTransform {
                fn init(config: String) -> Result<(), String> {
                    let p = $crate::glue::init(&config, <$t as $crate::Transform>::init)?;
                    __WEIR_SLOT.with(|s| s.set(p));
                    Ok(())
                }
                fn transform(
                    _info: __types::BatchInfo,
                    events: Vec<u8>,
                ) -> Result<__types::Transformed, __types::Error> {
                    __WEIR_SLOT
                        .with(|s| s.with(|p| $crate::glue::transform(p, &events)))
                        .map(|(events, counts)| __types::Transformed { events, counts })
                        .map_err(|e| $crate::glue::to_wit(e, __types::Error::BadInput, __types::Error::Failed))
                }
            }
            $crate::bindings::transform::__export_transform_world!(__WeirTransform with_types_in $crate::bindings::transform);
        };
    };
}

/// Exports a [`Router`] as the plugin's `router` world.
#[macro_export]
macro_rules! export_router {
    ($t:ty) => {
        const _: () = {
            use $crate::bindings::router::weir::plugin::types as __types;
            thread_local! {
                static __WEIR_SLOT: $crate::glue::Slot<$t> = const { $crate::glue::Slot::new() };
            }
            struct __WeirRouter;
            impl $crate::bindings::router::Guest for __WeirRouter {
                fn init(config: String) -> Result<(), String> {
                    let p = $crate::glue::init(&config, <$t as $crate::Router>::init)?;
                    __WEIR_SLOT.with(|s| s.set(p));
                    Ok(())
                }
                fn route(
                    info: __types::BatchInfo,
                    events: Vec<u8>,
                ) -> Result<Vec<__types::Destination>, __types::Error> {
                    let info = $crate::BatchInfo { topic: info.topic, partitions: info.partitions };
                    __WEIR_SLOT
                        .with(|s| s.with(|p| $crate::glue::route(p, &info, &events)))
                        .map(|list| {
                            list.into_iter()
                                .map(|r| __types::Destination { event: r.event, topic: r.topic, key: r.key })
                                .collect()
                        })
                        .map_err(|e| $crate::glue::to_wit(e, __types::Error::BadInput, __types::Error::Failed))
                }
            }
            $crate::bindings::router::__export_router_world!(__WeirRouter with_types_in $crate::bindings::router);
        };
    };
}

/// Exports an [`Acl`] as the plugin's `acl` world.
#[macro_export]
macro_rules! export_acl {
    ($t:ty) => {
        const _: () = {
            use $crate::bindings::acl::weir::plugin::types as __types;
            thread_local! {
                static __WEIR_SLOT: $crate::glue::Slot<$t> = const { $crate::glue::Slot::new() };
            }
            struct __WeirAcl;
            impl $crate::bindings::acl::Guest for __WeirAcl {
                fn init(config: String) -> Result<(), String> {
                    let p = $crate::glue::init(&config, <$t as $crate::Acl>::init)?;
                    __WEIR_SLOT.with(|s| s.set(p));
                    Ok(())
                }
                fn authorize(r: __types::AclRequest) -> __types::Decision {
                    let request = $crate::AclRequest {
                        principal: r.principal,
                        groups: r.groups,
                        operation: r.operation,
                        resource_kind: r.resource_kind,
                        resource_name: r.resource_name,
                        headers: r.headers,
                    };
                    let verdict = __WEIR_SLOT.with(|s| {
                        s.with(|p| Ok(<$t as $crate::Acl>::authorize(p, &request)))
                    });
                    match verdict {
                        Ok($crate::Decision::Allow) => __types::Decision::Allow,
                        Ok($crate::Decision::Deny(why)) => __types::Decision::Deny(why),
                        Err(e) => __types::Decision::Deny(e.to_string()),
                    }
                }
            }
            $crate::bindings::acl::__export_acl_world!(__WeirAcl with_types_in $crate::bindings::acl);
        };
    };
}

/// Runs plugins natively, without WASM, for unit tests of their logic.
pub mod testing {
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
}
