//! `/openapi.json` against the server: for every operation, the request the document
//! calls valid (its examples) is not refused as malformed, and each request it calls
//! invalid (one parameter outside its schema, one required body field missing) gets
//! 400. So the document says what the server enforces, and generated clients send
//! what the server accepts.

use reqwest::Method;
use serde_json::{Value, json};
use weir_test_artifacts as artifacts;

use crate::harness::{TestServer, install_plugin};

/// A value the parameter's schema refuses, if one can be named.
fn invalid_value(schema: &Value, place: &str) -> Option<String> {
    if schema.get("pattern").is_some() {
        return Some("bad name!".into());
    }
    if schema.get("enum").is_some() {
        return Some("bogus".into());
    }
    if schema.get("oneOf").is_some() {
        return Some("soon".into());
    }
    if schema.get("contentMediaType").is_some() {
        return Some("{not json".into());
    }
    match schema["type"].as_str() {
        Some("integer") => match schema["minimum"].as_i64() {
            Some(min) if min > i64::MIN => Some((min - 1).to_string()),
            _ => Some("x".into()),
        },
        // An empty path segment is another route, not a bad value.
        Some("string") if schema["minLength"] == 1 && place == "query" => Some(String::new()),
        _ => None,
    }
}

/// One request: its path (parameters filled), query and body.
#[derive(Clone, Debug)]
struct Request {
    method: Method,
    path: String,
    query: Vec<(String, String)>,
    body: Option<Value>,
    /// A multipart deploy: which parts to send.
    parts: Option<Vec<&'static str>>,
}

