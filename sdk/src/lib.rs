//! # weir-sdk: Weir plugins in Rust
//!
//! A Weir plugin is a WebAssembly component that the broker runs in-line on a topic.
//! With this crate you write one trait implementation per plugin and register it with
//! one macro; the SDK receives whole batches from the host (one call per batch, one
//! packed buffer), decodes them without copying and calls your per-event function.
//!
//! ```no_run
//! use weir_sdk::{Event, Filter, Result};
//!
//! /// Keeps events whose value mentions a word.
//! struct Contains {
//!     word: String,
//! }
//!
//! #[derive(serde::Deserialize)]
//! struct Config {
//!     word: String,
//! }
//!
//! impl Filter for Contains {
//!     type Config = Config;
//!
//!     fn init(config: Config) -> std::result::Result<Self, String> {
//!         if config.word.is_empty() {
//!             return Err("word must not be empty".into());
//!         }
//!         Ok(Contains { word: config.word })
//!     }
//!
//!     fn keep(&self, event: &Event<'_>) -> Result<bool> {
//!         Ok(event.value_str().is_some_and(|v| v.contains(&self.word)))
//!     }
//! }
//!
//! weir_sdk::export_filter!(Contains);
//! ```
//!
//! - Filters ([`Filter`]) keep or drop events; transforms ([`Transform`]) emit 0..N
//!   events per input and may rewrite key, value and headers; routers ([`Router`])
//!   choose destination topics; ACL policies ([`Acl`]) allow or deny operations.
//! - `init` receives the plugin's `[config]` table from `plugin.toml`, deserialised
//!   into your own `Config` type; an `Err` rejects the plugin at load.
//! - Return [`Error::BadInput`] when an event is at fault (the pipeline applies the
//!   attachment's error policy to it) and [`Error::Failed`] when the plugin is.
//! - [`log`] writes to the broker's log; [`state`] is a small durable key-value store
//!   the broker keeps per plugin.
//! - [`json::Pointer`] finds a field of a JSON value without parsing it into a tree
//!   (a scan instead of an allocation per key and string).
//! - Connectors: [`connector::Source`] and [`connector::Sink`] with
//!   [`export_source!`] and [`export_sink!`]; they reach only what their manifest
//!   grants, through [`connector::http`] and [`connector::files`].
//! - Processors: [`processor::Processor`] with [`export_processor!`] consume topics on
//!   their own with keyed state ([`processor::state`]), event-time windows and
//!   timers; a batch's outputs, state and offsets are stored in one atomic write.
//! - [`testing`] runs a plugin natively, so its logic is unit-tested with `cargo test`.
//!
//! Plugins are built for `wasm32-unknown-unknown` and import nothing but Weir's `host`
//! interface: no file system, no network, no clock. Connectors add the `http` and
//! `files` interfaces, limited to their manifest's `[grants]`.

#![deny(missing_docs)]

pub mod packed;

#[cfg(feature = "guest")]
pub mod connector;
#[cfg(feature = "guest")]
mod guest;
#[cfg(feature = "guest")]
pub mod json;
#[cfg(feature = "guest")]
pub mod processor;
#[cfg(feature = "guest")]
pub use guest::*;
