//! Every error code, and that a rejected request writes nothing.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use serde_json::json;

use crate::harness::{Api, TestServer};

/// Asserts the partition's high watermark is still `hw` (nothing was written).
async fn assert_unchanged(api: &Api, topic: &str, hw: u64) {
    assert_eq!(
        api.offsets(topic, 0).await.1,
        hw,
        "a rejected request wrote data"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn produce_errors_write_nothing() {
    let server = TestServer::start().await;
    let api = server.client();
    api.create_topic("t", json!({ "partitions": 1 })).await;
    api.publish("t", json!([{ "value": 1 }])).await;
    let post = |ct: &'static str, body: String| {
        let api = api.clone();
        async move { api.post("/v1/topics/t/records", ct, body).await }
    };

    post("application/json", "{\"records\":[{\"value\":1}".into())
        .await
        .assert_problem(400, "invalid_json");
    post("application/json", "not json".into())
        .await
        .assert_problem(400, "invalid_json");
    post(
        "application/json",
        r#"{"records":[{"value":1,"bogus":2}]}"#.into(),
    )
    .await
    .assert_problem(400, "invalid_request");
    post(
        "application/json",
        r#"{"records":[{"value":1},{"key":5,"value":2}]}"#.into(),
    )
    .await
    .assert_problem(400, "invalid_request");
    post("application/x-ndjson", "{\"value\":1}\n{oops}\n".into())
        .await
        .assert_problem(400, "invalid_json");
    post("text/csv", "a,b".into())
        .await
        .assert_problem(415, "unsupported_media_type");
    post(
        "application/cloudevents+json",
        r#"{"specversion":"1.0","data":1}"#.into(),
    )
    .await
    .assert_problem(400, "invalid_request");
    // A good record next to one aimed at a missing partition: neither is stored.
    post(
        "application/json",
        r#"{"records":[{"value":1},{"value":2,"partition":7}]}"#.into(),
    )
    .await
    .assert_problem(404, "partition_not_found");
    // One record over the 4 KiB record limit among small ones: nothing stored.
    let big = "x".repeat(5000);
    post(
        "application/json",
        format!(r#"{{"records":[{{"value":1}},{{"value":"{big}"}}]}}"#),
    )
    .await
    .assert_problem(413, "payload_too_large");
    let r = api
        .post(
            "/v1/topics/t/records?acks=some",
            "application/json",
            r#"{"records":[]}"#,
        )
        .await;
    r.assert_problem(400, "invalid_request");
    assert_unchanged(&api, "t", 1).await;

    let r = api
        .post(
            "/v1/topics/missing/records",
            "application/json",
            r#"{"records":[{"value":1}]}"#,
        )
        .await;
    r.assert_problem(404, "topic_not_found");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_bodies_are_refused_before_they_are_read() {
    let server = TestServer::start().await;
    let api = server.client();
    api.create_topic("t", json!({ "partitions": 1 })).await;
    // Announce 10 MiB (the limit is 64 KiB) and send none of it: the answer must come
    // anyway, so the server did not wait to read the body.
    let addr = server.url.trim_start_matches("http://").to_string();
    let response = tokio::task::spawn_blocking(move || {
        let mut s = TcpStream::connect(addr).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        write!(
            s,
            "POST /v1/topics/t/records HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 10485760\r\n\r\n"
        )
        .unwrap();
        let mut buf = vec![0; 4096];
        let n = s.read(&mut buf).unwrap();
        String::from_utf8_lossy(&buf[..n]).into_owned()
    })
    .await
    .unwrap();
    assert!(response.starts_with("HTTP/1.1 413"), "{response}");
    assert!(response.contains("payload_too_large"), "{response}");
    assert!(response.contains("application/problem+json"), "{response}");

    // A chunked body (no length) is cut off once it passes the limit: the answer
    // comes while the client is still sending.
    let addr = server.url.trim_start_matches("http://").to_string();
    let response = tokio::task::spawn_blocking(move || {
        let mut s = TcpStream::connect(addr).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        write!(
            s,
            "POST /v1/topics/t/records HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"
        )
        .unwrap();
        let chunk = format!("1000\r\n{}\r\n", " ".repeat(4096));
        for _ in 0..100 {
            // The server may stop reading (and close) once it has answered.
            if s.write_all(chunk.as_bytes()).is_err() {
                break;
            }
        }
        let mut buf = vec![0; 4096];
        let n = s.read(&mut buf).unwrap_or(0);
        String::from_utf8_lossy(&buf[..n]).into_owned()
    })
    .await
    .unwrap();
    assert!(response.starts_with("HTTP/1.1 413"), "{response}");
    assert!(response.contains("payload_too_large"), "{response}");
    assert_unchanged(&api, "t", 0).await;
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn topic_and_fetch_errors() {
    let server = TestServer::start().await;
    let api = server.client();
    api.create_topic("t", json!({ "partitions": 2 })).await;
    api.put_json("/v1/topics/t", json!({ "partitions": 3 }))
        .await
        .assert_problem(409, "topic_exists");
    api.put_json("/v1/topics/u", json!({ "partitions": 0 }))
        .await
        .assert_problem(400, "invalid_request");
    api.put_json("/v1/topics/u", json!({ "partition": 2 }))
        .await
        .assert_problem(400, "invalid_request");
    api.put_json(
        "/v1/topics/u",
        json!({ "partitions": 1, "cleanup_policy": "shred" }),
    )
    .await
    .assert_problem(400, "invalid_request");
    api.put_json("/v1/topics/bad%20name", json!({ "partitions": 1 }))
        .await
        .assert_problem(400, "invalid_request");
    let r = api
        .send(
            server
                .http
                .put(format!("{}/v1/topics/u", server.url))
                .body("{partitions"),
        )
        .await;
    r.assert_problem(400, "invalid_json");
    api.get("/v1/topics/nope")
        .await
        .assert_problem(404, "topic_not_found");
    api.delete("/v1/topics/nope")
        .await
        .assert_problem(404, "topic_not_found");
    api.get("/v1/topics/nope/partitions/0/records")
        .await
        .assert_problem(404, "topic_not_found");
    api.get("/v1/topics/t/partitions/2/records")
        .await
        .assert_problem(404, "partition_not_found");
    api.get("/v1/topics/t/partitions/x/records")
        .await
        .assert_problem(400, "invalid_request");
    api.get("/v1/topics/t/partitions/0/records?offset=-1")
        .await
        .assert_problem(400, "invalid_request");
    api.get("/v1/topics/t/partitions/0/records?ofset=1")
        .await
        .assert_problem(400, "invalid_request");
    api.publish(
        "t",
        json!([{ "value": 1, "partition": 0 }, { "value": 2, "partition": 0 }]),
    )
    .await;
    let r = api.get("/v1/topics/t/partitions/0/records?offset=5").await;
    r.assert_problem(416, "offset_out_of_range");
    assert_eq!(r.body["log_start_offset"], 0);
    assert_eq!(r.body["high_watermark"], 2);
    api.get("/v1/nothing")
        .await
        .assert_problem(404, "not_found");
    let r = api
        .send(server.http.patch(format!("{}/v1/topics/t", server.url)))
        .await;
    r.assert_problem(405, "method_not_allowed");
    // Health.
    assert_eq!(api.get("/healthz").await.status, 200);
    assert_eq!(api.get("/readyz").await.status, 200);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compacted_topics_need_keys() {
    let server = TestServer::start().await;
    let api = server.client();
    api.create_topic("c", json!({ "partitions": 1, "cleanup_policy": "compact" }))
        .await;
    let r = api
        .post(
            "/v1/topics/c/records",
            "application/json",
            r#"{"records":[{"key":"a","value":1},{"value":2}]}"#,
        )
        .await;
    r.assert_problem(400, "invalid_request");
    assert_unchanged(&api, "c", 0).await;
    server.stop().await;
}
