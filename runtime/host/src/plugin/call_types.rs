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
