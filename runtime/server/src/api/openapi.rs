//! `GET /openapi.json`: an OpenAPI 3.1 description of the whole HTTP API, built from
//! one table ([`OPERATIONS`]). A test checks the table against the router in
//! `api/mod.rs` both ways, so a route cannot be added or removed without this
//! description following.

use axum::Json;
use serde_json::{Map, Value, json};

/// A parameter: name, where (`path` or `query`), description.
type Param = (&'static str, &'static str, &'static str);

/// One operation of the API.
struct Operation {
    method: &'static str,
    path: &'static str,
    tag: &'static str,
    summary: &'static str,
    params: &'static [Param],
    /// Request body media types, if it takes one.
    body: &'static [&'static str],
    /// Success status and what it returns.
    ok: (u16, &'static str),
}

const TOPIC: Param = ("topic", "path", "Topic name");
const GROUP: Param = ("group", "path", "Consumer group name");
const NAME: Param = ("name", "path", "Plugin or connector name");
const FILTER: Param = (
    "filter",
    "query",
    "A filter or transform plugin run on what is read",
);
const FILTER_CONFIG: Param = (
    "filter_config",
    "query",
    "JSON object replacing the filter's config",
);
const READ_LIMITS: [Param; 3] = [
    (
        "max_records",
        "query",
        "Most records returned (default 1000)",
    ),
    (
        "max_bytes",
        "query",
        "Stop after this many bytes (default 4 MiB)",
    ),
    (
        "timeout_ms",
        "query",
        "Wait up to this long at the end of the log",
    ),
];

const OPERATIONS: &[Operation] = &[
    Operation {
        method: "get",
        path: "/healthz",
        tag: "health",
        summary: "200 while the process is alive",
        params: &[],
        body: &[],
        ok: (200, "`{\"status\":\"ok\"}`"),
    },
    Operation {
        method: "get",
        path: "/readyz",
        tag: "health",
        summary: "200 once storage is open; 503 not_ready after a failed flush",
        params: &[],
        body: &[],
        ok: (200, "Ready"),
    },
    Operation {
        method: "get",
        path: "/metrics",
        tag: "health",
        summary: "Prometheus / OpenMetrics text exposition",
        params: &[],
        body: &[],
        ok: (200, "OpenMetrics text"),
    },
    Operation {
        method: "get",
        path: "/openapi.json",
        tag: "health",
        summary: "This description",
        params: &[],
        body: &[],
        ok: (200, "OpenAPI 3.1 document"),
    },
    Operation {
        method: "get",
        path: "/ui",
        tag: "health",
        summary: "The web console (a page; its data comes from /v1/overview/stream and the events stream)",
        params: &[],
        body: &[],
        ok: (200, "text/html"),
    },
    Operation {
        method: "get",
        path: "/v1/overview",
        tag: "health",
        summary: "Topics, groups with lag, plugins, connectors and health in one document",
        params: &[],
        body: &[],
        ok: (200, "The overview"),
    },
    Operation {
        method: "get",
        path: "/v1/overview/stream",
        tag: "health",
        summary: "Server-Sent Events: the overview every second (`event: overview`)",
        params: &[("interval_ms", "query", "200 to 60000 (default 1000)")],
        body: &[],
        ok: (200, "text/event-stream"),
    },
    Operation {
        method: "get",
        path: "/v1/topics",
        tag: "topics",
        summary: "List topics",
        params: &[],
        body: &[],
        ok: (200, "`{\"topics\":[...]}`"),
    },
    Operation {
        method: "put",
        path: "/v1/topics/{topic}",
        tag: "topics",
        summary: "Create a topic (`partitions`, `retention_ms`, `retention_bytes`, `cleanup_policy`, `pipeline`)",
        params: &[TOPIC],
        body: &["application/json"],
        ok: (201, "Created; 200 if an identical topic exists"),
    },
    Operation {
        method: "get",
        path: "/v1/topics/{topic}",
        tag: "topics",
        summary: "Describe a topic: config and partitions with log start, high watermark, size",
        params: &[TOPIC],
        body: &[],
        ok: (200, "The topic"),
    },
    Operation {
        method: "delete",
        path: "/v1/topics/{topic}",
        tag: "topics",
        summary: "Delete a topic and its data",
        params: &[TOPIC],
        body: &[],
        ok: (204, "Deleted"),
    },
    Operation {
        method: "get",
        path: "/v1/topics/{topic}/pipeline",
        tag: "topics",
        summary: "The configured pipeline steps and the effective chain",
        params: &[TOPIC],
        body: &[],
        ok: (200, "`{\"steps\",\"chain\"}`"),
    },
    Operation {
        method: "put",
        path: "/v1/topics/{topic}/pipeline",
        tag: "topics",
        summary: "Replace the pipeline steps (`[]` removes them)",
        params: &[TOPIC],
        body: &["application/json"],
        ok: (200, "The new steps"),
    },
    Operation {
        method: "post",
        path: "/v1/topics/{topic}/records",
        tag: "records",
        summary: "Publish records (JSON, NDJSON or CloudEvents); all or nothing",
        params: &[
            TOPIC,
            ("acks", "query", "`all` (default: after fsync) or `none`"),
        ],
        body: &[
            "application/json",
            "application/x-ndjson",
            "application/cloudevents+json",
            "application/cloudevents-batch+json",
        ],
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
            ("group", "query", "Consumer group (required)"),
            ("member", "query", "Member id (assigned when absent)"),
            READ_LIMITS[0],
            READ_LIMITS[1],
            READ_LIMITS[2],
            ("commit", "query", "`auto` or `none`"),
            ("auto_offset_reset", "query", "`earliest` or `latest`"),
            FILTER,
            FILTER_CONFIG,
        ],
        body: &[],
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
            ("partition", "path", "Partition number"),
            ("offset", "query", "A number, `earliest` or `latest`"),
            (
                "timestamp_ms",
                "query",
                "Start at the first record at or after this time",
            ),
            READ_LIMITS[0],
            READ_LIMITS[1],
            READ_LIMITS[2],
            FILTER,
            FILTER_CONFIG,
        ],
        body: &[],
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
            ("from", "query", "`earliest`, `latest` or `<p>:<o>,...`"),
            ("group", "query", "Consumer group"),
            ("member", "query", "Member id"),
            FILTER,
            FILTER_CONFIG,
        ],
        body: &[],
        ok: (200, "text/event-stream"),
    },
    Operation {
        method: "get",
        path: "/v1/groups",
        tag: "groups",
        summary: "Groups with members and total lag",
        params: &[],
        body: &[],
        ok: (200, "`{\"groups\":[...]}`"),
    },
    Operation {
        method: "get",
        path: "/v1/groups/{group}",
        tag: "groups",
        summary: "Members, assignments, committed offsets and lag per partition",
        params: &[GROUP],
        body: &[],
        ok: (200, "The group"),
    },
    Operation {
        method: "delete",
        path: "/v1/groups/{group}",
        tag: "groups",
        summary: "Delete a group's offsets (no live members)",
        params: &[GROUP],
        body: &[],
        ok: (204, "Deleted"),
    },
    Operation {
        method: "get",
        path: "/v1/groups/{group}/offsets",
        tag: "groups",
        summary: "Committed offsets",
        params: &[GROUP],
        body: &[],
        ok: (200, "The offsets"),
    },
    Operation {
        method: "post",
        path: "/v1/groups/{group}/offsets",
        tag: "groups",
        summary: "Commit offsets, durably",
        params: &[GROUP, ("member", "query", "Member id")],
        body: &["application/json"],
        ok: (200, "Committed"),
    },
    Operation {
        method: "post",
        path: "/v1/groups/{group}/offsets/reset",
        tag: "groups",
        summary: "Move offsets to earliest, latest, an offset or a time (no live members)",
        params: &[GROUP],
        body: &["application/json"],
        ok: (200, "The new offsets"),
    },
    Operation {
        method: "delete",
        path: "/v1/groups/{group}/members/{member}",
        tag: "groups",
        summary: "A clean leave: the member's partitions move at once",
        params: &[GROUP, ("member", "path", "Member id")],
        body: &[],
        ok: (204, "Left"),
    },
    Operation {
        method: "get",
        path: "/v1/plugins",
        tag: "plugins",
        summary: "Loaded plugins with state, version, counters",
        params: &[],
        body: &[],
        ok: (200, "`{\"plugins\":[...]}`"),
    },
    Operation {
        method: "get",
        path: "/v1/plugins/{name}",
        tag: "plugins",
        summary: "One plugin's status",
        params: &[NAME],
        body: &[],
        ok: (200, "The plugin"),
    },
    Operation {
        method: "put",
        path: "/v1/plugins/{name}",
        tag: "plugins",
        summary: "Deploy: multipart parts `manifest` and `component`",
        params: &[NAME],
        body: &["multipart/form-data"],
        ok: (201, "Activated; 200 if unchanged"),
    },
    Operation {
        method: "get",
        path: "/v1/plugins/{name}/versions",
        tag: "plugins",
        summary: "Version history, newest first",
        params: &[NAME],
        body: &[],
        ok: (200, "The history"),
    },
    Operation {
        method: "post",
        path: "/v1/plugins/{name}/rollback",
        tag: "plugins",
        summary: "Back to the previous version that served",
        params: &[NAME],
        body: &[],
        ok: (200, "`{\"plugin\",\"rolled_back\",\"version\"}`"),
    },
    Operation {
        method: "get",
        path: "/v1/connectors",
        tag: "connectors",
        summary: "Sources and sinks with state, counters and lag",
        params: &[],
        body: &[],
        ok: (200, "`{\"connectors\":[...]}`"),
    },
    Operation {
        method: "get",
        path: "/v1/connectors/{name}",
        tag: "connectors",
        summary: "One connector's status",
        params: &[NAME],
        body: &[],
        ok: (200, "The connector"),
    },
    Operation {
        method: "post",
        path: "/v1/connectors/{name}/{action}",
        tag: "connectors",
        summary: "`pause`, `resume`, `stop` or `start` (persisted)",
        params: &[NAME, ("action", "path", "pause, resume, stop or start")],
        body: &[],
        ok: (200, "The connector's status"),
    },
];

