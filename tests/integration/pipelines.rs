//! Pipelines end to end: real plugins built from source, attached by their manifests
//! or configured per topic, run on the real server's produce and consume paths.

use std::time::{Duration, Instant};

use serde_json::{Value, json};
use weir_test_artifacts as artifacts;

use crate::harness::{Api, SseClient, TestServer, install_plugin};

const ORDERS_CHAIN: &str = "orders";

/// json-filter (status == paid) → redact (/card/number) → header-router (region).
fn install_orders_chain(plugins: &std::path::Path) {
    install_plugin(
        plugins,
        "paid-only",
        "filter",
        artifacts::JSON_FILTER,
        "[config]\npath = \"/status\"\nequals = \"paid\"\n[[attach]]\ntopic = \"orders\"",
    );
    install_plugin(
        plugins,
        "mask-card",
        "transform",
        artifacts::REDACT,
        "[config]\nfields = [\"/card/number\"]\n[[attach]]\ntopic = \"orders\"",
    );
    install_plugin(
        plugins,
        "by-region",
        "router",
        artifacts::HEADER_ROUTER,
        "[router]\ndestinations = [\"orders-eu\", \"orders-us\", \"orders-other\"]\n[config]\nheader = \"region\"\ndefault = \"orders-other\"\n[config.routes]\neu = \"orders-eu\"\nus = \"orders-us\"\n[[attach]]\ntopic = \"orders\"",
    );
}

pub(crate) async fn publish_raw(api: &Api, topic: &str, records: Value) -> crate::harness::Resp {
    api.post(
        &format!("/v1/topics/{topic}/records"),
        "application/json",
        json!({ "records": records }).to_string(),
    )
    .await
}

