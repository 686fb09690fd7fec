//! Two Weir nodes on one JetStream cluster serve the same topics, records and event
//! streams: what is written through one is read through the other.

use std::collections::BTreeSet;
use std::time::Duration;

use serde_json::json;

use super::{NatsCluster, weir_node};
use crate::harness::{SseClient, eventually};

const WAIT: Duration = Duration::from_secs(10);

fn batch(from: usize, to: usize) -> serde_json::Value {
    json!(
        (from..to)
            .map(|i| json!({ "key": format!("k{i}"), "value": i }))
            .collect::<Vec<_>>()
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_node_serves_the_same_topics_records_and_events() {
    let nats = NatsCluster::start().await;
    let temp = tempfile::tempdir().unwrap();
    let a = weir_node(&temp.path().join("a"), &nats, "");
    let b = weir_node(&temp.path().join("b"), &nats, "");
    let (a, b) = (a.client(), b.client());

    a.create_topic("t", json!({ "partitions": 3 })).await;
    // B sees A's topic once it has followed the stream that far.
    eventually("node B to see the topic", || {
        let b = b.clone();
        async move { b.get("/v1/topics/t").await.status == 200 }
    })
    .await;
    // The same config is "exists", from either node.
    let again = b.put_json("/v1/topics/t", json!({ "partitions": 3 })).await;
    assert_eq!(again.status, 200, "{}", again.body);
    b.put_json("/v1/topics/t", json!({ "partitions": 4 }))
        .await
        .assert_problem(409, "topic_exists");

    // A long poll on A wakes for a record published through B.
    let poll = {
        let a = a.clone();
        tokio::spawn(async move {
            a.get("/v1/topics/t/partitions/0/records?offset=0&timeout_ms=10000")
                .await
        })
    };
    let first = b
        .publish("t", json!([{ "partition": 0, "value": "first" }]))
        .await;
    let polled = poll.await.unwrap();
    assert_eq!(polled.status, 200, "{}", polled.body);
    assert_eq!(polled.body["records"][0]["value"], "first");
    assert_eq!(polled.body["records"][0]["offset"], first[0]["offset"]);

    let mut acked = b.publish("t", batch(0, 50)).await;
    acked.extend(a.publish("t", batch(50, 100)).await);
    // Offsets increase per partition, with gaps: stream sequence, then position.
    for p in 0..3u64 {
        let mine: Vec<u64> = acked
            .iter()
            .filter(|o| o["partition"] == p)
            .map(|o| o["offset"].as_u64().unwrap())
            .collect();
        assert!(mine.windows(2).all(|w| w[0] < w[1]), "{mine:?}");
    }
    // Both nodes serve every partition identically, read from offset 0.
    let mut values = BTreeSet::new();
    for p in 0..3u32 {
        let (hw_a, hw_b) = (
            a.offsets("t", p as usize).await.1,
            b.offsets("t", p as usize).await.1,
        );
        if hw_a != hw_b {
            eventually("both nodes at one high watermark", || {
                let (a, b) = (a.clone(), b.clone());
                async move { a.offsets("t", p as usize).await.1 == b.offsets("t", p as usize).await.1 }
            })
            .await;
        }
        let from_a = a.fetch_all("t", p, 0).await;
        let from_b = b.fetch_all("t", p, 0).await;
        assert_eq!(from_a, from_b, "partition {p} differs between the nodes");
        for r in &from_a {
            if let Some(v) = r["value"].as_u64() {
                values.insert(v);
            }
        }
    }
    assert_eq!(values, (0..100).collect::<BTreeSet<u64>>());

    // An event stream on B resumes exactly where A's stream left off.
    let mut sse = SseClient::open(&a, "/v1/topics/t/events?from=earliest", None).await;
    let mut got = BTreeSet::new();
    let mut last_id = None;
    while got.len() < 40 {
        let e = sse.next_record(WAIT).await.expect("an event from A");
        if let Some(v) = e.json()["value"].as_u64() {
            assert!(got.insert(v), "record {v} twice");
        }
        last_id = e.id.clone();
    }
    drop(sse);
    let id = last_id.unwrap();
    let mut sse = SseClient::open(&b, "/v1/topics/t/events?from=earliest", Some(&id)).await;
    while got.len() < 100 {
        let e = sse
            .next_record(WAIT)
            .await
            .unwrap_or_else(|| panic!("B's stream stalled at {}", got.len()));
        if let Some(v) = e.json()["value"].as_u64() {
            assert!(got.insert(v), "record {v} delivered again after the resume");
        }
    }

    // A delete through B removes the topic on A too; a new one starts empty.
    assert_eq!(b.delete("/v1/topics/t").await.status, 204);
    eventually("node A to see the delete", || {
        let a = a.clone();
        async move { a.get("/v1/topics/t").await.status == 404 }
    })
    .await;
    a.create_topic("t", json!({ "partitions": 1 })).await;
    assert!(a.fetch_all("t", 0, 0).await.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compaction_keeps_the_latest_value_of_each_key_on_every_node() {
    let nats = NatsCluster::start().await;
    let temp = tempfile::tempdir().unwrap();
    let a = weir_node(&temp.path().join("a"), &nats, "");
    let b = weir_node(&temp.path().join("b"), &nats, "");
    let (a, b) = (a.client(), b.client());
    a.create_topic(
        "table",
        json!({ "partitions": 1, "cleanup_policy": "compact" }),
    )
    .await;
    // One record per publish (one message each), then a batch of two keys.
    for (k, v) in [("k1", "v1"), ("k2", "v1"), ("k1", "v2"), ("k1", "v3")] {
        a.publish("table", json!([{ "key": k, "value": v }])).await;
    }
    a.publish(
        "table",
        json!([{ "key": "k2", "value": "v2" }, { "key": "k3", "value": "v1" }]),
    )
    .await;
    let expected = [("k1", "v3"), ("k2", "v2"), ("k3", "v1")];
    for api in [a, b] {
        crate::harness::eventually_within(
            Duration::from_secs(30),
            "compaction to leave the latest value per key",
            || {
                let api = api.clone();
                async move {
                    let got: Vec<(String, String)> = api
                        .fetch_all("table", 0, 0)
                        .await
                        .iter()
                        .map(|r| {
                            (
                                r["key"].as_str().unwrap().to_string(),
                                r["value"].as_str().unwrap().to_string(),
                            )
                        })
                        .collect();
                    got.iter()
                        .map(|(k, v)| (k.as_str(), v.as_str()))
                        .eq(expected.iter().copied())
                }
            },
        )
        .await;
    }
}
