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

    /// The `processor` world.
    pub mod processor {
        wit_bindgen::generate!({
            path: "../wit",
            world: "processor",
            pub_export_macro: true,
            export_macro_name: "__export_processor_world",
            default_bindings_module: "weir_sdk::bindings::processor",
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
pub mod glue;

/// Runs plugins natively, without WASM, for unit tests of their logic.
pub mod testing;
