//! Canaries: a candidate version of a real plugin (built from source) serving a share
//! of the keys beside the serving one on live publishes, over real sockets, then
//! rolled back or promoted by its failure rate.

use std::collections::{BTreeMap, HashSet};
use std::time::Duration;

use serde_json::{Value, json};
use weir_test_artifacts as artifacts;

use crate::harness::{Api, TestServer, eventually_within, install_plugin, test_config};

async fn deploy_canary(
    api: &Api,
    name: &str,
    manifest: &str,
    component: &str,
    query: &str,
) -> crate::harness::Resp {
    let component = std::fs::read(component).unwrap();
    crate::deploy::deploy_with(api, name, manifest, component, &format!("?{query}")).await
}

async fn all_records(api: &Api, topic: &str, partitions: u32) -> Vec<Value> {
    let mut out = Vec::new();
    for p in 0..partitions {
        out.extend(api.fetch_all(topic, p, 0).await);
    }
    out
}

fn tag(name: &str, version: &Value) -> String {
    format!("{name}@{}", &version.as_str().unwrap()[..12])
}

/// json-schema's attachment and config, checking orders against `schema`.
fn schema_config(schema: &str) -> String {
    format!(
        "[[attach]]\ntopic = \"orders\"\non_error = \"dead_letter\"\n[config]\nschema = '{schema}'\n"
    )
}

const LAX: &str = r#"{"type":"object","required":["id"]}"#;
const STRICT: &str = r#"{"type":"object","required":["id"],"properties":{"amount":{"type":"number","maximum":100}}}"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_canary_that_dead_letters_more_is_rolled_back_and_its_records_name_its_version() {
    let server = TestServer::start_with(|plugins, _| {
        install_plugin(
            plugins,
            "json-schema",
            "filter",
            artifacts::JSON_SCHEMA,
            &schema_config(LAX),
        );
    })
    .await;
    let api = server.client();
    api.create_topic("orders", json!({ "partitions": 2 })).await;
    let serving = api.get("/v1/plugins/json-schema").await.body["version"].clone();
    // The candidate refuses amounts over 100, which 1 in 5 orders has.
    let strict = format!(
        "name = \"json-schema\"\nkind = \"filter\"\ncomponent = \"plugin.wasm\"\n{}",
        schema_config(STRICT)
    );
    let r = deploy_canary(
        &api,
        "json-schema",
        &strict,
        artifacts::JSON_SCHEMA,
        "canary_percent=10&promote_after=2000&max_error_increase=1",
    )
    .await;
    assert_eq!(r.status, 201, "{}", r.body);
    assert_eq!(r.body["outcome"], "canary");
    let candidate = r.body["version"].clone();
    let report = api.get("/v1/plugins/json-schema/canary").await.body;
    assert_eq!(report["percent"], 10, "{report}");
    assert!(
        api.metrics_text()
            .await
            .contains("weir_plugin_canary_percent{plugin=\"json-schema\""),
        "metrics show the canary"
    );
    // Publishes until the canary is judged; every publish is acknowledged.
    let mut i = 0;
    let mut rounds = 0;
    while api.get("/v1/plugins/json-schema/canary").await.status == 200 {
        rounds += 1;
        assert!(rounds <= 40, "the canary was never judged");
        let records: Vec<Value> = (i..i + 100)
            .map(|n| {
                let amount = if n % 5 == 0 { 500 } else { 5 };
                json!({ "key": format!("k{n}"), "value": { "id": format!("o{n}"), "amount": amount } })
            })
            .collect();
        i += 100;
        let results = api.publish_results("orders", records).await;
        assert_eq!(results.len(), 100);
    }
    // Rolled back, early: it failed on more events than 1 point over the serving
    // version's 0 % could ever allow at 2000.
    let history = api.get("/v1/plugins/json-schema/versions").await.body;
    let entry = history["versions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["version"] == candidate)
        .cloned()
        .unwrap();
    assert_eq!(entry["outcome"], "canary_rolled_back", "{history}");
    assert!(
        entry["reason"]
            .as_str()
            .unwrap()
            .contains("rolled back early after"),
        "{entry}"
    );
    assert_eq!(
        api.get("/v1/plugins/json-schema").await.body["version"],
        serving
    );
    // Its dead letters name it; every stored record names the version that kept it.
    let dead = all_records(&api, "orders.dlq", 1).await;
    assert!(dead.len() > 20, "{}", dead.len());
    for d in &dead {
        assert_eq!(d["headers"]["weir-dlq-version"], candidate, "{d}");
        assert_eq!(d["value"]["amount"], 500, "{d}");
    }
    let stored = all_records(&api, "orders", 2).await;
    assert_eq!(
        stored.len() + dead.len(),
        i as usize,
        "every order kept or dead-lettered"
    );
    let (old, new) = (tag("json-schema", &serving), tag("json-schema", &candidate));
    let by_new: Vec<&Value> = stored
        .iter()
        .filter(|r| r["headers"]["weir-lineage"] == new.as_str())
        .collect();
    assert!(!by_new.is_empty());
    assert!(
        stored
            .iter()
            .all(|r| r["headers"]["weir-lineage"] == old.as_str()
                || r["headers"]["weir-lineage"] == new.as_str()),
        "every record names exactly one version"
    );
    // What the candidate kept, it kept by its own rule.
    assert!(by_new.iter().all(|r| r["value"]["amount"] == 5));
    // Rolled back, the serving version takes every key.
    let results = api
        .publish_results(
            "orders",
            (0..50)
                .map(|n| json!({ "key": format!("k{n}"), "value": { "id": "x", "amount": 500 } }))
                .collect(),
        )
        .await;
    assert!(results.iter().all(|r| r["status"] == "stored"));
    // An operator can promote a canary before it is judged (the CLI), and nothing
    // is left to stop after.
    let r = deploy_canary(
        &api,
        "json-schema",
        &strict,
        artifacts::JSON_SCHEMA,
        "canary_percent=50",
    )
    .await;
    assert_eq!(r.status, 201, "{}", r.body);
    let cli = |args: &[&str]| {
        let out = std::process::Command::new(crate::harness::WEIR)
            .args(["plugin", "canary", "json-schema"])
            .args(args)
            .args(["--url", &api.url])
            .output()
            .unwrap();
        assert!(out.status.success(), "{out:?}");
        String::from_utf8_lossy(&out.stdout).to_string()
    };
    let text = cli(&[]);
    assert!(
        text.contains("canary of json-schema on 50% of keys"),
        "{text}"
    );
    let text = cli(&["--promote"]);
    assert!(text.contains(", promoted"), "{text}");
    assert_eq!(
        api.get("/v1/plugins/json-schema").await.body["version"],
        candidate
    );
    api.delete("/v1/plugins/json-schema/canary")
        .await
        .assert_problem(404, "no_canary");
    server.stop().await;
}

