//! weir-host: runs Weir's WASM plugins. Knows nothing of sled or HTTP.
//!
//! - [`engine`]: the wasmtime engine (component model, Cranelift, epoch clock).
//! - [`manifest`]: the `plugin.toml` of a plugin folder.
//! - [`limits`]: what one instance may hold (core instances, tables, memories, memory
//!   in total), counted from the component at load and enforced at run time.
//! - [`plugin`]: loading (compile once, pre-link, type-check against the declared
//!   world, `init`), pooled instances, calls under a deadline and a memory cap.
//! - [`state`]: the per-plugin key-value state the broker provides.
//! - [`registry`]: the loaded plugins by name, with counters and last error.
//! - [`health`]: quarantine of plugins that keep failing.
//! - [`history`]: each plugin's versions, and the probation of a new one.
//! - [`reload`]: follows the plugin directory (hot reload), deploys and rollbacks.
//! - `wasi`: the WASI 0.2 subset language runtimes start with, granting nothing;
//!   stdout and stderr as rate-limited log lines.
//! - `bindings`: generated from `wit/`, one module per world.
//!
//! Events cross the boundary as one packed buffer per batch ([`packed`], the SDK's
//! codec, so host and guests share one implementation of the format).

mod bindings;
pub mod engine;
mod error;
mod grants;
pub mod health;
pub mod history;
pub mod limits;
pub mod manifest;
pub mod plugin;
pub mod registry;
pub mod reload;
pub mod state;
mod wasi;

pub use engine::Engine;
pub use error::{PluginError, Result};
pub use grants::GrantBounds;
pub use health::HealthPolicy;
pub use history::{Origin, Outcome, ProbationPolicy};
pub use manifest::Attachment;
pub use manifest::{
    ConnectorSettings, EventTime, Grants, Kind, LateEvents, Manifest, OnFailure, ProcessorSettings,
    Reach, RouterSettings, WindowSpec,
};
pub use plugin::{
    AclRequest, BatchInfo, Decision, Delivery, Destination, Emitted, EventWindow, OnTime, Plugin,
    PluginFiles, PollInfo, Polled, ProcessInfo, Transformed, Window,
};
pub use registry::{CallKind, PluginStatus, PolicyAction, Registry, Rejected, Slot};
pub use reload::Reloader;
pub use state::{KeyedState, MemoryState, PluginState};
pub use weir_sdk::packed;
