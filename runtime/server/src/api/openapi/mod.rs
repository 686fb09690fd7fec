//! `GET /openapi.json`: an OpenAPI 3.1 description of the whole HTTP API, built from
//! one table ([`operations::all`]). A test checks the table against the router in
//! `api/mod.rs` both ways, so a route cannot be added or removed without this
//! description following.

mod operations;
mod schema;

use axum::Json;
use serde_json::{Map, Value, json};

use operations::In;

/// The document.
pub fn document() -> Value {
    let mut paths = Map::new();
    for op in operations::all() {
        let params: Vec<Value> = op
            .params
            .iter()
            .map(|p| {
                let mut param = json!({
                    "name": p.name,
                    "in": match p.place {
                        In::Path => "path",
                        In::Query => "query",
                        In::Header => "header",
                    },
                    "required": p.required,
                    "description": p.description,
                    "schema": p.schema.json(),
                });
                // An empty example: the parameter is left out of the example request.
                if !p.example.is_empty() {
                    param["example"] = json!(p.example);
                }
                param
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
        if let Some(body) = &op.body {
            let example = (body.example)();
            let content: Map<String, Value> = body
                .media
                .iter()
                .map(|t| {
                    // The schema and example describe the JSON form; NDJSON and
                    // CloudEvents carry the same records in their own framing.
                    let mut media = json!({ "schema": (body.schema)() });
                    if *t != body.media[0] {
                        media = json!({});
                    } else if !example.is_null() {
                        media["example"] = example.clone();
                    }
                    (t.to_string(), media)
                })
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
        let source = include_str!("../mod.rs");
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
        let described: BTreeSet<(String, String)> = super::operations::all()
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
