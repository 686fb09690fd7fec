//! The API's operations, one entry each: the table `/openapi.json` is built from. A
//! unit test holds it equal to the router; an integration test holds its parameter
//! and body schemas equal to what the handlers accept.

use serde_json::{Value, json};

use super::schema::{self, Schema};

/// Where a parameter goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum In {
    Path,
    Query,
    Header,
}

/// One parameter: path parameters are always required.
#[derive(Debug, Clone, Copy)]
pub(super) struct Param {
    pub name: &'static str,
    pub place: In,
    pub description: &'static str,
    pub schema: Schema,
    /// A value the server accepts.
    pub example: &'static str,
    /// Required in the query.
    pub required: bool,
}

const fn path(
    name: &'static str,
    description: &'static str,
    schema: Schema,
    example: &'static str,
) -> Param {
    Param {
        name,
        place: In::Path,
        description,
        schema,
        example,
        required: true,
    }
}

const fn query(
    name: &'static str,
    description: &'static str,
    schema: Schema,
    example: &'static str,
) -> Param {
    Param {
        name,
        place: In::Query,
        description,
        schema,
        example,
        required: false,
    }
}

const fn header(
    name: &'static str,
    description: &'static str,
    schema: Schema,
    example: &'static str,
) -> Param {
    Param {
        name,
        place: In::Header,
        description,
        schema,
        example,
        required: false,
    }
}

const fn required(p: Param) -> Param {
    Param {
        required: true,
        ..p
    }
}

/// A request body: its media types, schema and an example the server accepts.
pub(super) struct Body {
    pub media: &'static [&'static str],
    pub schema: fn() -> Value,
    pub example: fn() -> Value,
}

/// One operation of the API.
pub(super) struct Operation {
    pub method: &'static str,
    pub path: &'static str,
    pub tag: &'static str,
    pub summary: &'static str,
    pub params: &'static [Param],
    pub body: Option<Body>,
    /// Success status and what it returns.
    pub ok: (u16, &'static str),
}

const U32: Schema = Schema::Count {
    max: u32::MAX as u64,
};
const U64: Schema = Schema::Count { max: u64::MAX };

const TOPIC: Param = path("topic", "Topic name", Schema::Name, "orders");
const GROUP: Param = path("group", "Consumer group name", Schema::Name, "billing");
const PLUGIN: Param = path("name", "Plugin name", Schema::PluginName, "hello-filter");
const CONNECTOR: Param = path("name", "Connector name", Schema::PluginName, "gen");
const PROCESSOR: Param = path("name", "Processor name", Schema::PluginName, "window-count");
const FILTER: Param = query(
    "filter",
    "A filter or transform plugin run on what is read",
    Schema::Text,
    "hello-filter",
);
const FILTER_CONFIG: Param = query(
    "filter_config",
    "JSON object replacing the filter's config",
    Schema::JsonObject,
    "{\"word\":\"hello\"}",
);
const MAX_RECORDS: Param = query(
    "max_records",
    "Most records returned (default 1000; 0 reads nothing and moves nothing)",
    U64,
    "10",
);
const MAX_BYTES: Param = query(
    "max_bytes",
    "Stop after this many bytes (default 4 MiB); at least one record is returned",
    U64,
    "65536",
);
const TIMEOUT_MS: Param = query(
    "timeout_ms",
    "Wait up to this long at the end of the log",
    U64,
    "0",
);
const MEMBER_Q: Param = query("member", "Member id", Schema::Text, "m-1");
const RESET: Param = query(
    "auto_offset_reset",
    "Where a group without offsets starts",
    Schema::Word(&["earliest", "latest"]),
    "earliest",
);

mod plugins;

/// Every operation of the API, in the document's order.
pub(super) fn all() -> impl Iterator<Item = &'static Operation> {
    CORE.iter().chain(plugins::PLUGINS)
}

fn none() -> Value {
    Value::Null
}

