//! Publishing in every body format and reading it back byte-identical.

use std::time::{Duration, Instant};

use base64::Engine as _;
use serde_json::json;

use crate::harness::TestServer;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_round_trip_is_byte_identical() {
    let server = TestServer::start().await;
    let api = server.client();
    api.create_topic("t", json!({ "partitions": 1 })).await;
    let binary: Vec<u8> = (0..=255u8).collect();
    let b64 = base64::engine::general_purpose::STANDARD.encode(&binary);
    let body = format!(
        r#"{{"records":[
            {{"key":"k1","value":{{"nested": [1, 2.5, "x"], "u":"\u00e9"}},"headers":{{"trace":"abc","z":"1"}}}},
            {{"value":"plain string"}},
            {{"value":12345}},
            {{"value_base64":"{b64}"}},
            {{"key":"gone","value":null}}
        ]}}"#
    );
    let r = api
        .post("/v1/topics/t/records", "application/json", body)
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let offsets: Vec<u64> = r.body["offsets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["offset"].as_u64().unwrap())
        .collect();
    assert_eq!(offsets, [0, 1, 2, 3, 4]);

    // Raw bytes of the response: JSON values are embedded exactly as published.
    let raw = server
        .http
        .get(format!(
            "{}/v1/topics/t/partitions/0/records?offset=0",
            server.url
        ))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        raw.contains(r#""value":{"nested": [1, 2.5, "x"], "u":"\u00e9"}"#),
        "{raw}"
    );

    let recs = api.fetch_all("t", 0, 0).await;
    assert_eq!(recs.len(), 5);
    assert_eq!(recs[0]["key"], "k1");
    assert_eq!(recs[0]["headers"], json!({ "trace": "abc", "z": "1" }));
    assert_eq!(recs[1]["value"], "plain string");
    assert_eq!(recs[2]["value"], 12345);
    let got = base64::engine::general_purpose::STANDARD
        .decode(recs[3]["value_base64"].as_str().unwrap())
        .unwrap();
    assert_eq!(got, binary);
    assert!(recs[4]["value"].is_null());
    assert!(recs[0]["timestamp_ms"].as_i64().unwrap() > 1_600_000_000_000);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ndjson_and_cloudevents_round_trip() {
    let server = TestServer::start().await;
    let api = server.client();
    api.create_topic("t", json!({ "partitions": 1 })).await;

    let nd = "{\"key\":\"a\",\"value\":1}\n\n{\"value\":[true]}\r\n{\"value_base64\":\"/w==\"}\n";
    let r = api
        .post("/v1/topics/t/records", "application/x-ndjson", nd)
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["offsets"].as_array().unwrap().len(), 3);

    // Binary mode: attributes in ce-* headers, the body is the data.
    let r = api
        .send(
            server
                .http
                .post(format!("{}/v1/topics/t/records", server.url))
                .header("ce-specversion", "1.0")
                .header("ce-id", "evt-1")
                .header("ce-source", "/sensors/1")
                .header("ce-type", "com.example.reading")
                .header("ce-partitionkey", "sensor-1")
                .header("content-type", "application/json")
                .body(r#"{"celsius": 21.5}"#),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);

    // Structured mode.
    let structured = json!({
        "specversion": "1.0", "id": "evt-2", "source": "/s", "type": "t.x",
        "partitionkey": "pk2", "datacontenttype": "application/json", "data": { "a": 1 },
        "subject": "sub"
    });
    let r = api
        .post(
            "/v1/topics/t/records",
            "application/cloudevents+json",
            structured.to_string(),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);

    // Batch mode, one with binary data.
    let batch = json!([
        { "specversion": "1.0", "id": "b1", "source": "/s", "type": "t", "data": "text" },
        { "specversion": "1.0", "id": "b2", "source": "/s", "type": "t", "data_base64": "AAE=" }
    ]);
    let r = api
        .post(
            "/v1/topics/t/records",
            "application/cloudevents-batch+json",
            batch.to_string(),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["offsets"][1]["offset"], 6);

    let recs = api.fetch_all("t", 0, 0).await;
    assert_eq!(recs.len(), 7);
    assert_eq!(recs[0]["key"], "a");
    assert_eq!(recs[1]["value"], json!([true]));
    assert_eq!(recs[2]["value_base64"], "/w==");
    let bin = &recs[3];
    assert_eq!(bin["key"], "sensor-1");
    assert_eq!(bin["value"], json!({ "celsius": 21.5 }));
    assert_eq!(bin["headers"]["ce_id"], "evt-1");
    assert_eq!(bin["headers"]["ce_type"], "com.example.reading");
    assert_eq!(bin["headers"]["content-type"], "application/json");
    let st = &recs[4];
    assert_eq!(st["key"], "pk2");
    assert_eq!(st["value"], json!({ "a": 1 }));
    assert_eq!(st["headers"]["ce_subject"], "sub");
    assert_eq!(st["headers"]["ce_specversion"], "1.0");
    assert_eq!(recs[5]["value"], "text");
    assert_eq!(recs[6]["value_base64"], "AAE=");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_pick_stable_partitions_and_keyless_requests_spread() {
    let server = TestServer::start().await;
    let api = server.client();
    api.create_topic("t", json!({ "partitions": 4 })).await;
    let mut first_seen = std::collections::HashMap::new();
    for round in 0..3 {
        let records: Vec<_> = (0..40)
            .map(|i| json!({ "key": format!("user-{i}"), "value": round }))
            .collect();
        let offsets = api.publish("t", json!(records)).await;
        for (i, o) in offsets.iter().enumerate() {
            let p = o["partition"].as_u64().unwrap();
            assert_eq!(
                *first_seen.entry(i).or_insert(p),
                p,
                "key user-{i} moved partitions"
            );
        }
    }
    // Kafka's murmur2 partitioner: "foobar" hashes to -790332482 → partition 2 of 4.
    let o = api
        .publish("t", json!([{ "key": "foobar", "value": 1 }]))
        .await;
    assert_eq!(
        o[0]["partition"],
        (((-790332482i32) as u32 & 0x7fff_ffff) % 4) as u64
    );
    let used: std::collections::HashSet<_> = first_seen.values().collect();
    assert_eq!(used.len(), 4, "40 keys should use all 4 partitions");

    // Keyless requests rotate over partitions; each request stays whole.
    let mut per_request = Vec::new();
    for _ in 0..8 {
        let o = api
            .publish("t", json!([{ "value": 1 }, { "value": 2 }]))
            .await;
        assert_eq!(o[0]["partition"], o[1]["partition"]);
        per_request.push(o[0]["partition"].as_u64().unwrap());
    }
    let distinct: std::collections::HashSet<_> = per_request.iter().collect();
    assert_eq!(distinct.len(), 4, "{per_request:?}");

    // An explicit partition wins over the key.
    let o = api
        .publish(
            "t",
            json!([{ "key": "foobar", "value": 1, "partition": 3 }]),
        )
        .await;
    assert_eq!(o[0]["partition"], 3);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn long_poll_is_woken_by_the_append() {
    let server = TestServer::start().await;
    let api = server.client();
    api.create_topic("t", json!({ "partitions": 1 })).await;
    // Nothing there: an empty answer after the timeout.
    let t = Instant::now();
    let r = api
        .get("/v1/topics/t/partitions/0/records?offset=0&timeout_ms=300")
        .await;
    assert_eq!(r.status, 200);
    assert_eq!(r.body["records"], json!([]));
    assert!(
        t.elapsed() >= Duration::from_millis(290),
        "{:?}",
        t.elapsed()
    );

    let waiter = {
        let api = api.clone();
        tokio::spawn(async move {
            let t = Instant::now();
            let r = api
                .get("/v1/topics/t/partitions/0/records?offset=0&timeout_ms=20000")
                .await;
            (r, t.elapsed())
        })
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    let published = Instant::now();
    api.publish("t", json!([{ "value": "wake" }])).await;
    let (r, waited) = waiter.await.unwrap();
    assert_eq!(r.body["records"][0]["value"], "wake");
    assert_eq!(r.body["next_offset"], 1);
    // Woken by the append, long before the 20 s timeout.
    assert!(waited < Duration::from_secs(5), "{waited:?}");
    assert!(published.elapsed() < Duration::from_secs(5));
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reads_start_anywhere_and_respect_limits() {
    let server = TestServer::start().await;
    let api = server.client();
    api.create_topic("t", json!({ "partitions": 1 })).await;
    for batch in 0..5 {
        let records: Vec<_> = (0..10)
            .map(|i| json!({ "value": batch * 10 + i }))
            .collect();
        api.publish("t", json!(records)).await;
    }
    // Starting inside a batch returns records from that offset on.
    let r = api
        .get("/v1/topics/t/partitions/0/records?offset=17&max_records=5")
        .await;
    let values: Vec<_> = r.body["records"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["value"].as_u64().unwrap())
        .collect();
    assert_eq!(values, [17, 18, 19, 20, 21]);
    assert_eq!(r.body["next_offset"], 22);
    assert_eq!(r.body["high_watermark"], 50);
    // A byte limit still returns at least one record.
    let r = api
        .get("/v1/topics/t/partitions/0/records?offset=3&max_bytes=1")
        .await;
    assert_eq!(r.body["records"].as_array().unwrap().len(), 1);
    assert_eq!(r.body["next_offset"], 4);
    // earliest / latest.
    let r = api
        .get("/v1/topics/t/partitions/0/records?offset=latest")
        .await;
    assert_eq!(r.body["records"], json!([]));
    assert_eq!(r.body["next_offset"], 50);
    let all = api.fetch_all("t", 0, 0).await;
    let offsets: Vec<_> = all.iter().map(|r| r["offset"].as_u64().unwrap()).collect();
    assert_eq!(offsets, (0..50).collect::<Vec<_>>());
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn topics_are_created_listed_and_deleted() {
    let server = TestServer::start().await;
    let api = server.client();
    let cfg = json!({ "partitions": 3, "retention_ms": 60000, "cleanup_policy": "delete" });
    api.create_topic("a", cfg.clone()).await;
    let again = api.put_json("/v1/topics/a", cfg).await;
    assert_eq!(again.status, 200);
    let d = api.describe("a").await;
    assert_eq!(d["name"], "a");
    assert_eq!(d["config"]["partitions"], 3);
    assert_eq!(d["config"]["retention_ms"], 60000);
    assert_eq!(d["partitions"].as_array().unwrap().len(), 3);
    assert_eq!(
        d["partitions"][2],
        json!({ "partition": 2, "log_start_offset": 0, "high_watermark": 0, "size_bytes": 0 })
    );
    api.create_topic("b", json!({ "partitions": 1 })).await;
    let list = api.get("/v1/topics").await;
    let names: Vec<_> = list.body["topics"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].clone())
        .collect();
    assert_eq!(names, [json!("a"), json!("b")]);
    api.publish("a", json!([{ "value": 1 }])).await;
    let r = api.delete("/v1/topics/a").await;
    assert_eq!(r.status, 204);
    api.get("/v1/topics/a")
        .await
        .assert_problem(404, "topic_not_found");
    // The name can be reused; the new topic starts empty at offset 0.
    api.create_topic("a", json!({ "partitions": 1 })).await;
    let o = api.publish("a", json!([{ "value": 2 }])).await;
    assert_eq!(o[0]["offset"], 0);
    assert_eq!(api.fetch_all("a", 0, 0).await.len(), 1);
    server.stop().await;
}
