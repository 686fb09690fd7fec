//! Retries that never duplicate: `Idempotency-Key` and producer sessions
//! (`Weir-Producer-Id` + `Weir-Sequence`), across concurrent repeats and a `kill -9`.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use serde_json::{Value, json};
use tokio::sync::RwLock;

use crate::harness::{Api, ServerProcess, http_client};

/// One attempt's outcome: status, body, whether it was a replay; `None` when the
/// connection failed (the broker was killed).
type Outcome = Option<(u16, Value, bool)>;

async fn post_records(
    url: &str,
    topic: &str,
    headers: &[(&str, String)],
    records: &Value,
) -> Outcome {
    let mut req = http_client()
        .post(format!("{url}/v1/topics/{topic}/records"))
        .header("content-type", "application/json")
        .body(json!({ "records": records }).to_string());
    for (name, value) in headers {
        req = req.header(*name, value);
    }
    let resp = req.send().await.ok()?;
    let status = resp.status().as_u16();
    let replayed = resp.headers().get("idempotent-replayed").is_some();
    let body = serde_json::from_slice::<Value>(&resp.bytes().await.ok()?).ok()?;
    Some((status, body, replayed))
}

/// The request `i` of client `c`: one to three records naming themselves.
fn request(c: usize, i: usize) -> Value {
    let n = 1 + (c + i) % 3;
    Value::Array(
        (0..n)
            .map(|j| json!({ "value": { "c": c, "i": i, "j": j } }))
            .collect(),
    )
}

/// Every record of `topic`, as ((c, i, j), (partition, offset)).
async fn stored(api: &Api, topic: &str, partitions: u32) -> Vec<((u64, u64, u64), (u64, u64))> {
    let mut out = Vec::new();
    for p in 0..partitions {
        for r in api.fetch_all(topic, p, 0).await {
            let v = &r["value"];
            out.push((
                (
                    v["c"].as_u64().unwrap(),
                    v["i"].as_u64().unwrap(),
                    v["j"].as_u64().unwrap(),
                ),
                (u64::from(p), r["offset"].as_u64().unwrap()),
            ));
        }
    }
    out
}

const CLIENTS: usize = 16;
/// Requests each client sends before the kill is set in motion.
const BEFORE: usize = 12;
/// Requests each client sends in all.
const REQUESTS: usize = 300;