async fn send(http: &reqwest::Client, url: &str, r: &Request) -> (u16, String) {
    let query = form_urlencoded::Serializer::new(String::new())
        .extend_pairs(&r.query)
        .finish();
    let mut req = http.request(r.method.clone(), format!("{url}{}?{query}", r.path));
    if let Some(body) = &r.body {
        req = req
            .header("content-type", "application/json")
            .body(body.to_string());
    }
    if let Some(parts) = &r.parts {
        let mut form = reqwest::multipart::Form::new();
        for part in parts {
            form = match *part {
                "manifest" => form.part(
                    "manifest",
                    reqwest::multipart::Part::text(
                        "name = \"hello-filter\"\nkind = \"filter\"\ncomponent = \"plugin.wasm\"\n[config]\nword = \"hello\"\n",
                    ),
                ),
                _ => form.part(
                    "component",
                    reqwest::multipart::Part::bytes(std::fs::read(artifacts::HELLO_FILTER).unwrap()),
                ),
            };
        }
        req = req.multipart(form);
    }
    let resp = req.send().await.unwrap();
    let status = resp.status().as_u16();
    let streaming = resp
        .headers()
        .get("content-type")
        .is_some_and(|v| v.as_bytes().starts_with(b"text/event-stream"));
    // An event stream never ends: its status is the answer.
    let text = if streaming {
        String::new()
    } else {
        resp.text().await.unwrap_or_default()
    };
    (status, text)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_openapi_document_and_the_server_agree_on_valid_and_invalid_requests() {
    let server = TestServer::start_with(|plugins, _| {
        install_plugin(
            plugins,
            "hello-filter",
            "filter",
            artifacts::HELLO_FILTER,
            "[config]\nword = \"hello\"",
        );
        install_plugin(
            plugins,
            "gen",
            "source",
            artifacts::GENERATOR,
            "[[attach]]\ntopic = \"gen-out\"\n[config]\nrate = 1\ntotal = 1\n",
        );
    })
    .await;
    let api = server.client();
    for t in ["orders", "gen-out"] {
        api.create_topic(t, json!({ "partitions": 1 })).await;
    }
    let doc = api.get("/openapi.json").await.body;
    let mut ops: Vec<(Method, String, Value)> = Vec::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            ops.push((
                method.to_uppercase().parse().unwrap(),
                path.clone(),
                op.clone(),
            ));
        }
    }
    // Deletions last, the narrowest first, so every other operation finds what its
    // example names.
    ops.sort_by_key(|(m, p, _)| (*m == Method::DELETE, std::cmp::Reverse(p.len())));
    let http = reqwest::Client::new();
    let (mut failures, mut checked) = (Vec::new(), 0);
    for (method, path, op) in &ops {
        let params = op["parameters"].as_array().unwrap();
        let example = |p: &Value| p["example"].as_str().map(str::to_string);
        let fill = |replace: Option<(&str, &str)>| {
            let mut out = path.clone();
            for p in params.iter().filter(|p| p["in"] == "path") {
                let name = p["name"].as_str().unwrap();
                let value = match replace {
                    Some((n, v)) if n == name => v.to_string(),
                    _ => example(p).expect("path parameters have examples"),
                };
                out = out.replace(&format!("{{{name}}}"), &value);
            }
            out
        };
        let required_query: Vec<(String, String)> = params
            .iter()
            .filter(|p| p["in"] == "query" && p["required"] == true)
            .map(|p| (p["name"].as_str().unwrap().to_string(), example(p).unwrap()))
            .collect();
        // The body: the media type with a schema (JSON), or the multipart deploy.
        let body_schema = op["requestBody"]["content"]
            .as_object()
            .and_then(|c| c.values().find(|m| m.get("schema").is_some()))
            .cloned();
        let multipart = op["requestBody"]["content"]
            .get("multipart/form-data")
            .is_some();
        let base = Request {
            method: method.clone(),
            path: fill(None),
            query: required_query.clone(),
            body: body_schema.as_ref().and_then(|m| m.get("example").cloned()),
            parts: multipart.then(|| vec!["manifest", "component"]),
        };
        let mut valid = base.clone();
        valid.query.extend(
            params
                .iter()
                .filter(|p| p["in"] == "query" && p["required"] != true)
                .filter_map(|p| Some((p["name"].as_str()?.to_string(), example(p)?))),
        );
        let (status, text) = send(&http, &server.url, &valid).await;
        checked += 1;
        if status == 400 || status >= 500 {
            failures.push(format!(
                "valid {method} {} {:?}: {status} {text}",
                valid.path, valid.query
            ));
        }
        for p in params {
            let (name, place) = (p["name"].as_str().unwrap(), p["in"].as_str().unwrap());
            // Header values are checked by their own tests (idempotence.rs).
            if place == "header" {
                continue;
            }
            let Some(bad) = invalid_value(&p["schema"], place) else {
                continue;
            };
            let mut r = base.clone();
            if place == "path" {
                r.path = fill(Some((name, &bad)));
            } else {
                r.query.retain(|(n, _)| n != name);
                r.query.push((name.to_string(), bad.clone()));
            }
            let (status, text) = send(&http, &server.url, &r).await;
            checked += 1;
            if status != 400 {
                failures.push(format!(
                    "invalid {place} {name}={bad:?}: {method} {} {:?}: {status} {text}",
                    r.path, r.query
                ));
            }
        }
        // A body without each field its schema requires.
        if let Some(media) = &body_schema {
            let schema = &media["schema"];
            let (required, of_items) = match schema["type"].as_str() {
                Some("array") => (&schema["items"]["required"], true),
                _ => (&schema["required"], false),
            };
            for field in required.as_array().into_iter().flatten() {
                let field = field.as_str().unwrap();
                let mut r = base.clone();
                if multipart {
                    r.parts = Some(if field == "manifest" {
                        vec!["component"]
                    } else {
                        vec!["manifest"]
                    });
                } else if let Some(body) = r.body.as_mut() {
                    let target = if of_items { &mut body[0] } else { body };
                    target.as_object_mut().unwrap().remove(field);
                }
                let (status, text) = send(&http, &server.url, &r).await;
                checked += 1;
                if status != 400 {
                    failures.push(format!(
                        "body without {field}: {method} {}: {status} {text}",
                        r.path
                    ));
                }
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {checked} requests disagree with the document:\n{}",
        failures.len(),
        failures.join("\n")
    );
    eprintln!(
        "{checked} requests, {} operations: the document and the server agree",
        ops.len()
    );
    server.stop().await;
}