pub(crate) async fn plugin(api: &Api, name: &str) -> Value {
    let r = api.get(&format!("/v1/plugins/{name}")).await;
    assert_eq!(r.status, 200, "{}", r.body);
    r.body
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn filter_transform_and_router_run_in_line() {
    let server = TestServer::start_with(|plugins, _| install_orders_chain(plugins)).await;
    let api = server.client();
    for t in ["orders", "orders-eu", "orders-us", "orders-other"] {
        api.create_topic(t, json!({ "partitions": 2 })).await;
    }
    // The chain is visible on the topic, router last, in name order otherwise.
    let d = api.describe(ORDERS_CHAIN).await;
    let chain: Vec<&str> = d["chain"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["plugin"].as_str().unwrap())
        .collect();
    assert_eq!(chain, ["mask-card", "paid-only", "by-region"]);

    let r = publish_raw(
        &api,
        "orders",
        json!([
            { "key": "o1", "value": { "status": "paid", "card": { "number": "4111" } }, "headers": { "region": "eu" } },
            { "key": "o2", "value": { "status": "open" }, "headers": { "region": "eu" } },
            { "key": "o3", "value": { "status": "paid" }, "headers": { "region": "us" } },
            { "key": "o4", "value": { "status": "paid" } },
        ]),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let results = r.body["results"].as_array().unwrap();
    let statuses: Vec<&str> = results
        .iter()
        .map(|r| r["status"].as_str().unwrap())
        .collect();
    assert_eq!(statuses, ["stored", "filtered", "stored", "stored"]);
    let dest = |i: usize| {
        results[i]["outputs"][0]["topic"]
            .as_str()
            .unwrap()
            .to_string()
    };
    assert_eq!(
        [dest(0), dest(2), dest(3)],
        ["orders-eu", "orders-us", "orders-other"]
    );
    assert!(results[1]["outputs"].as_array().unwrap().is_empty());

    // The stored record is transformed, keeps its key, and names its lineage.
    let out = &results[0]["outputs"][0];
    let p = out["partition"].as_u64().unwrap() as u32;
    let recs = api
        .fetch_all("orders-eu", p, out["offset"].as_u64().unwrap())
        .await;
    assert_eq!(recs[0]["value"]["card"]["number"], "***");
    assert_eq!(recs[0]["key"], "o1");
    assert_eq!(recs[0]["headers"]["region"], "eu");
    let lineage = recs[0]["headers"]["weir-lineage"].as_str().unwrap();
    let names: Vec<&str> = lineage
        .split(',')
        .map(|s| s.split('@').next().unwrap())
        .collect();
    assert_eq!(names, ["mask-card", "paid-only", "by-region"], "{lineage}");
    // Nothing was stored on the topic published to: the router moved everything.
    for p in 0..2 {
        assert_eq!(api.offsets("orders", p).await.1, 0);
    }

    let listed = api.get("/v1/plugins").await;
    assert_eq!(listed.body["plugins"].as_array().unwrap().len(), 3);
    let f = plugin(&api, "paid-only").await;
    assert_eq!(f["state"], "active");
    assert_eq!(f["kind"], "filter");
    assert_eq!(f["version"].as_str().unwrap().len(), 64);
    assert_eq!(f["counters"]["events_in"], 4);
    assert_eq!(f["counters"]["events_out"], 3);
    assert_eq!(f["attachments"][0]["topic"], "orders");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn configured_pipelines_and_unknown_router_topics() {
    let server = TestServer::start_with(|plugins, _| {
        install_plugin(
            plugins,
            "shout",
            "transform",
            artifacts::SHOUT_TRANSFORM,
            "[config]\ntwice = true",
        );
        install_plugin(
            plugins,
            "letters",
            "router",
            artifacts::KEY_ROUTER,
            "[router]\ndestinations = [\"users-a\", \"users-z\", \"users-other\"]\n[config]\nprefix = \"users-\"\nfallback = \"users-other\"",
        );
    })
    .await;
    let api = server.client();
    api.create_topic("users", json!({ "partitions": 1 })).await;
    api.create_topic("users-a", json!({ "partitions": 1 }))
        .await;
    // users-b exists but the router's manifest does not declare it: a route there is
    // refused under the router's policy, like a route to a topic that does not exist.
    api.create_topic("users-b", json!({ "partitions": 1 }))
        .await;
    // A router must be last.
    let r = api
        .put_json(
            "/v1/topics/users/pipeline",
            json!([{ "plugin": "letters" }, { "plugin": "shout" }]),
        )
        .await;
    r.assert_problem(400, "invalid_request");
    let r = api
        .put_json(
            "/v1/topics/users/pipeline",
            json!([{ "plugin": "shout", "on_error": "reject" }, { "plugin": "letters" }]),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["chain"][1]["kind"], "router");

    let r = publish_raw(
        &api,
        "users",
        json!([
            { "key": "alice", "value": "hi" },
            { "key": "zed", "value": "yo" },
            { "key": "bob", "value": "hey" },
        ]),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let results = r.body["results"].as_array().unwrap();

    // A transform fans out: two outputs for alice, both routed to users-a.
    assert_eq!(results[0]["outputs"].as_array().unwrap().len(), 2);
    assert_eq!(results[0]["outputs"][0]["topic"], "users-a");
    // users-z does not exist: with missing_topic = "error" the router's policy
    // (default dead_letter) applies; never a silent drop.
    assert_eq!(results[1]["status"], "dead_lettered", "{}", results[1]);
    assert_eq!(results[1]["error"]["kind"], "unknown_topic");
    let stored = api.fetch_all("users-a", 0, 0).await;
    assert_eq!(stored.len(), 2);
    assert_eq!(stored[0]["value"], "HI");
    assert_eq!(stored[0]["headers"]["shouted"], "yes");
    assert_eq!(results[2]["status"], "dead_lettered", "{}", results[2]);
    assert_eq!(results[2]["error"]["kind"], "route_not_declared");
    let dlq = api.fetch_all("users.dlq", 0, 0).await;
    assert_eq!(dlq[0]["value"], "yo");
    assert_eq!(dlq[0]["headers"]["weir-dlq-error-kind"], "unknown_topic");
    assert_eq!(dlq[1]["value"], "hey");
    assert_eq!(
        dlq[1]["headers"]["weir-dlq-error-kind"],
        "route_not_declared"
    );

    // The configuration survives in the topic's description and goes with the topic.
    assert_eq!(
        api.describe("users").await["pipeline"][0]["plugin"],
        "shout"
    );
    assert_eq!(api.delete("/v1/topics/users").await.status, 204);
    api.create_topic("users", json!({ "partitions": 1 })).await;
    assert_eq!(api.describe("users").await["pipeline"], json!([]));
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn routers_can_create_topics_when_configured() {
    let server = TestServer::start_with(|plugins, config| {
        config.pipelines.missing_topic = weir_broker::pipeline::MissingTopic::Create;
        config.pipelines.auto_create_partitions = 3;
        install_plugin(
            plugins,
            "letters",
            "router",
            artifacts::KEY_ROUTER,
            "[router]\ndestinations = [\"auto-b\", \"auto-other\"]\n[config]\nprefix = \"auto-\"\nfallback = \"auto-other\"\n[[attach]]\ntopic = \"in\"",
        );
    })
    .await;
    let api = server.client();
    api.create_topic("in", json!({ "partitions": 1 })).await;
    let r = publish_raw(
        &api,
        "in",
        json!([{ "key": "bob", "value": 1 }, { "key": "carol", "value": 2 }]),
    )
    .await;
    assert_eq!(
        r.body["results"][0]["outputs"][0]["topic"], "auto-b",
        "{}",
        r.body
    );
    // Creating topics on demand does not widen what the router may reach.
    assert_eq!(r.body["results"][1]["error"]["kind"], "route_not_declared");
    assert_eq!(api.get("/v1/topics/auto-c").await.status, 404);
    assert_eq!(
        api.describe("auto-b").await["partitions"]
            .as_array()
            .unwrap()
            .len(),
        3
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subscriptions_filter_server_side_with_original_offsets() {
    let server = TestServer::start_with(|plugins, _| {
        install_plugin(
            plugins,
            "json-filter",
            "filter",
            artifacts::JSON_FILTER,
            "[config]\npath = \"/kind\"\nequals = \"a\"",
        );
        install_plugin(
            plugins,
            "shout",
            "transform",
            artifacts::SHOUT_TRANSFORM,
            "[config]\ntwice = false",
        );
        install_plugin(
            plugins,
            "letters",
            "router",
            artifacts::KEY_ROUTER,
            "[router]\ndestinations = [\"x\"]\n[config]\nprefix = \"x-\"\nfallback = \"x\"",
        );
    })
    .await;
    let api = server.client();
    api.create_topic("s", json!({ "partitions": 1 })).await;
    let records: Vec<Value> = (0..10)
        .map(|i| json!({ "value": { "kind": if i % 2 == 0 { "a" } else { "b" }, "i": i } }))
        .collect();
    let r = publish_raw(&api, "s", json!(records)).await;
    assert_eq!(r.status, 200, "{}", r.body);

    // Partition fetch with the manifest's config, and with the subscription's own.
    let r = api
        .get("/v1/topics/s/partitions/0/records?offset=0&filter=json-filter")
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let offsets: Vec<u64> = r.body["records"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["offset"].as_u64().unwrap())
        .collect();
    assert_eq!(offsets, [0, 2, 4, 6, 8]);
    assert_eq!(r.body["next_offset"], 10);
    let r = api
        .get("/v1/topics/s/partitions/0/records?offset=0&filter=json-filter&filter_config.path=/kind&filter_config.equals=%22b%22")
        .await;
    let odd: Vec<u64> = r.body["records"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["offset"].as_u64().unwrap())
        .collect();
    assert_eq!(odd, [1, 3, 5, 7, 9]);
    let r = api
        .get("/v1/topics/s/partitions/0/records?offset=8&filter=shout")
        .await;
    assert_eq!(r.body["records"][1]["offset"], 9);
    assert_eq!(r.body["records"][1]["value"], json!({"KIND": "B", "I": 9}));

    // Group fetch: only kind a arrives, and commits cover the filtered records too.
    let q = "/v1/topics/s/records?group=g&member=m1&max_records=4&commit=auto&filter=json-filter";
    let first = api.get(q).await;
    assert_eq!(first.status, 200, "{}", first.body);
    let got: Vec<u64> = first.body["records"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["offset"].as_u64().unwrap())
        .collect();
    assert_eq!(got, [0, 2]);
    let second = api.get(q).await;
    let got: Vec<u64> = second.body["records"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["offset"].as_u64().unwrap())
        .collect();
    assert_eq!(got, [4, 6]);
    let offsets = api.get("/v1/groups/g/offsets").await;
    assert_eq!(
        offsets.body["offsets"][0]["committed_offset"], 4,
        "{}",
        offsets.body
    );

    // SSE with a filter resumes after the last delivered id without repeats.
    let mut sse = SseClient::open(
        &api,
        "/v1/topics/s/events?from=earliest&filter=json-filter",
        None,
    )
    .await;
    let a = sse.next_record(Duration::from_secs(5)).await.unwrap();
    let b = sse.next_record(Duration::from_secs(5)).await.unwrap();
    assert_eq!(
        (a.json()["offset"].clone(), b.json()["offset"].clone()),
        (json!(0), json!(2))
    );
    drop(sse);
    let mut sse = SseClient::open(
        &api,
        "/v1/topics/s/events?from=earliest&filter=json-filter",
        b.id.as_deref(),
    )
    .await;
    let rest: Vec<Value> = {
        let mut v = Vec::new();
        for _ in 0..3 {
            v.push(
                sse.next_record(Duration::from_secs(5))
                    .await
                    .unwrap()
                    .json()["offset"]
                    .clone(),
            );
        }
        v
    };
    assert_eq!(rest, [json!(4), json!(6), json!(8)]);

    // Clear errors for bad subscriptions.
    api.get("/v1/topics/s/partitions/0/records?filter=nope")
        .await
        .assert_problem(404, "plugin_unavailable");
    api.get("/v1/topics/s/partitions/0/records?filter=letters")
        .await
        .assert_problem(400, "plugin_wrong_kind");
    api.get("/v1/topics/s/partitions/0/records?filter=json-filter&filter_config.bogus=1")
        .await
        .assert_problem(400, "plugin_init_rejected");
    api.get("/v1/topics/s/partitions/0/records?filter_config.path=/x")
        .await
        .assert_problem(400, "invalid_request");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn routed_outputs_are_all_stored_or_none_across_sigkill() {
    use std::collections::{HashMap, HashSet};
    use std::sync::{Arc, Mutex};

    use crate::harness::ServerProcess;

    let temp = tempfile::tempdir().unwrap();
    let plugins = temp.path().join("plugins");
    install_plugin(
        &plugins,
        "by-region",
        "router",
        artifacts::HEADER_ROUTER,
        "[router]\ndestinations = [\"orders-eu\", \"orders-us\", \"orders-other\"]\n[config]\nheader = \"region\"\ndefault = \"orders-other\"\n[config.routes]\neu = \"orders-eu\"\nus = \"orders-us\"\n[[attach]]\ntopic = \"orders\"",
    );
    let server = ServerProcess::start(temp.path());
    let api = server.client();
    for t in ["orders", "orders-eu", "orders-us", "orders-other"] {
        api.create_topic(t, json!({ "partitions": 2 })).await;
    }
    // request id → the (topic, partition, offset) of its three acknowledged outputs.
    type Acked = HashMap<String, Vec<(String, u64, u64)>>;
    let acked: Arc<Mutex<Acked>> = Arc::default();
    let stop_at = Instant::now() + Duration::from_millis(1500);
    let mut producers = Vec::new();
    for w in 0..12 {
        let (api, acked) = (api.clone(), acked.clone());
        producers.push(tokio::spawn(async move {
            for n in 0.. {
                let id = format!("w{w}-n{n}");
                let records = json!([
                    { "key": format!("{id}-0"), "value": { "req": id }, "headers": { "region": "eu" } },
                    { "key": format!("{id}-1"), "value": { "req": id }, "headers": { "region": "us" } },
                    { "key": format!("{id}-2"), "value": { "req": id } },
                ]);
                let resp = api
                    .http
                    .post(format!("{}/v1/topics/orders/records", api.url))
                    .header("content-type", "application/json")
                    .body(json!({ "records": records }).to_string())
                    .send()
                    .await;
                let Ok(resp) = resp else { return };
                if !resp.status().is_success() {
                    return;
                }
                let Ok(bytes) = resp.bytes().await else { return };
                let body: Value = serde_json::from_slice(&bytes).unwrap();
                let outs = body["results"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|r| {
                        let o = &r["outputs"][0];
                        (
                            o["topic"].as_str().unwrap().to_string(),
                            o["partition"].as_u64().unwrap(),
                            o["offset"].as_u64().unwrap(),
                        )
                    })
                    .collect();
                acked.lock().unwrap().insert(id, outs);
            }
        }));
    }
    while Instant::now() < stop_at {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tokio::task::spawn_blocking(move || server.kill())
        .await
        .unwrap();
    for p in producers {
        p.await.unwrap();
    }
    let acked = acked.lock().unwrap().clone();
    assert!(
        acked.len() > 100,
        "only {} requests acknowledged",
        acked.len()
    );

    let server = ServerProcess::start(temp.path());
    let api = server.client();
    let mut seen: HashMap<String, HashSet<String>> = HashMap::new();
    let mut stored: HashMap<(String, u64, u64), String> = HashMap::new();
    for t in ["orders-eu", "orders-us", "orders-other"] {
        for p in 0..2u32 {
            for r in api.fetch_all(t, p, 0).await {
                let req = r["value"]["req"].as_str().unwrap().to_string();
                assert!(
                    seen.entry(req.clone()).or_default().insert(t.to_string()),
                    "request {req} stored twice in {t}"
                );
                stored.insert(
                    (t.to_string(), u64::from(p), r["offset"].as_u64().unwrap()),
                    req,
                );
            }
        }
    }
    // All or nothing: every request present anywhere is present in all three topics.
    for (req, topics) in &seen {
        assert_eq!(topics.len(), 3, "request {req} was half-stored: {topics:?}");
    }
    // Every acknowledged request is there, at the positions the broker reported.
    for (req, outs) in &acked {
        for o in outs {
            assert_eq!(
                stored.get(o),
                Some(req),
                "acknowledged output {o:?} of {req} lost"
            );
        }
    }
    server.kill();
}