/// The document.
pub fn document() -> Value {
    let mut paths = Map::new();
    for op in OPERATIONS {
        let params: Vec<Value> = op
            .params
            .iter()
            .map(|(name, place, description)| {
                json!({
                    "name": name,
                    "in": place,
                    "required": *place == "path",
                    "description": description,
                    "schema": { "type": "string" },
                })
            })
            .collect();
        let mut operation = json!({
            "tags": [op.tag],
            "summary": op.summary,
            "operationId": format!("{}{}", op.method, op.path.replace(['/', '{', '}', '.'], "_")),
            "parameters": params,
            "responses": {
                op.ok.0.to_string(): { "description": op.ok.1 },
                "default": {
                    "description": "An error (RFC 9457 problem details with a stable `code`)",
                    "content": { "application/problem+json": { "schema": { "$ref": "#/components/schemas/Problem" } } },
                },
            },
        });
        if !op.body.is_empty() {
            let content: Map<String, Value> = op
                .body
                .iter()
                .map(|t| (t.to_string(), json!({ "schema": {} })))
                .collect();
            operation["requestBody"] = json!({ "required": true, "content": content });
        }
        paths
            .entry(op.path)
            .or_insert_with(|| json!({}))
            .as_object_mut()
            .expect("a path item is an object")
            .insert(op.method.to_string(), operation);
    }
    json!({
        "openapi": "3.1.0",
        "info": {
            "title": "Weir",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "A WebAssembly-extensible event bus: topics, records, consumer groups, plugins and connectors over HTTP. Authentication (when on): `Authorization: Bearer <token or JWT>` or a client certificate.",
        },
        "components": {
            "securitySchemes": { "bearer": { "type": "http", "scheme": "bearer" } },
            "schemas": {
                "Problem": {
                    "type": "object",
                    "required": ["type", "title", "status", "code", "detail"],
                    "properties": {
                        "type": { "type": "string" },
                        "title": { "type": "string" },
                        "status": { "type": "integer" },
                        "code": { "type": "string", "description": "Stable, machine-readable" },
                        "detail": { "type": "string" },
                    },
                },
            },
        },
        "security": [{}, { "bearer": [] }],
        "paths": paths,
    })
}

