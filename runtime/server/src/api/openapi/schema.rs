//! The JSON Schemas of the API's parameters and bodies: what the handlers accept,
//! written once. The integration test `openapi_and_server_agree` derives a valid and
//! an invalid request from each and checks the server answers accordingly, so a
//! constraint here that the server does not enforce (or the reverse) fails it.

use serde_json::{Value, json};

/// A parameter's type and constraints.
#[derive(Debug, Clone, Copy)]
pub(super) enum Schema {
    /// A topic or group name: Kafka's rule.
    Name,
    /// A plugin name: letters, digits, `.`, `_`, `-`, not starting with `.`.
    PluginName,
    /// Any non-empty string.
    Text,
    /// A non-negative integer (`u32` or `u64`).
    Count { max: u64 },
    /// A signed 64-bit integer.
    Int,
    /// An integer in a range.
    Range(u64, u64),
    /// One of these words.
    Word(&'static [&'static str]),
    /// An offset: a number, `earliest` or `latest`.
    Offset,
    /// `earliest`, `latest` or `<partition>:<offset>,...`.
    Positions,
    /// A JSON object, as text.
    JsonObject,
}

/// Kafka's naming rule for topics and groups (storage's `is_valid_name`).
const NAME_PATTERN: &str = "^[A-Za-z0-9._-]+$";

impl Schema {
    pub(super) fn json(self) -> Value {
        match self {
            Schema::Name => json!({
                "type": "string", "pattern": NAME_PATTERN, "minLength": 1, "maxLength": 249,
                "not": { "enum": [".", ".."] },
            }),
            Schema::PluginName => json!({
                "type": "string", "pattern": "^[A-Za-z0-9_-][A-Za-z0-9._-]*$",
            }),
            Schema::Text => json!({ "type": "string", "minLength": 1 }),
            Schema::Count { max } => json!({ "type": "integer", "minimum": 0, "maximum": max }),
            Schema::Int => json!({ "type": "integer", "minimum": i64::MIN, "maximum": i64::MAX }),
            Schema::Range(min, max) => json!({ "type": "integer", "minimum": min, "maximum": max }),
            Schema::Word(words) => json!({ "type": "string", "enum": words }),
            Schema::Offset => json!({
                "oneOf": [
                    { "type": "integer", "minimum": 0, "maximum": u64::MAX },
                    { "type": "string", "enum": ["earliest", "latest"] },
                ],
            }),
            Schema::Positions => json!({
                "type": "string",
                "pattern": "^(earliest|latest|[0-9]+:[0-9]+(,[0-9]+:[0-9]+)*)$",
            }),
            Schema::JsonObject => json!({
                "type": "string", "contentMediaType": "application/json",
                "contentSchema": { "type": "object" },
            }),
        }
    }
}

/// `PUT /v1/topics/{topic}`.
pub(super) fn topic_config() -> Value {
    json!({
        "type": "object",
        "additionalProperties": false,
        "required": ["partitions"],
        "properties": {
            "partitions": { "type": "integer", "minimum": 1, "maximum": weir_broker::MAX_PARTITIONS },
            "retention_ms": { "type": "integer", "minimum": 1 },
            "retention_bytes": { "type": "integer", "minimum": 1 },
            "cleanup_policy": { "type": "string", "enum": ["delete", "compact"] },
            "pipeline": pipeline_steps(),
        },
    })
}

/// A pipeline: its steps in order.
pub(super) fn pipeline_steps() -> Value {
    json!({
        "type": "array",
        "items": {
            "type": "object",
            "additionalProperties": false,
            "required": ["plugin"],
            "properties": {
                "plugin": { "type": "string", "minLength": 1 },
                "on_error": { "type": "string", "enum": ["reject", "skip", "dead_letter"] },
                "dead_letter_topic": Schema::Name.json(),
                "destinations": { "type": "array", "items": Schema::Name.json() },
            },
        },
    })
}

/// `POST /v1/topics/{topic}/records` as JSON.
pub(super) fn records() -> Value {
    json!({
        "type": "object",
        "additionalProperties": false,
        "required": ["records"],
        "properties": {
            "records": {
                "type": "array",
                "items": {
                    "type": "object",
                    "additionalProperties": false,
                    "properties": {
                        "key": { "type": "string" },
                        "value": { "description": "Any JSON value" },
                        "value_base64": { "type": "string", "contentEncoding": "base64" },
                        "headers": { "type": "object", "additionalProperties": { "type": "string" } },
                        "partition": { "type": "integer", "minimum": 0, "maximum": u32::MAX },
                    },
                    "not": { "required": ["value", "value_base64"] },
                },
            },
        },
    })
}

/// `POST /v1/groups/{group}/offsets`.
pub(super) fn commit() -> Value {
    json!({
        "type": "object",
        "additionalProperties": false,
        "required": ["offsets"],
        "properties": {
            "member": { "type": "string", "minLength": 1 },
            "offsets": {
                "type": "array",
                "items": {
                    "type": "object",
                    "additionalProperties": false,
                    "required": ["topic", "partition", "offset"],
                    "properties": {
                        "topic": Schema::Name.json(),
                        "partition": { "type": "integer", "minimum": 0, "maximum": u32::MAX },
                        "offset": { "type": "integer", "minimum": 0, "maximum": u64::MAX },
                    },
                },
            },
        },
    })
}

/// `POST /v1/groups/{group}/offsets/reset`: a topic and exactly one target.
pub(super) fn reset() -> Value {
    let target = |name: &str, schema: Value| json!({ "required": ["topic", name], "properties": { name: schema } });
    json!({
        "type": "object",
        "additionalProperties": false,
        "required": ["topic"],
        "properties": {
            "topic": Schema::Name.json(),
            "partitions": { "type": "array", "items": { "type": "integer", "minimum": 0, "maximum": u32::MAX } },
            "to": { "type": "string", "enum": ["earliest", "latest"] },
            "offset": { "type": "integer", "minimum": 0, "maximum": u64::MAX },
            "timestamp_ms": { "type": "integer" },
        },
        "oneOf": [
            target("to", json!({ "type": "string", "enum": ["earliest", "latest"] })),
            target("offset", json!({ "type": "integer", "minimum": 0 })),
            target("timestamp_ms", json!({ "type": "integer" })),
        ],
    })
}

/// `POST /v1/plugins/{name}/replays`: source and target required.
pub(super) fn replay() -> Value {
    let position = json!({ "oneOf": [
        { "type": "integer", "minimum": 0 },
        { "type": "string", "enum": ["earliest", "latest"] },
    ] });
    json!({
        "type": "object",
        "additionalProperties": false,
        "required": ["topic", "into"],
        "properties": {
            "topic": Schema::Name.json(),
            "into": Schema::Name.json(),
            "version": { "type": "string", "description": "a loaded version's hash or a prefix of it (default: the serving one)" },
            "from": position,
            "to": position,
            "from_time_ms": { "type": "integer" },
            "to_time_ms": { "type": "integer" },
            "max_rate": { "type": "integer", "minimum": 0, "description": "most records read per second" },
        },
    })
}

/// `PUT /v1/plugins/{name}`: both parts required.
pub(super) fn deploy() -> Value {
    json!({
        "type": "object",
        "required": ["manifest", "component"],
        "properties": {
            "manifest": { "type": "string", "description": "plugin.toml" },
            "component": { "type": "string", "contentMediaType": "application/wasm" },
        },
    })
}
