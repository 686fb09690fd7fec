//! Restart persistence and the SIGKILL test: every acknowledged record survives a kill
//! with the same offset and bytes.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::json;

use crate::harness::{ServerProcess, TestServer, test_config};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn topics_and_records_survive_a_clean_restart() {
    let server = TestServer::start().await;
    let api = server.client();
    api.create_topic(
        "keep",
        json!({ "partitions": 2, "retention_bytes": 1000000, "cleanup_policy": "delete" }),
    )
    .await;
    let offsets = api
        .publish("keep", json!([{ "key": "a", "value": {"n": 1}, "headers": {"h": "1"} }, { "key": "b", "value_base64": "AAEC" }]))
        .await;
    let before = api.describe("keep").await;
    let dir = server.dir.clone();
    let temp = server.stop().await;

    let server = TestServer::start_in(&dir, test_config(&dir)).await;
    let api = server.client();
    let after = api.describe("keep").await;
    assert_eq!(before, after);
    for o in offsets {
        let p = o["partition"].as_u64().unwrap() as u32;
        let recs = api.fetch_all("keep", p, 0).await;
        assert!(recs.iter().any(|r| r["offset"] == o["offset"]));
    }
    server.stop().await;
    drop(temp);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_shuts_down_cleanly() {
    let temp = tempfile::tempdir().unwrap();
    let server = ServerProcess::start(temp.path());
    let api = server.client();
    api.create_topic("t", json!({ "partitions": 1 })).await;
    api.post(
        "/v1/topics/t/records?acks=none",
        "application/json",
        r#"{"records":[{"value":1}]}"#,
    )
    .await;
    let status = tokio::task::spawn_blocking(move || server.terminate())
        .await
        .unwrap();
    assert!(status.success(), "{status}");
    let server = ServerProcess::start(temp.path());
    let api = server.client();
    // acks=none is flushed by the clean shutdown.
    assert_eq!(api.fetch_all("t", 0, 0).await.len(), 1);
    server.kill();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_records_survive_sigkill() {
    let temp = tempfile::tempdir().unwrap();
    let server = ServerProcess::start(temp.path());
    let api = server.client();
    api.create_topic("d", json!({ "partitions": 3 })).await;

    // (partition, offset) → value text of every acknowledged record.
    let acked: Arc<Mutex<HashMap<(u64, u64), String>>> = Arc::default();
    let stop_at = Instant::now() + Duration::from_millis(1500);
    let mut producers = Vec::new();
    for w in 0..16 {
        let (api, acked) = (api.clone(), acked.clone());
        producers.push(tokio::spawn(async move {
            let mut n = 0u64;
            // Keep publishing past the kill: requests in flight then fail, which is fine.
            loop {
                let values: Vec<String> = (0..(1 + n % 20))
                    .map(|i| format!("w{w}-n{n}-i{i}-{}", "z".repeat((n % 7) as usize * 50)))
                    .collect();
                let records: Vec<_> = values
                    .iter()
                    .enumerate()
                    .map(|(i, v)| json!({ "key": format!("k{w}-{i}"), "value": v }))
                    .collect();
                let body = json!({ "records": records }).to_string();
                let resp = api
                    .http
                    .post(format!("{}/v1/topics/d/records", api.url))
                    .header("content-type", "application/json")
                    .body(body)
                    .send()
                    .await;
                let Ok(resp) = resp else { return };
                if !resp.status().is_success() {
                    return;
                }
                let Ok(body) = resp.json_value().await else {
                    return;
                };
                let mut acked = acked.lock().unwrap();
                for (o, v) in body["offsets"].as_array().unwrap().iter().zip(&values) {
                    let key = (
                        o["partition"].as_u64().unwrap(),
                        o["offset"].as_u64().unwrap(),
                    );
                    assert!(
                        acked.insert(key, v.clone()).is_none(),
                        "offset {key:?} acknowledged twice"
                    );
                }
                n += 1;
            }
        }));
    }
    while Instant::now() < stop_at {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // Kill while the producers are still publishing.
    tokio::task::spawn_blocking(move || server.kill())
        .await
        .unwrap();
    for p in producers {
        p.await.unwrap();
    }
    let acked = acked.lock().unwrap().clone();
    assert!(
        acked.len() > 1000,
        "only {} records acknowledged before the kill",
        acked.len()
    );

    let server = ServerProcess::start(temp.path());
    let api = server.client();
    let mut found = 0;
    for p in 0..3u32 {
        let recs = api.fetch_all("d", p, 0).await;
        // Offsets are contiguous from 0.
        for (i, r) in recs.iter().enumerate() {
            assert_eq!(
                r["offset"].as_u64().unwrap(),
                i as u64,
                "gap in partition {p}"
            );
        }
        for r in &recs {
            let key = (u64::from(p), r["offset"].as_u64().unwrap());
            if let Some(v) = acked.get(&key) {
                assert_eq!(r["value"].as_str().unwrap(), v, "record {key:?} changed");
                found += 1;
            }
        }
    }
    assert_eq!(found, acked.len(), "acknowledged records were lost");
    server.kill();
}

/// reqwest without the `json` feature: parse the body ourselves.
trait JsonValue {
    async fn json_value(self) -> Result<serde_json::Value, ()>;
}

impl JsonValue for reqwest::Response {
    async fn json_value(self) -> Result<serde_json::Value, ()> {
        let bytes = self.bytes().await.map_err(|_| ())?;
        serde_json::from_slice(&bytes).map_err(|_| ())
    }
}