/// The topic, record, group and server operations; [`plugins::PLUGINS`] has the
/// plugin, connector and processor ones.
const CORE: &[Operation] = &[
    Operation {
        method: "get",
        path: "/healthz",
        tag: "health",
        summary: "200 while the process is alive",
        params: &[],
        body: None,
        ok: (200, "`{\"status\":\"ok\"}`"),
    },
    Operation {
        method: "get",
        path: "/readyz",
        tag: "health",
        summary: "200 once storage is open; 503 not_ready after a failed flush",
        params: &[],
        body: None,
        ok: (200, "Ready"),
    },
    Operation {
        method: "get",
        path: "/metrics",
        tag: "health",
        summary: "Prometheus / OpenMetrics text exposition",
        params: &[],
        body: None,
        ok: (200, "OpenMetrics text"),
    },
    Operation {
        method: "get",
        path: "/openapi.json",
        tag: "health",
        summary: "This description",
        params: &[],
        body: None,
        ok: (200, "OpenAPI 3.1 document"),
    },
    Operation {
        method: "get",
        path: "/ui",
        tag: "health",
        summary: "The web console (a page; its data comes from /v1/overview/stream and the events stream)",
        params: &[],
        body: None,
        ok: (200, "text/html"),
    },
    Operation {
        method: "get",
        path: "/v1/overview",
        tag: "health",
        summary: "Topics, groups with lag, plugins, connectors and health in one document",
        params: &[],
        body: None,
        ok: (200, "The overview"),
    },
    Operation {
        method: "get",
        path: "/v1/cluster",
        tag: "health",
        summary: "Cluster mode: every Weir node, live or silent, the plugin versions it serves, what it refused and the connectors it runs (404 not_clustered on the embedded store)",
        params: &[],
        body: None,
        ok: (200, "The nodes"),
    },
    Operation {
        method: "get",
        path: "/v1/overview/stream",
        tag: "health",
        summary: "Server-Sent Events: the overview every second (`event: overview`)",
        params: &[query(
            "interval_ms",
            "Milliseconds between documents (default 1000)",
            Schema::Range(200, 60_000),
            "1000",
        )],
        body: None,
        ok: (200, "text/event-stream"),
    },
    Operation {
        method: "get",
        path: "/v1/topics",
        tag: "topics",
        summary: "List topics",
        params: &[],
        body: None,
        ok: (200, "`{\"topics\":[...]}`"),
    },
    Operation {
        method: "put",
        path: "/v1/topics/{topic}",
        tag: "topics",
        summary: "Create a topic (`partitions`, `retention_ms`, `retention_bytes`, `cleanup_policy`, `pipeline`)",
        params: &[TOPIC],
        body: Some(Body {
            media: &["application/json"],
            schema: schema::topic_config,
            example: || json!({ "partitions": 1 }),
        }),
        ok: (201, "Created; 200 if an identical topic exists"),
    },
    Operation {
        method: "get",
        path: "/v1/topics/{topic}",
        tag: "topics",
        summary: "Describe a topic: config and partitions with log start, high watermark, size",
        params: &[TOPIC],
        body: None,
        ok: (200, "The topic"),
    },
    Operation {
        method: "delete",
        path: "/v1/topics/{topic}",
        tag: "topics",
        summary: "Delete a topic and its data",
        params: &[TOPIC],
        body: None,
        ok: (204, "Deleted"),
    },
    Operation {
        method: "get",
        path: "/v1/topics/{topic}/pipeline",
        tag: "topics",
        summary: "The configured pipeline steps and the effective chain",
        params: &[TOPIC],
        body: None,
        ok: (200, "`{\"pipeline\",\"chain\"}`"),
    },
    Operation {
        method: "put",
        path: "/v1/topics/{topic}/pipeline",
        tag: "topics",
        summary: "Replace the pipeline steps (`[]` removes them)",
        params: &[TOPIC],
        body: Some(Body {
            media: &["application/json"],
            schema: schema::pipeline_steps,
            example: || json!([{ "plugin": "hello-filter", "on_error": "skip" }]),
        }),
        ok: (200, "The new steps"),
    },
    Operation {
        method: "post",
        path: "/v1/topics/{topic}/records",
        tag: "records",
        summary: "Publish records (JSON, NDJSON or CloudEvents); all or nothing",
        params: &[
            TOPIC,
            query(
                "acks",
                "`all` (default: after fsync) or `none`; Kafka's `-1`, `1` and `0` too",
                Schema::Word(&["all", "none", "-1", "1", "0"]),
                "all",
            ),
            header(
                "Idempotency-Key",
                "Names the request: a repeat within the dedup window (per topic and principal) gets the first answer and stores nothing",
                Schema::Text,
                "",
            ),
            header(
                "Weir-Producer-Id",
                "A producer session's id (with `Weir-Sequence`): Kafka's idempotent producer",
                Schema::Text,
                "",
            ),
            header(
                "Weir-Sequence",
                "The request's number among the producer's requests to its partition, from 0",
                Schema::Text,
                "",
            ),
        ],
        body: Some(Body {
            media: &[
                "application/json",
                "application/x-ndjson",
                "application/cloudevents+json",
                "application/cloudevents-batch+json",
            ],
            schema: schema::records,
            example: || json!({ "records": [{ "key": "k", "value": { "hello": "world" } }] }),
        }),
        ok: (
            200,
            "`{\"offsets\":[...]}`, or `{\"results\":[...]}` through a pipeline",
        ),
    },
    Operation {
        method: "get",
        path: "/v1/topics/{topic}/records",
        tag: "records",
        summary: "Group fetch: records of the member's partitions from the group's positions",
        params: &[
            TOPIC,
            required(query("group", "Consumer group", Schema::Name, "billing")),
            query(
                "member",
                "Member id (assigned when absent)",
                Schema::Text,
                "m-1",
            ),
            MAX_RECORDS,
            MAX_BYTES,
            TIMEOUT_MS,
            query(
                "commit",
                "`auto` commits what the previous fetch returned",
                Schema::Word(&["auto", "none"]),
                "auto",
            ),
            RESET,
            FILTER,
            FILTER_CONFIG,
        ],
        body: None,
        ok: (
            200,
            "`{\"member\",\"generation\",\"assignment\",\"records\",\"positions\"}`",
        ),
    },
    Operation {
        method: "get",
        path: "/v1/topics/{topic}/partitions/{partition}/records",
        tag: "records",
        summary: "Fetch one partition from an offset or a timestamp",
        params: &[
            TOPIC,
            path("partition", "Partition number", U32, "0"),
            query(
                "offset",
                "A number, `earliest` or `latest`",
                Schema::Offset,
                "0",
            ),
            query(
                "timestamp_ms",
                "Start at the first record at or after this time (instead of offset)",
                Schema::Int,
                "",
            ),
            MAX_RECORDS,
            MAX_BYTES,
            TIMEOUT_MS,
            FILTER,
            FILTER_CONFIG,
        ],
        body: None,
        ok: (
            200,
            "`{\"records\",\"next_offset\",\"high_watermark\",\"log_start_offset\"}`",
        ),
    },
    Operation {
        method: "get",
        path: "/v1/topics/{topic}/events",
        tag: "records",
        summary: "Server-Sent Events: every partition from `from`, or as a group member",
        params: &[
            TOPIC,
            query(
                "from",
                "`earliest`, `latest` or `<p>:<o>,...` (without a group)",
                Schema::Positions,
                "earliest",
            ),
            query("group", "Consumer group", Schema::Name, ""),
            query("member", "Member id", Schema::Text, ""),
            RESET,
            FILTER,
            FILTER_CONFIG,
        ],
        body: None,
        ok: (200, "text/event-stream"),
    },
    Operation {
        method: "get",
        path: "/v1/groups",
        tag: "groups",
        summary: "Groups with members and total lag",
        params: &[],
        body: None,
        ok: (200, "`{\"groups\":[...]}`"),
    },
    Operation {
        method: "get",
        path: "/v1/groups/{group}",
        tag: "groups",
        summary: "Members, assignments, committed offsets and lag per partition",
        params: &[GROUP],
        body: None,
        ok: (200, "The group"),
    },
    Operation {
        method: "delete",
        path: "/v1/groups/{group}",
        tag: "groups",
        summary: "Delete a group's offsets (no live members)",
        params: &[GROUP],
        body: None,
        ok: (204, "Deleted"),
    },
    Operation {
        method: "get",
        path: "/v1/groups/{group}/offsets",
        tag: "groups",
        summary: "Committed offsets",
        params: &[GROUP],
        body: None,
        ok: (200, "The offsets"),
    },
    Operation {
        method: "post",
        path: "/v1/groups/{group}/offsets",
        tag: "groups",
        summary: "Commit offsets, durably",
        params: &[GROUP, MEMBER_Q],
        body: Some(Body {
            media: &["application/json"],
            schema: schema::commit,
            example: || json!({ "offsets": [{ "topic": "orders", "partition": 0, "offset": 0 }] }),
        }),
        ok: (200, "Committed"),
    },
    Operation {
        method: "post",
        path: "/v1/groups/{group}/offsets/reset",
        tag: "groups",
        summary: "Move offsets to earliest, latest, an offset or a time (no live members)",
        params: &[GROUP],
        body: Some(Body {
            media: &["application/json"],
            schema: schema::reset,
            example: || json!({ "topic": "orders", "to": "earliest" }),
        }),
        ok: (200, "The new offsets"),
    },
    Operation {
        method: "delete",
        path: "/v1/groups/{group}/members/{member}",
        tag: "groups",
        summary: "A clean leave: the member's partitions move at once",
        params: &[GROUP, path("member", "Member id", Schema::Text, "m-1")],
        body: None,
        ok: (204, "Left"),
    },
];