/// `GET /openapi.json`.
pub async fn serve() -> Json<Value> {
    Json(document())
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    /// `(method, path)` of every `.route(..)` in the router's source.
    fn routed() -> BTreeSet<(String, String)> {
        let source = include_str!("mod.rs");
        let mut out = BTreeSet::new();
        for piece in source.split(".route(").skip(1) {
            let path = piece.split('"').nth(1).expect("a route path literal");
            // The handlers up to the end of this `.route(...)` call.
            let mut depth = 1;
            let end = piece
                .char_indices()
                .find(|(_, c)| {
                    match c {
                        '(' => depth += 1,
                        ')' => depth -= 1,
                        _ => {}
                    }
                    depth == 0
                })
                .map_or(piece.len(), |(i, _)| i);
            for method in ["get", "put", "post", "delete"] {
                let call = format!("{method}(");
                if piece[..end].match_indices(&call).any(|(i, _)| {
                    i == 0
                        || !piece.as_bytes()[i - 1].is_ascii_alphanumeric()
                            && piece.as_bytes()[i - 1] != b'_'
                }) {
                    out.insert((method.to_string(), path.to_string()));
                }
            }
        }
        out
    }

    #[test]
    fn every_route_is_described_and_every_description_is_routed() {
        let described: BTreeSet<(String, String)> = super::OPERATIONS
            .iter()
            .map(|o| (o.method.to_string(), o.path.to_string()))
            .collect();
        let routed = routed();
        assert!(
            routed.len() > 20,
            "the router's source was not understood: {routed:?}"
        );
        let missing: Vec<_> = routed.difference(&described).collect();
        let stale: Vec<_> = described.difference(&routed).collect();
        assert!(
            missing.is_empty(),
            "routes missing from openapi.rs: {missing:?}"
        );
        assert!(stale.is_empty(), "described but not routed: {stale:?}");
    }

    #[test]
    fn the_document_is_openapi_3_1_with_path_parameters_declared() {
        let doc = super::document();
        assert_eq!(doc["openapi"], "3.1.0");
        for (path, item) in doc["paths"].as_object().unwrap() {
            for (method, op) in item.as_object().unwrap() {
                let declared: Vec<&str> = op["parameters"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .filter(|p| p["in"] == "path")
                    .map(|p| p["name"].as_str().unwrap())
                    .collect();
                let in_path: Vec<&str> = path
                    .split('{')
                    .skip(1)
                    .map(|s| s.split('}').next().unwrap())
                    .collect();
                assert_eq!(declared, in_path, "{method} {path}");
            }
        }
    }
}
