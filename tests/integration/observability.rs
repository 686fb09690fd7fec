//! Metrics after known traffic: every family moves by exactly what was done.

use std::collections::HashMap;

use serde_json::json;

use crate::harness::{Api, TestServer};

/// `GET /metrics` as `name{labels}` → value.
async fn scrape(api: &Api) -> HashMap<String, f64> {
    let text = api.metrics_text().await;
    assert!(text.ends_with("# EOF\n"), "{text}");
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| {
            let (name, value) = l.rsplit_once(' ')?;
            Some((name.to_string(), value.parse().ok()?))
        })
        .collect()
}

fn get(m: &HashMap<String, f64>, key: &str) -> f64 {
    *m.get(key)
        .unwrap_or_else(|| panic!("{key} not in:\n{:#?}", m.keys().collect::<Vec<_>>()))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_move_by_exactly_the_known_traffic() {
    let server = TestServer::start().await;
    let api = server.client();
    api.create_topic("m", json!({ "partitions": 2 })).await;
    let before = scrape(&api).await;
    let records = |n: usize| {
        json!(
            (0..n)
                .map(|i| json!({ "key": format!("k{i}"), "value": "v" }))
                .collect::<Vec<_>>()
        )
    };
    api.publish("m", records(6)).await;
    api.publish("m", records(4)).await;
    let r = api
        .post(
            "/v1/topics/m/records?acks=none",
            "application/json",
            json!({ "records": records(1) }).to_string(),
        )
        .await;
    assert_eq!(r.status, 200);
    // acks=none answers before the flush that makes the record visible: wait for it
    // as a client would, with a long poll from its offset.
    let (p, o) = (
        &r.body["offsets"][0]["partition"],
        &r.body["offsets"][0]["offset"],
    );
    let visible = api
        .get(&format!(
            "/v1/topics/m/partitions/{p}/records?offset={o}&timeout_ms=10000"
        ))
        .await;
    assert_eq!(visible.body["records"].as_array().map(Vec::len), Some(1));
    let mut read = 1;
    for p in 0..2 {
        read += api.fetch_all("m", p, 0).await.len();
    }
    assert_eq!(read, 1 + 11);
    let r = api.get("/v1/topics/m/records?group=g&max_records=3").await;
    assert_eq!(r.status, 200, "{}", r.body);
    let grouped = r.body["records"].as_array().unwrap().len();
    api.get("/v1/topics/nope")
        .await
        .assert_problem(404, "topic_not_found");

    let m = scrape(&api).await;
    assert_eq!(get(&m, "weir_records_in_total{topic=\"m\"}"), 11.0);
    // Keys "k0".."k9" (2 bytes each) and values "\"v\"" (3 bytes, JSON text).
    assert_eq!(get(&m, "weir_in_bytes_total{topic=\"m\"}"), 11.0 * 5.0);
    assert_eq!(
        get(&m, "weir_records_out_total{topic=\"m\"}"),
        (read + grouped) as f64
    );
    assert_eq!(
        get(&m, "weir_out_bytes_total{topic=\"m\"}"),
        (read + grouped) as f64 * 5.0
    );
    assert_eq!(
        get(&m, "weir_delivery_latency_seconds_count"),
        (read + grouped) as f64
    );
    assert_eq!(
        get(&m, "weir_produce_duration_seconds_count{acks=\"all\"}"),
        2.0
    );
    assert_eq!(
        get(&m, "weir_produce_duration_seconds_count{acks=\"none\"}"),
        1.0
    );
    let posts = "weir_http_requests_total{route=\"/v1/topics/{topic}/records\",method=\"POST\",status=\"200\"}";
    assert_eq!(get(&m, posts), 3.0);
    assert_eq!(
        get(
            &m,
            "weir_http_requests_total{route=\"/v1/topics/{topic}\",method=\"GET\",status=\"404\"}"
        ),
        1.0
    );
    let hw = get(
        &m,
        "weir_partition_high_watermark{topic=\"m\",partition=\"0\"}",
    ) + get(
        &m,
        "weir_partition_high_watermark{topic=\"m\",partition=\"1\"}",
    );
    assert_eq!(hw, 11.0);
    assert_eq!(
        get(
            &m,
            "weir_partition_log_start_offset{topic=\"m\",partition=\"0\"}"
        ),
        0.0
    );
    let lag = get(
        &m,
        "weir_group_lag_records{group=\"g\",topic=\"m\",partition=\"0\"}",
    ) + get(
        &m,
        "weir_group_lag_records{group=\"g\",topic=\"m\",partition=\"1\"}",
    );
    assert!(lag >= (11 - grouped) as f64 - 0.5, "lag {lag}");
    // Group commit: fewer flushes than records, and every record flushed.
    let flushed = get(&m, "weir_flush_records_sum")
        - before.get("weir_flush_records_sum").copied().unwrap_or(0.0);
    assert!(flushed >= 11.0, "{flushed}");
    assert!(get(&m, "weir_flush_duration_seconds_count") >= 1.0);
    assert!(get(&m, "weir_storage_used_bytes") > 0.0);
    assert!(get(&m, "weir_storage_free_bytes") > 0.0);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_openapi_document_describes_routes_the_server_answers() {
    let server = TestServer::start().await;
    let api = server.client();
    api.create_topic("t", json!({ "partitions": 1 })).await;
    let doc = api.get("/openapi.json").await;
    assert_eq!(doc.status, 200);
    assert_eq!(doc.body["openapi"], "3.1.0");
    let paths = doc.body["paths"].as_object().unwrap();
    assert!(paths.len() > 20);
    // Every described GET, with its path parameters filled in, reaches a handler: the
    // answer is never the router's own 404 `not_found` or 405.
    for (path, item) in paths {
        // Streams (SSE) never end: they are tested where they are used.
        if item.get("get").is_none() || path.ends_with("/events") || path.ends_with("/stream") {
            continue;
        }
        let concrete = path
            .replace("{topic}", "t")
            .replace("{partition}", "0")
            .replace("{group}", "g")
            .replace("{name}", "x")
            .replace("{member}", "m");
        let url = if concrete == "/v1/topics/t/records" {
            format!("{concrete}?group=g")
        } else {
            concrete
        };
        let r = api
            .http
            .get(format!("{}{url}", api.url))
            .send()
            .await
            .unwrap();
        let status = r.status().as_u16();
        let body = r.text().await.unwrap();
        assert_ne!(status, 405, "{path}");
        assert!(
            !(status == 404 && body.contains("\"not_found\"")),
            "{path}: {body}"
        );
    }
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_traceparent_follows_records_through_a_plugin_chain() {
    let server = TestServer::start_with(|plugins, _| {
        crate::harness::install_plugin(
            plugins,
            "shout",
            "transform",
            weir_test_artifacts::SHOUT_TRANSFORM,
            "[[attach]]\ntopic = \"traced\"\n",
        );
    })
    .await;
    let api = server.client();
    api.create_topic("traced", json!({ "partitions": 1 })).await;
    let parent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
    let own = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";
    let body = json!({ "records": [
        { "value": "hello" },
        { "value": "again", "headers": { "traceparent": own } },
    ] });
    let r = api
        .send(
            api.http
                .post(format!("{}/v1/topics/traced/records", api.url))
                .header("content-type", "application/json")
                .header("traceparent", parent)
                .body(body.to_string()),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let stored = api.fetch_all("traced", 0, 0).await;
    assert_eq!(stored.len(), 2, "{stored:?}");
    assert_eq!(stored[0]["value"], "HELLO", "the transform ran");
    assert_eq!(stored[0]["headers"]["traceparent"], parent);
    assert_eq!(
        stored[1]["headers"]["traceparent"], own,
        "a record's own context wins"
    );
    // A malformed header is ignored, not stored.
    let r = api
        .send(
            api.http
                .post(format!("{}/v1/topics/traced/records", api.url))
                .header("content-type", "application/json")
                .header("traceparent", "00-zz-00-01")
                .body(json!({ "records": [{ "value": "x" }] }).to_string()),
        )
        .await;
    assert_eq!(r.status, 200);
    let last = api.fetch_all("traced", 0, 2).await;
    assert!(last[0]["headers"].get("traceparent").is_none(), "{last:?}");
    server.stop().await;
}
