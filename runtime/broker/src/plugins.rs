//! The plugin host as the broker's users see it: loading, reloading and calling
//! plugins, their manifests, status and errors, and the packed batch codec. The
//! server deploys and reports plugins through these; the connector runtime calls
//! sources and sinks with them. The host itself (wasmtime, instances) stays behind.

pub use weir_host::history::{Entry, Origin as HistoryOrigin, Outcome as HistoryOutcome};
pub use weir_host::manifest::{
    Attachment, GROUP_PREFIX as PROCESSOR_GROUP_PREFIX, is_host_grant, is_plain_absolute,
    is_valid_plugin_name,
};
pub use weir_host::registry::LastError;
pub use weir_host::registry::canary::{Canary, CanarySettings, CanaryVerdict, Tally};
pub use weir_host::registry::shadow::{Difference, Shadow, ShadowReport, ShadowSettings};
pub use weir_host::reload::{Outcome, WatchOptions};
pub use weir_host::{
    AclRequest, BatchInfo, CallKind, ConnectorSettings, Decision, Delivery, Engine, EventTime,
    GrantBounds, HealthPolicy, Kind, LateEvents, Manifest, MemoryState, OnFailure, Plugin,
    PluginError, PluginFiles, PluginStatus, PollInfo, Polled, ProbationPolicy, ProcessorSettings,
    Registry, Reloader, Slot, WindowSpec, packed,
};
