//! Acknowledged records survive the loss of the JetStream stream leader and of a
//! Weir node, under load from producers on both Weir nodes: each is stored exactly
//! once at the offset it was acknowledged with, no offset is ever served with two
//! values, and high watermarks never go back.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use serde_json::json;

use super::{NatsCluster, weir_node};
use crate::harness::{Api, eventually, eventually_within};

type Acked = Arc<Mutex<HashMap<(u64, u64), String>>>;

/// Publishes small batches of unique values through `urls[side]` until `stop`,
/// keeping what was acknowledged; failures (a node down, an election) are expected
/// and their values are never sent again.
async fn produce(
    w: usize,
    side: usize,
    urls: Arc<RwLock<Vec<String>>>,
    acked: Acked,
    stop: Arc<AtomicBool>,
) {
    let http = crate::harness::http_client();
    let mut n = 0u64;
    while !stop.load(Ordering::Relaxed) {
        n += 1;
        let values: Vec<String> = (0..1 + n % 5).map(|i| format!("w{w}-n{n}-i{i}")).collect();
        let records: Vec<_> = values
            .iter()
            .map(|v| json!({ "key": v, "value": v }))
            .collect();
        let url = urls.read().unwrap()[side].clone();
        let sent = http
            .post(format!("{url}/v1/topics/d/records"))
            .header("content-type", "application/json")
            .body(json!({ "records": records }).to_string())
            .timeout(Duration::from_secs(40))
            .send()
            .await;
        let body: serde_json::Value = match sent {
            Ok(r) if r.status() == 200 => {
                serde_json::from_slice(&r.bytes().await.unwrap()).unwrap()
            }
            _ => {
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let mut acked = acked.lock().unwrap();
        for (o, v) in body["offsets"].as_array().unwrap().iter().zip(values) {
            let key = (
                o["partition"].as_u64().unwrap(),
                o["offset"].as_u64().unwrap(),
            );
            assert!(
                acked.insert(key, v).is_none(),
                "offset {key:?} acknowledged twice"
            );
        }
    }
}

/// Reads every partition through `urls[side]` as a consumer would, remembering the
/// value served at each offset, and checks that high watermarks never go back.
async fn watch(side: usize, urls: Arc<RwLock<Vec<String>>>, seen: Acked, stop: Arc<AtomicBool>) {
    let http = crate::harness::http_client();
    let mut next = [0u64; 3];
    let mut hw = [0u64; 3];
    // A restarted node serves only once it has caught up with the stream, so its
    // watermarks do not go back either.
    while !stop.load(Ordering::Relaxed) {
        let url = urls.read().unwrap()[side].clone();
        for p in 0..3 {
            let r = http
                .get(format!(
                    "{url}/v1/topics/d/partitions/{p}/records?offset={}&max_records=500&timeout_ms=200",
                    next[p]
                ))
                .send()
                .await;
            let Ok(r) = r else { continue };
            if r.status() != 200 {
                continue;
            }
            let body: serde_json::Value =
                serde_json::from_slice(&r.bytes().await.unwrap()).unwrap();
            let now = body["high_watermark"].as_u64().unwrap();
            assert!(
                now >= hw[p],
                "partition {p}'s high watermark went back from {} to {now}",
                hw[p]
            );
            hw[p] = now;
            let mut seen = seen.lock().unwrap();
            for rec in body["records"].as_array().unwrap() {
                let key = (p as u64, rec["offset"].as_u64().unwrap());
                let v = rec["value"].as_str().unwrap().to_string();
                if let Some(before) = seen.insert(key, v.clone()) {
                    assert_eq!(before, v, "offset {key:?} served with two values");
                }
            }
            next[p] = body["next_offset"].as_u64().unwrap();
        }
    }
}

/// Waits until `count` more records are acknowledged than now.
async fn progress(acked: &Acked, count: usize, what: &str) {
    let target = acked.lock().unwrap().len() + count;
    eventually_within(Duration::from_secs(60), what, || {
        let n = acked.lock().unwrap().len();
        async move { n >= target }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_records_survive_losing_the_stream_leader_and_a_weir_node() {
    let mut nats = NatsCluster::start().await;
    let temp = tempfile::tempdir().unwrap();
    let a = weir_node(&temp.path().join("a"), &nats, "");
    let b = weir_node(&temp.path().join("b"), &nats, "");
    a.client()
        .create_topic("d", json!({ "partitions": 3 }))
        .await;
    let api_b = b.client();
    eventually("node B to see the topic", || {
        let b = api_b.clone();
        async move { b.get("/v1/topics/d").await.status == 200 }
    })
    .await;

    let urls = Arc::new(RwLock::new(vec![a.url.clone(), b.url.clone()]));
    let (acked, seen): (Acked, Acked) = Default::default();
    let stop = Arc::new(AtomicBool::new(false));
    let mut tasks = Vec::new();
    for w in 0..8 {
        tasks.push(tokio::spawn(produce(
            w,
            w % 2,
            urls.clone(),
            acked.clone(),
            stop.clone(),
        )));
    }
    for side in 0..2 {
        tasks.push(tokio::spawn(watch(
            side,
            urls.clone(),
            seen.clone(),
            stop.clone(),
        )));
    }
    progress(&acked, 300, "appends before any failure").await;

    // The stream's leader dies mid-run; the cluster elects another.
    let leader = nats.stream_leader("WEIR_LOG").await;
    nats.kill(leader);
    progress(&acked, 300, "appends after the stream leader was killed").await;
    nats.restart(leader).await;
    progress(&acked, 200, "appends after the old leader came back").await;

    // A Weir node dies mid-run and comes back (on a new port).
    tokio::task::spawn_blocking(move || a.kill()).await.unwrap();
    progress(&acked, 100, "appends through the surviving Weir node").await;
    let a = weir_node(&temp.path().join("a"), &nats, "");
    urls.write().unwrap()[0] = a.url.clone();
    progress(&acked, 200, "appends through the restarted Weir node").await;

    stop.store(true, Ordering::Relaxed);
    for t in tasks {
        t.await.unwrap();
    }

    let acked = acked.lock().unwrap().clone();
    let seen = seen.lock().unwrap().clone();
    let (api_a, api_b): (Api, Api) = (a.client(), b.client());
    let mut stored: HashMap<String, usize> = HashMap::new();
    for p in 0..3u32 {
        eventually("both nodes at one high watermark", || {
            let (a, b) = (api_a.clone(), api_b.clone());
            async move { a.offsets("d", p as usize).await.1 == b.offsets("d", p as usize).await.1 }
        })
        .await;
        let records = api_a.fetch_all("d", p, 0).await;
        assert_eq!(
            records,
            api_b.fetch_all("d", p, 0).await,
            "the nodes differ on partition {p}"
        );
        for r in &records {
            let key = (u64::from(p), r["offset"].as_u64().unwrap());
            let v = r["value"].as_str().unwrap().to_string();
            if let Some(a) = acked.get(&key) {
                assert_eq!(
                    a, &v,
                    "offset {key:?} holds another value than acknowledged"
                );
            }
            if let Some(s) = seen.get(&key) {
                assert_eq!(s, &v, "offset {key:?} was served with another value before");
            }
            *stored.entry(v).or_default() += 1;
        }
    }
    for ((p, o), v) in &acked {
        assert_eq!(
            stored.get(v),
            Some(&1),
            "{v} acknowledged at {p}/{o} is stored {:?} times",
            stored.get(v)
        );
    }
    // Unacknowledged appends (in flight at a kill) are stored at most once too.
    assert!(stored.values().all(|n| *n == 1), "a value is stored twice");
    eprintln!(
        "{} records acknowledged, {} stored",
        acked.len(),
        stored.len()
    );
    // Keep the cluster until the end.
    drop(nats);
}