fn redact(fields: &str) -> String {
    format!("[[attach]]\ntopic = \"people\"\non_error = \"reject\"\n[config]\nfields = {fields}\n")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_healthy_canary_is_promoted_and_every_acknowledged_record_is_processed_once() {
    let mut plugin_dir = std::path::PathBuf::new();
    let server = TestServer::start_with(|plugins, _| {
        plugin_dir = plugins.to_path_buf();
        install_plugin(
            plugins,
            "redact",
            "transform",
            artifacts::REDACT,
            &redact("[\"/email\"]"),
        );
    })
    .await;
    let api = server.client();
    api.create_topic("people", json!({ "partitions": 3 })).await;
    let serving = api.get("/v1/plugins/redact").await.body["version"].clone();
    let manifest = format!(
        "name = \"redact\"\nkind = \"transform\"\ncomponent = \"plugin.wasm\"\n{}",
        redact("[\"/email\", \"/phone\"]")
    );
    let r = deploy_canary(
        &api,
        "redact",
        &manifest,
        artifacts::REDACT,
        "canary_percent=20&promote_after=300",
    )
    .await;
    assert_eq!(r.status, 201, "{}", r.body);
    let candidate = r.body["version"].clone();
    // Four publishers, 200 keys, each record numbered; the canary is promoted while
    // they publish.
    let publishers: Vec<_> = (0..4u64)
        .map(|p| {
            let api = api.clone();
            tokio::spawn(async move {
                let mut acked = Vec::new();
                for batch in 0..25u64 {
                    let records: Vec<Value> = (0..40u64)
                        .map(|i| {
                            let seq = (p * 25 + batch) * 40 + i;
                            json!({
                                "key": format!("k{}", seq % 200),
                                "value": { "seq": seq, "email": "a@b.c", "phone": "555" },
                            })
                        })
                        .collect();
                    let results = api.publish_results("people", records).await;
                    for (i, r) in results.iter().enumerate() {
                        assert_eq!(r["status"], "stored", "{r}");
                        acked.push((p * 25 + batch) * 40 + i as u64);
                    }
                }
                acked
            })
        })
        .collect();
    let mut acked = HashSet::new();
    for p in publishers {
        acked.extend(p.await.unwrap());
    }
    assert_eq!(acked.len(), 4000);
    eventually_within(
        Duration::from_secs(30),
        "the canary's promotion",
        || async { api.get("/v1/plugins/redact").await.body["version"] == candidate },
    )
    .await;
    api.get("/v1/plugins/redact/canary")
        .await
        .assert_problem(404, "no_canary");
    let history = api.get("/v1/plugins/redact/versions").await.body;
    let versions = history["versions"].as_array().unwrap();
    assert_eq!(versions[0]["outcome"], "active", "{history}");
    assert_eq!(versions[0]["origin"], "canary", "{history}");
    assert_eq!(versions[0]["probation"], Value::Null, "{history}");
    let stage = versions
        .iter()
        .find(|e| e["outcome"] == "canary")
        .expect("the canary stage");
    assert!(
        stage["reason"].as_str().unwrap().contains("promoted after"),
        "{stage}"
    );
    // The sequence checker: every acknowledged record stored exactly once, made by
    // exactly one version.
    let (old, new) = (tag("redact", &serving), tag("redact", &candidate));
    let stored = all_records(&api, "people", 3).await;
    let mut seen = HashSet::new();
    let mut by_key: BTreeMap<String, Vec<(u64, u64, String)>> = BTreeMap::new();
    for r in &stored {
        let seq = r["value"]["seq"].as_u64().unwrap();
        assert!(seen.insert(seq), "record {seq} stored twice");
        let lineage = r["headers"]["weir-lineage"].as_str().unwrap().to_string();
        assert!(lineage == old || lineage == new, "{lineage}");
        // Each version did its own job.
        assert_eq!(r["value"]["email"], "***");
        let phone = if lineage == new { "***" } else { "555" };
        assert_eq!(r["value"]["phone"], phone, "{r}");
        by_key
            .entry(r["key"].as_str().unwrap().to_string())
            .or_default()
            .push((
                r["partition"].as_u64().unwrap_or(0),
                r["offset"].as_u64().unwrap(),
                lineage,
            ));
    }
    assert_eq!(seen, acked, "exactly the acknowledged records");
    // Keys on the canary from their first record, and keys that moved at the
    // promotion. (Requests in flight at the promotion finish on the version they
    // started with, like any swap, so around it a key may see both.)
    let (mut canary_keys, mut switched) = (0, 0);
    for (_, records) in by_key {
        let news = records.iter().filter(|r| r.2 == new).count();
        canary_keys += usize::from(news == records.len());
        switched += usize::from(news > 0 && news < records.len());
    }
    assert!(
        canary_keys > 0,
        "some keys were on the canary from the start"
    );
    assert!(
        switched > 0,
        "the promotion came while records were published"
    );
    // The promoted version's files are in the plugin directory: a restart serves it.
    eventually_within(Duration::from_secs(10), "the files written", || async {
        std::fs::read_to_string(plugin_dir.join("redact/plugin.toml"))
            .is_ok_and(|t| t.contains("/phone"))
    })
    .await;
    let dir = server.dir.clone();
    let temp = server.stop().await;
    let server = TestServer::start_in(&dir, test_config(&dir)).await;
    let api = server.client();
    assert_eq!(
        api.get("/v1/plugins/redact").await.body["version"],
        candidate
    );
    server.stop().await;
    drop(temp);
}
