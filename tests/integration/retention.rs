//! Retention by size and time, and compaction, through the running server's cleaner.

use serde_json::json;

use crate::harness::{Api, TestServer, eventually, test_config};

async fn publish_each(
    api: &Api,
    topic: &str,
    n: usize,
    value: impl Fn(usize) -> serde_json::Value,
) {
    for i in 0..n {
        api.publish(topic, json!([{ "value": value(i) }])).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn size_retention_moves_log_start_and_never_reuses_offsets() {
    let server = TestServer::start().await;
    let api = server.client();
    api.create_topic("s", json!({ "partitions": 1, "retention_bytes": 2000 }))
        .await;
    let filler = "y".repeat(200);
    publish_each(&api, "s", 40, |_| json!(filler)).await;
    let size = || async {
        api.describe("s").await["partitions"][0]["size_bytes"]
            .as_u64()
            .unwrap()
    };
    eventually("size retention", || async { size().await <= 2000 }).await;
    let (start, hw) = api.offsets("s", 0).await;
    assert_eq!(hw, 40);
    assert!(start > 0);
    let r = api.fetch("s", 0, 0).await;
    r.assert_problem(416, "offset_out_of_range");
    assert_eq!(r.body["log_start_offset"], start);
    let rest = api.fetch_all("s", 0, start).await;
    assert_eq!(rest.first().unwrap()["offset"], start);
    assert_eq!(rest.last().unwrap()["offset"], 39);

    // Restart: the log start survives and offsets continue.
    let dir = server.dir.clone();
    let temp = server.stop().await;
    let server = TestServer::start_in(&dir, test_config(&dir)).await;
    let api = server.client();
    let (start2, hw2) = api.offsets("s", 0).await;
    assert!(start2 >= start);
    assert_eq!(hw2, 40);
    let o = api.publish("s", json!([{ "value": 1 }])).await;
    assert_eq!(o[0]["offset"], 40);
    server.stop().await;
    drop(temp);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn time_retention_empties_the_log_but_keeps_counting() {
    let server = TestServer::start().await;
    let api = server.client();
    api.create_topic("tm", json!({ "partitions": 1, "retention_ms": 300 }))
        .await;
    publish_each(&api, "tm", 5, |i| json!(i)).await;
    eventually("time retention", || async {
        api.offsets("tm", 0).await == (5, 5)
    })
    .await;
    let r = api.fetch("tm", 0, 5).await;
    assert_eq!(r.body["records"], json!([]));

    // Offsets never go back, also across a restart with every chunk deleted.
    let dir = server.dir.clone();
    let temp = server.stop().await;
    let server = TestServer::start_in(&dir, test_config(&dir)).await;
    let api = server.client();
    assert_eq!(api.offsets("tm", 0).await, (5, 5));
    let o = api.publish("tm", json!([{ "value": "after" }])).await;
    assert_eq!(o[0]["offset"], 5);
    let recs = api.fetch_all("tm", 0, 5).await;
    assert_eq!(recs[0]["value"], "after");
    server.stop().await;
    drop(temp);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compaction_keeps_the_latest_value_per_key() {
    let server = TestServer::start().await;
    let api = server.client();
    // Tombstones live 1.5 s here.
    api.create_topic(
        "c",
        json!({ "partitions": 1, "cleanup_policy": "compact", "retention_ms": 1500 }),
    )
    .await;
    let writes = [
        ("a", json!(1)),
        ("b", json!(1)),
        ("a", json!(2)),
        ("c", json!(1)),
        ("b", json!(null)),
        ("a", json!(3)),
    ];
    for (k, v) in &writes {
        api.publish("c", json!([{ "key": k, "value": v }])).await;
    }
    eventually("compaction", || async {
        api.fetch_all("c", 0, 0).await.len() == 3
    })
    .await;
    let recs = api.fetch_all("c", 0, 0).await;
    let seen: Vec<_> = recs
        .iter()
        .map(|r| {
            (
                r["offset"].as_u64().unwrap(),
                r["key"].as_str().unwrap().to_string(),
                r["value"].clone(),
            )
        })
        .collect();
    assert_eq!(
        seen,
        [
            (3, "c".to_string(), json!(1)),
            (4, "b".to_string(), json!(null)),
            (5, "a".to_string(), json!(3))
        ]
    );
    // Reading from an offset inside a compacted gap skips to the next survivor.
    let r = api.fetch("c", 0, 1).await;
    assert_eq!(r.body["records"][0]["offset"], 3);
    // The tombstone goes once it is older than retention_ms.
    eventually("tombstone removal", || async {
        api.fetch_all("c", 0, 0).await.len() == 2
    })
    .await;
    let keys: Vec<_> = api
        .fetch_all("c", 0, 0)
        .await
        .iter()
        .map(|r| r["key"].clone())
        .collect();
    assert_eq!(keys, [json!("c"), json!("a")]);
    assert_eq!(api.offsets("c", 0).await.1, 6);
    // New writes continue at the old end.
    let o = api.publish("c", json!([{ "key": "d", "value": 1 }])).await;
    assert_eq!(o[0]["offset"], 6);
    server.stop().await;
}
