//! Server-Sent Events subscriptions: live delivery, exact resume with Last-Event-ID,
//! and group streams.

use std::collections::BTreeSet;
use std::time::Duration;

use serde_json::json;

use crate::harness::{SseClient, TestServer};

const WAIT: Duration = Duration::from_secs(10);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resume_with_last_event_id_delivers_exactly_the_rest() {
    let server = TestServer::start().await;
    let api = server.client();
    api.create_topic("t", json!({ "partitions": 3 })).await;
    let batch = |from: usize, to: usize| -> serde_json::Value {
        json!(
            (from..to)
                .map(|i| json!({ "key": format!("k{i}"), "value": i }))
                .collect::<Vec<_>>()
        )
    };
    api.publish("t", batch(0, 60)).await;

    let mut sse = SseClient::open(&api, "/v1/topics/t/events?from=earliest", None).await;
    let mut got = BTreeSet::new();
    let mut last_id = None;
    for _ in 0..25 {
        let e = sse.next_record(WAIT).await.expect("event");
        let r = e.json();
        assert_eq!(r["topic"], "t");
        assert!(got.insert(r["value"].as_u64().unwrap()));
        last_id = e.id.clone();
    }
    // The id names every partition's position.
    let id = last_id.unwrap();
    assert_eq!(id.split(',').count(), 3, "{id}");
    drop(sse); // the connection drops mid-stream

    api.publish("t", batch(60, 100)).await;
    let mut sse = SseClient::open(&api, "/v1/topics/t/events?from=earliest", Some(&id)).await;
    while got.len() < 100 {
        let e = sse
            .next_record(WAIT)
            .await
            .unwrap_or_else(|| panic!("stalled at {}", got.len()));
        let v = e.json()["value"].as_u64().unwrap();
        assert!(got.insert(v), "record {v} delivered twice");
    }
    assert_eq!(got, (0..100).collect());
    // Nothing more: no duplicates trail behind.
    assert!(sse.next_record(Duration::from_millis(300)).await.is_none());
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn single_partition_ids_and_live_delivery() {
    let server = TestServer::start().await;
    let api = server.client();
    api.create_topic("one", json!({ "partitions": 1 })).await;
    api.publish("one", json!([{ "value": "before" }])).await;
    // Default start is the end: only new records arrive.
    let mut sse = SseClient::open(&api, "/v1/topics/one/events", None).await;
    api.publish("one", json!([{ "value": "a" }, { "value": "b" }]))
        .await;
    let e = sse.next_record(WAIT).await.unwrap();
    assert_eq!(e.id.as_deref(), Some("0:1"));
    assert_eq!(e.json()["value"], "a");
    let e = sse.next_record(WAIT).await.unwrap();
    assert_eq!(e.id.as_deref(), Some("0:2"));
    // Explicit start positions.
    let mut sse = SseClient::open(&api, "/v1/topics/one/events?from=0:2", None).await;
    assert_eq!(sse.next_record(WAIT).await.unwrap().json()["value"], "b");
    // Bad positions are clear errors.
    api.get("/v1/topics/one/events?from=0:9")
        .await
        .assert_problem(416, "offset_out_of_range");
    api.get("/v1/topics/one/events?from=5:0")
        .await
        .assert_problem(404, "partition_not_found");
    api.get("/v1/topics/one/events?from=zero")
        .await
        .assert_problem(400, "invalid_request");
    api.get("/v1/topics/nope/events")
        .await
        .assert_problem(404, "topic_not_found");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn group_streams_share_partitions_and_commit_what_they_sent() {
    let server = TestServer::start().await;
    let api = server.client();
    api.create_topic("t", json!({ "partitions": 2 })).await;
    let records: Vec<_> = (0..40)
        .map(|i| json!({ "value": i, "partition": i % 2 }))
        .collect();
    api.publish("t", json!(records)).await;

    let mut sse = SseClient::open(
        &api,
        "/v1/topics/t/events?group=live&auto_offset_reset=earliest",
        None,
    )
    .await;
    let first = sse.next(WAIT).await.unwrap();
    assert_eq!(first.event, "assignment");
    assert_eq!(first.json()["partitions"], json!([0, 1]));
    let mut got = BTreeSet::new();
    while got.len() < 40 {
        let e = sse.next_record(WAIT).await.expect("record");
        assert!(got.insert(e.json()["value"].as_u64().unwrap()));
    }
    // The stream commits what it has sent when it reads on; the group shows it.
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let g = api.get("/v1/groups/live").await.body;
        let lag: u64 = g["partitions"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p["lag_records"].as_u64().unwrap())
            .sum();
        if lag == 0 {
            assert_eq!(g["members"].as_array().unwrap().len(), 1);
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "never committed: {g}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // A second stream joins: each now gets one partition.
    let mut sse2 = SseClient::open(&api, "/v1/topics/t/events?group=live", None).await;
    let a2 = sse2.next(WAIT).await.unwrap();
    assert_eq!(a2.event, "assignment");
    assert_eq!(
        a2.json()["partitions"].as_array().unwrap().len(),
        1,
        "{}",
        a2.data
    );
    // Closing a stream leaves the group at once.
    drop(sse);
    drop(sse2);
    let deadline = tokio::time::Instant::now() + WAIT;
    while !api.get("/v1/groups/live").await.body["members"]
        .as_array()
        .unwrap()
        .is_empty()
    {
        assert!(
            tokio::time::Instant::now() < deadline,
            "members did not leave"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    server.stop().await;
}
