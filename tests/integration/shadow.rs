//! Shadows: a candidate version of the first-party `redact` transform (built from
//! source) compared with the serving one on live publishes, over real sockets.

use std::time::Duration;

use serde_json::{Value, json};
use weir_test_artifacts as artifacts;

use crate::harness::{Api, TestServer, eventually_within, install_plugin};

fn redact(fields: &str) -> String {
    format!(
        "name = \"redact\"\nkind = \"transform\"\ncomponent = \"plugin.wasm\"\n\
         [[attach]]\ntopic = \"people\"\non_error = \"reject\"\n\
         [config]\nfields = {fields}\n"
    )
}

async fn shadow_deploy(api: &Api, manifest: &str, query: &str) -> crate::harness::Resp {
    let component = std::fs::read(artifacts::REDACT).unwrap();
    crate::deploy::deploy_with(
        api,
        "redact",
        manifest,
        component,
        &format!("?shadow=true{query}"),
    )
    .await
}

/// Publishes through the topic's pipeline: each record's result.
async fn publish(api: &Api, records: Vec<Value>) -> Vec<Value> {
    api.publish_results("people", records).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_shadow_reports_exactly_the_events_it_would_change_and_stores_nothing() {
    let server = TestServer::start_with(|plugins, _| {
        install_plugin(
            plugins,
            "redact",
            "transform",
            artifacts::REDACT,
            "[[attach]]\ntopic = \"people\"\non_error = \"reject\"\n[config]\nfields = [\"/email\"]\n",
        );
    })
    .await;
    let api = server.client();
    api.create_topic("people", json!({ "partitions": 2 })).await;
    // The candidate also redacts /ssn, which 1 in 100 events carries.
    let r = shadow_deploy(&api, &redact("[\"/email\", \"/ssn\"]"), "").await;
    assert_eq!(r.status, 201, "{}", r.body);
    assert_eq!(r.body["outcome"], "shadowing");
    let serving = api.get("/v1/plugins/redact").await.body["version"].clone();
    assert_ne!(serving, r.body["version"], "the serving version stays");
    for batch in 0..10 {
        let records: Vec<Value> = (batch * 100..(batch + 1) * 100)
            .map(|i| {
                let mut v = json!({ "i": i, "email": format!("p{i}@example.com") });
                if i % 100 == 7 {
                    v["ssn"] = json!("123-45-6789");
                }
                json!({ "key": format!("k{i}"), "value": v })
            })
            .collect();
        // Acknowledged as without a shadow: one result per record, each stored.
        let results = publish(&api, records).await;
        assert_eq!(results.len(), 100);
        assert!(results.iter().all(|r| r["status"] == "stored"));
    }
    let mut report = Value::Null;
    eventually_within(Duration::from_secs(60), "every batch compared", || async {
        api.get("/v1/plugins/redact/shadow").await.body["events"] == 1000
    })
    .await;
    for _ in 0..2 {
        report = api.get("/v1/plugins/redact/shadow").await.body;
    }
    assert_eq!(report["different"], 10, "{report}");
    assert_eq!(report["identical"], 990, "{report}");
    assert_eq!(report["only_in_old"], 0, "{report}");
    assert_eq!(report["only_in_new"], 0, "{report}");
    assert_eq!(report["errors"], json!({ "old": 0, "new": 0 }), "{report}");
    assert_eq!(report["skipped_batches"], 0, "{report}");
    assert!(
        report["ns_per_event"]["new"].as_u64().unwrap() > 0,
        "{report}"
    );
    let sample = &report["samples"][0];
    assert_eq!(sample["kind"], "different");
    assert!(
        sample["old"][0].as_str().unwrap().contains("123-45-6789"),
        "{sample}"
    );
    assert!(
        !sample["new"][0].as_str().unwrap().contains("123-45-6789"),
        "{sample}"
    );
    // Nothing the candidate made is stored: the serving version's records only.
    let mut stored = Vec::new();
    for p in 0..2 {
        stored.extend(api.fetch_all("people", p, 0).await);
    }
    assert_eq!(stored.len(), 1000);
    let with_ssn = stored
        .iter()
        .filter(|r| r["value"]["ssn"] == "123-45-6789")
        .count();
    assert_eq!(with_ssn, 10, "the serving version does not redact /ssn");
    assert!(stored.iter().all(|r| r["value"]["email"] == "***"));
    // The CLI shows the same.
    let out = std::process::Command::new(crate::harness::WEIR)
        .args(["plugin", "shadow", "redact", "--url", &api.url])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("identical 990, different 10"), "{text}");
    // Stopped, it answers its final report and is gone.
    let r = api.delete("/v1/plugins/redact/shadow").await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["events"], 1000);
    api.get("/v1/plugins/redact/shadow")
        .await
        .assert_problem(404, "no_shadow");
    // The history says it ran as a shadow, and until when.
    let history = api.get("/v1/plugins/redact/versions").await.body;
    let shadowed: Vec<&Value> = history["versions"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["outcome"] == "shadowed")
        .collect();
    assert_eq!(shadowed.len(), 1, "{history}");
    assert!(shadowed[0]["ended_at_ms"].is_u64(), "{history}");
    // Sampling: 10 % of batches compared, the others counted as skipped.
    let r = shadow_deploy(&api, &redact("[\"/email\"]"), "&sample_percent=10").await;
    assert_eq!(r.status, 201, "{}", r.body);
    for batch in 0..20 {
        let records: Vec<Value> = (0..10)
            .map(|i| json!({ "value": { "i": batch * 10 + i, "email": "x" } }))
            .collect();
        publish(&api, records).await;
    }
    eventually_within(Duration::from_secs(60), "the sampled batches", || async {
        let r = api.get("/v1/plugins/redact/shadow").await.body;
        r["batches"] == 2 && r["skipped_batches"] == 18
    })
    .await;
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_shadows_samples_pass_through_the_chains_redacting_steps() {
    // `a-shout` (upper-cases values) runs before `redact` (name order), which masks
    // /EMAIL and says it redacts: what either version of `a-shout` made is shown
    // as the topic would have stored it.
    let shout = |twice: bool| {
        format!(
            "[[attach]]\ntopic = \"people\"\non_error = \"reject\"\n[config]\ntwice = {twice}\n"
        )
    };
    let server = TestServer::start_with(|plugins, _| {
        install_plugin(
            plugins,
            "a-shout",
            "transform",
            artifacts::SHOUT_TRANSFORM,
            &shout(false),
        );
        install_plugin(
            plugins,
            "redact",
            "transform",
            artifacts::REDACT,
            "redacts = true\n[[attach]]\ntopic = \"people\"\non_error = \"reject\"\n[config]\nfields = [\"/EMAIL\"]\n",
        );
    })
    .await;
    let api = server.client();
    api.create_topic("people", json!({ "partitions": 1 })).await;
    let manifest = format!(
        "name = \"a-shout\"\nkind = \"transform\"\ncomponent = \"plugin.wasm\"\n{}",
        shout(true)
    );
    let component = std::fs::read(artifacts::SHOUT_TRANSFORM).unwrap();
    let r = crate::deploy::deploy_with(&api, "a-shout", &manifest, component, "?shadow=true").await;
    assert_eq!(r.status, 201, "{}", r.body);
    let records: Vec<Value> = (0..5)
        .map(|i| json!({ "value": { "email": format!("p{i}@example.com") } }))
        .collect();
    publish(&api, records).await;
    eventually_within(Duration::from_secs(60), "the batch compared", || async {
        api.get("/v1/plugins/a-shout/shadow").await.body["events"] == 5
    })
    .await;
    let report = api.get("/v1/plugins/a-shout/shadow").await.body;
    assert_eq!(report["different"], 5, "{report}");
    let sample = &report["samples"][0];
    assert_eq!(sample["new"].as_array().unwrap().len(), 2, "{sample}");
    for shown in sample["old"]
        .as_array()
        .unwrap()
        .iter()
        .chain(sample["new"].as_array().unwrap())
    {
        let text = shown.as_str().unwrap();
        assert!(text.contains("\"***\""), "{sample}");
        assert!(!text.contains("EXAMPLE.COM"), "{sample}");
    }
    // What is stored went through both, as always.
    let stored = api.fetch_all("people", 0, 0).await;
    assert_eq!(stored.len(), 5);
    assert!(stored.iter().all(|r| r["value"]["EMAIL"] == "***"));
    server.stop().await;
}
