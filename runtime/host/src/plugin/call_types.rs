//! What plugin calls take and return, in the host's own types (the bindings' types
//! stay inside the host).

/// What a source is told when it is polled.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PollInfo {
    /// The topic it publishes to.
    pub topic: String,
    /// That topic's partition count.
    pub partitions: u32,
    /// Most events to return.
    pub max: u32,
    /// The broker's clock (ms since the epoch).
    pub now_ms: i64,
}

/// What a poll returned.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Polled {
    /// Packed events.
    pub events: Vec<u8>,
    /// How many.
    pub count: usize,
    /// State writes made during the poll (`None` deletes), to commit with the events.
    pub state: Vec<(Vec<u8>, Option<Vec<u8>>)>,
}

/// Where a sink's events come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivery {
    /// Topic.
    pub topic: String,
    /// Partition.
    pub partition: u32,
    /// Each event's offset, ascending.
    pub offsets: Vec<u64>,
}

/// What the host tells a plugin about a batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BatchInfo {
    /// Topic of the batch.
    pub topic: String,
    /// Its partition count.
    pub partitions: u32,
}

/// A destination chosen by a router.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Destination {
    /// Index of the event in the batch.
    pub event: u32,
    /// Destination topic.
    pub topic: String,
    /// Partition key to use there, instead of the event's own.
    pub key: Option<Vec<u8>>,
}

/// What an ACL policy is asked (see the `acl` world).
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct AclRequest {
    /// Who is calling.
    pub principal: String,
    /// The caller's groups or roles.
    pub groups: Vec<String>,
    /// The operation (`produce`, `consume`, ...).
    pub operation: String,
    /// `topic`, `group`, `plugin` or `cluster`.
    pub resource_kind: String,
    /// The resource's name.
    pub resource_name: String,
    /// Headers of produced records, when given.
    pub headers: Vec<(String, Vec<u8>)>,
}

/// An ACL policy's verdict.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Allowed.
    Allow,
    /// Denied, with the reason.
    Deny(String),
}

/// A transform's outputs: packed events and per-input counts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transformed {
    /// Packed output events.
    pub events: Vec<u8>,
    /// Outputs per input event, in order.
    pub counts: Vec<u32>,
}

/// An event-time window, `[start_ms, end_ms)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Window {
    /// First millisecond in it.
    pub start_ms: i64,
    /// First millisecond after it.
    pub end_ms: i64,
}

/// What a processor is told about a batch: one partition of one input topic.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProcessInfo {
    /// Input topic.
    pub topic: String,
    /// Input partition.
    pub partition: u32,
    /// The topic's partition count.
    pub partitions: u32,
    /// The broker's clock (ms since the epoch).
    pub now_ms: i64,
}

/// A window an event of a batch counts in (see the `processor` world).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EventWindow {
    /// The event's index in the batch.
    pub event: u32,
    /// The window.
    pub window: Window,
    /// A session the event merged into its own window.
    pub merged: bool,
}

/// The on-time events a processor is handed: packed, with each one's time and the
/// windows it counts in (grouped by event, in order).
#[derive(Debug, Clone, Copy)]
pub struct OnTime<'a> {
    /// Packed events.
    pub events: &'a [u8],
    /// Each event's time (ms).
    pub times: &'a [i64],
    /// Their windows.
    pub windows: &'a [EventWindow],
}

/// A record a processor emitted.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Emitted {
    /// Output topic.
    pub topic: String,
    /// Key.
    pub key: Option<Vec<u8>>,
    /// Value.
    pub value: Option<Vec<u8>>,
    /// The value is JSON text.
    pub json: bool,
    /// Headers.
    pub headers: Vec<(String, Vec<u8>)>,
    /// The window whose result it is.
    pub window: Option<Window>,
}