/// Records of requests `0..n` of every client.
fn records_of_first(n: usize) -> u64 {
    (0..CLIENTS)
        .flat_map(|c| (0..n).map(move |i| 1 + (c + i) % 3))
        .sum::<usize>() as u64
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retry_storm_across_kill_9_stores_every_record_once_and_answers_alike() {
    let temp = tempfile::tempdir().unwrap();
    let server = ServerProcess::start(temp.path());
    server
        .client()
        .create_topic("storm", json!({ "partitions": 4 }))
        .await;
    let url = Arc::new(RwLock::new(server.url.clone()));
    // Per request, the first answer seen; every later one must equal it.
    let answers: Arc<std::sync::Mutex<HashMap<(usize, usize), Value>>> = Arc::default();
    let check = {
        let answers = answers.clone();
        move |c: usize, i: usize, outcome: Outcome| -> bool {
            let Some((status, body, _)) = outcome else {
                return false;
            };
            assert_eq!(status, 200, "request {c}/{i}: {body}");
            let mut answers = answers.lock().unwrap();
            let first = answers.entry((c, i)).or_insert_with(|| body.clone());
            assert_eq!(*first, body, "request {c}/{i} got two different answers");
            true
        }
    };

    // Before the kill: every request twice or three times, some copies concurrent.
    let mut tasks = Vec::new();
    for c in 0..CLIENTS {
        let (url, check) = (url.clone(), check.clone());
        tasks.push(tokio::spawn(async move {
            for i in 0..BEFORE {
                let (records, headers) =
                    (request(c, i), [("idempotency-key", format!("k-{c}-{i}"))]);
                let u = url.read().await.clone();
                if i % 2 == 0 {
                    let (a, b) = tokio::join!(
                        post_records(&u, "storm", &headers, &records),
                        post_records(&u, "storm", &headers, &records)
                    );
                    // Exactly one of two concurrent copies stored; the other waited.
                    let replays = [&a, &b].iter().filter(|o| o.as_ref().unwrap().2).count();
                    assert_eq!(replays, 1, "request {c}/{i}");
                    assert!(check(c, i, a) && check(c, i, b));
                } else {
                    let first = post_records(&u, "storm", &headers, &records).await;
                    assert!(!first.as_ref().unwrap().2);
                    let again = post_records(&u, "storm", &headers, &records).await;
                    assert!(
                        again.as_ref().unwrap().2,
                        "request {c}/{i} was not replayed"
                    );
                    assert!(check(c, i, first) && check(c, i, again));
                }
                if i % 3 == 0 {
                    assert!(check(
                        c,
                        i,
                        post_records(&u, "storm", &headers, &records).await
                    ));
                }
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }

    // The rest goes out while the broker is killed: some are stored and answered,
    // some stored and never answered, some never stored.
    let mut tasks = Vec::new();
    for c in 0..CLIENTS {
        let (url, check) = (url.clone(), check.clone());
        tasks.push(tokio::spawn(async move {
            let u = url.read().await.clone();
            for i in BEFORE..REQUESTS {
                let headers = [("idempotency-key", format!("k-{c}-{i}"))];
                if !check(
                    c,
                    i,
                    post_records(&u, "storm", &headers, &request(c, i)).await,
                ) {
                    eprintln!("client {c}: request {i} lost its answer to the kill");
                    return;
                }
            }
        }));
    }
    let api = server.client();
    crate::harness::eventually("some of the second half is stored", || {
        let api = api.clone();
        async move {
            let (_, hw) = api.offsets("storm", 0).await;
            let mut total = hw;
            for p in 1..4 {
                total += api.offsets("storm", p).await.1;
            }
            // Well into the second part, far from its end.
            total > records_of_first(BEFORE) + 300
        }
    })
    .await;
    tokio::task::spawn_blocking(move || server.kill())
        .await
        .unwrap();
    for t in tasks {
        t.await.unwrap();
    }

    // After the restart every client sends every request again, twice.
    let server = ServerProcess::start(temp.path());
    *url.write().await = server.url.clone();
    let mut tasks = Vec::new();
    for c in 0..CLIENTS {
        let (url, check) = (url.clone(), check.clone());
        tasks.push(tokio::spawn(async move {
            let u = url.read().await.clone();
            for i in 0..REQUESTS {
                let headers = [("idempotency-key", format!("k-{c}-{i}"))];
                for _ in 0..2 {
                    assert!(check(
                        c,
                        i,
                        post_records(&u, "storm", &headers, &request(c, i)).await
                    ));
                }
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }

    // Every record once, where its request's answer says.
    let records = stored(&server.client(), "storm", 4).await;
    let mut seen = HashSet::new();
    for (id, _) in &records {
        assert!(seen.insert(*id), "record {id:?} stored twice");
    }
    assert_eq!(records.len() as u64, records_of_first(REQUESTS));
    let at: HashMap<_, _> = records.into_iter().collect();
    let answers = answers.lock().unwrap();
    for c in 0..CLIENTS {
        for i in 0..REQUESTS {
            let offsets = answers[&(c, i)]["offsets"].as_array().unwrap().clone();
            for (j, o) in offsets.iter().enumerate() {
                let place = (
                    o["partition"].as_u64().unwrap(),
                    o["offset"].as_u64().unwrap(),
                );
                assert_eq!(
                    at[&(c as u64, i as u64, j as u64)],
                    place,
                    "request {c}/{i}"
                );
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_reused_for_another_request_is_refused() {
    let temp = tempfile::tempdir().unwrap();
    let server = ServerProcess::start(temp.path());
    let api = server.client();
    api.create_topic("t", json!({ "partitions": 1 })).await;
    let key = [("idempotency-key", "order-17".to_string())];
    let first = post_records(&server.url, "t", &key, &json!([{"value": 1}]))
        .await
        .unwrap();
    assert_eq!(first.0, 200);
    let other = post_records(&server.url, "t", &key, &json!([{"value": 2}]))
        .await
        .unwrap();
    assert_eq!(other.0, 422, "{}", other.1);
    assert_eq!(other.1["code"], "idempotency_key_reused");
    // The same key on another topic is another request.
    api.create_topic("u", json!({ "partitions": 1 })).await;
    let elsewhere = post_records(&server.url, "u", &key, &json!([{"value": 2}]))
        .await
        .unwrap();
    assert_eq!((elsewhere.0, elsewhere.2), (200, false));
    let bad = post_records(
        &server.url,
        "t",
        &[("idempotency-key", String::new())],
        &json!([{"value": 1}]),
    )
    .await
    .unwrap();
    assert_eq!(bad.0, 400, "{}", bad.1);
    assert_eq!(api.fetch_all("t", 0, 0).await.len(), 1);
    let metrics = api.metrics_text().await;
    assert!(metrics.contains("\nweir_idempotency_keys 2\n"), "{metrics}");
    assert!(
        metrics.contains("\nweir_idempotency_keys_evicted_total 0\n"),
        "{metrics}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn producer_sessions_refuse_gaps_and_answer_repeats_across_kill_9() {
    let temp = tempfile::tempdir().unwrap();
    let server = ServerProcess::start(temp.path());
    server
        .client()
        .create_topic("seq", json!({ "partitions": 2 }))
        .await;
    let send = |url: String, seq: u64, records: Value| async move {
        let headers = [
            ("weir-producer-id", "p-1".to_string()),
            ("weir-sequence", seq.to_string()),
        ];
        post_records(&url, "seq", &headers, &records).await.unwrap()
    };
    let batch = |n: u64| json!([{"value": {"n": n}, "partition": 1}, {"value": {"n": n + 100}, "partition": 1}]);

    // A session that does not exist starts at 0.
    let early = send(server.url.clone(), 3, batch(3)).await;
    assert_eq!(early.0, 409, "{}", early.1);
    assert_eq!(early.1["code"], "sequence_out_of_order");
    assert_eq!(early.1["expected_sequence"], 0);

    let zero = send(server.url.clone(), 0, batch(0)).await;
    assert_eq!((zero.0, zero.2), (200, false), "{}", zero.1);
    let zero_again = send(server.url.clone(), 0, batch(0)).await;
    assert_eq!((zero_again.0, zero_again.2), (200, true));
    assert_eq!(zero_again.1, zero.1);

    let gap = send(server.url.clone(), 2, batch(2)).await;
    assert_eq!(gap.0, 409, "{}", gap.1);
    assert_eq!(gap.1["expected_sequence"], 1);
    assert_eq!(gap.1["partition"], 1);

    let one = send(server.url.clone(), 1, batch(1)).await;
    assert_eq!(one.0, 200, "{}", one.1);
    tokio::task::spawn_blocking(move || server.kill())
        .await
        .unwrap();

    let server = ServerProcess::start(temp.path());
    let one_again = send(server.url.clone(), 1, batch(1)).await;
    assert_eq!((one_again.0, one_again.2), (200, true), "{}", one_again.1);
    assert_eq!(one_again.1, one.1, "the answer survived the kill");
    let two = send(server.url.clone(), 2, batch(2)).await;
    assert_eq!((two.0, two.2), (200, false), "{}", two.1);

    // A sequenced request's partition must not depend on the attempt.
    let keyless = send(server.url.clone(), 3, json!([{"value": 1}])).await;
    assert_eq!(keyless.0, 400, "{}", keyless.1);
    let spread = send(
        server.url.clone(),
        3,
        json!([{"value": 1, "partition": 0}, {"value": 2, "partition": 1}]),
    )
    .await;
    assert_eq!(spread.0, 400, "{}", spread.1);

    // Another partition is another session; sequences there start at 0.
    let other = send(server.url.clone(), 0, json!([{"value": 9, "partition": 0}])).await;
    assert_eq!(other.0, 200, "{}", other.1);

    let api = server.client();
    let values: Vec<u64> = api
        .fetch_all("seq", 1, 0)
        .await
        .iter()
        .map(|r| r["value"]["n"].as_u64().unwrap())
        .collect();
    assert_eq!(values, vec![0, 100, 1, 101, 2, 102]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pipeline_answer_is_replayed_after_kill_9() {
    let temp = tempfile::tempdir().unwrap();
    crate::harness::install_plugin(
        &temp.path().join("plugins"),
        "by-region",
        "router",
        weir_test_artifacts::HEADER_ROUTER,
        "[router]\ndestinations = [\"orders-eu\", \"orders-other\"]\n[config]\nheader = \"region\"\ndefault = \"orders-other\"\n[config.routes]\neu = \"orders-eu\"\n[[attach]]\ntopic = \"orders\"",
    );
    let server = ServerProcess::start(temp.path());
    let api = server.client();
    for t in ["orders", "orders-eu", "orders-other"] {
        api.create_topic(t, json!({ "partitions": 2 })).await;
    }
    let records = json!([
        { "key": "a", "value": 1, "headers": { "region": "eu" } },
        { "key": "b", "value": 2 },
    ]);
    let key = [("idempotency-key", "routed-1".to_string())];
    let first = post_records(&server.url, "orders", &key, &records)
        .await
        .unwrap();
    assert_eq!((first.0, first.2), (200, false), "{}", first.1);
    assert_eq!(first.1["results"][0]["outputs"][0]["topic"], "orders-eu");
    tokio::task::spawn_blocking(move || server.kill())
        .await
        .unwrap();

    let server = ServerProcess::start(temp.path());
    let again = post_records(&server.url, "orders", &key, &records)
        .await
        .unwrap();
    assert_eq!((again.0, again.2), (200, true), "{}", again.1);
    assert_eq!(again.1, first.1, "the routed answer survived the kill");
    let api = server.client();
    let stored: usize = futures_util::future::join_all(
        ["orders-eu", "orders-other"]
            .iter()
            .flat_map(|t| (0..2).map(move |p| (*t, p)))
            .map(|(t, p)| {
                let api = api.clone();
                async move { api.fetch_all(t, p, 0).await.len() }
            }),
    )
    .await
    .into_iter()
    .sum();
    assert_eq!(stored, 2, "each routed record once");
}
