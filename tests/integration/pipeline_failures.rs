//! Pipelines when plugins fail: one bad event dead-lettered alone, error policies
//! that contain trapping, looping and memory-hungry plugins, quarantine and recovery,
//! and a plugin that fails to load failing closed on its topics.

use std::time::{Duration, Instant};

use serde_json::{Value, json};
use weir_test_artifacts as artifacts;

use crate::harness::{Api, TestServer, install_plugin};
use crate::pipelines::{plugin, publish_raw};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_bad_event_is_dead_lettered_alone() {
    let server = TestServer::start_with(|plugins, _| {
        install_plugin(
            plugins,
            "paid-only",
            "filter",
            artifacts::JSON_FILTER,
            "[config]\npath = \"/status\"\nequals = \"paid\"\n[[attach]]\ntopic = \"pay\"",
        );
    })
    .await;
    let api = server.client();
    api.create_topic("pay", json!({ "partitions": 1 })).await;
    let mut records: Vec<Value> = (0..20)
        .map(|i| json!({ "key": format!("k{i}"), "value": { "status": "paid", "i": i } }))
        .collect();
    // Not JSON: the filter answers bad-input for the whole batch.
    records[13] =
        json!({ "key": "bad", "value_base64": "bm90IGpzb24=", "headers": { "trace": "t1" } });
    let r = publish_raw(&api, "pay", json!(records)).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let results = r.body["results"].as_array().unwrap();
    for (i, res) in results.iter().enumerate() {
        let want = if i == 13 { "dead_lettered" } else { "stored" };
        assert_eq!(res["status"], want, "record {i}: {res}");
    }
    let bad = &results[13];
    assert_eq!(bad["error"]["kind"], "plugin_bad_input");
    assert_eq!(bad["error"]["plugin"], "paid-only");
    assert_eq!(bad["dead_letter"]["topic"], "pay.dlq");
    // Nineteen stored in order; the original of the bad one in the DLQ, with why.
    let stored = api.fetch_all("pay", 0, 0).await;
    assert_eq!(stored.len(), 19);
    let dlq = api.fetch_all("pay.dlq", 0, 0).await;
    assert_eq!(dlq.len(), 1);
    let h = &dlq[0]["headers"];
    assert_eq!(dlq[0]["key"], "bad");
    assert_eq!(dlq[0]["value_base64"], "bm90IGpzb24=");
    assert_eq!(h["trace"], "t1");
    assert_eq!(h["weir-dlq-topic"], "pay");
    assert_eq!(h["weir-dlq-plugin"], "paid-only");
    assert_eq!(h["weir-dlq-error-kind"], "plugin_bad_input");
    assert!(
        h["weir-dlq-error"].as_str().unwrap().contains("not JSON"),
        "{h}"
    );
    assert_eq!(h["weir-dlq-version"].as_str().unwrap().len(), 64);
    let p = plugin(&api, "paid-only").await;
    assert_eq!(p["counters"]["dead_lettered"], 1);
    // bad-input is the data's fault: it does not count toward quarantine.
    assert_eq!(p["recent_failures"], 0);
    server.stop().await;
}

/// Publishes one record to `topic` and returns how long it took.
async fn timed_publish(api: &Api, topic: &str) -> Duration {
    let started = Instant::now();
    let r = publish_raw(api, topic, json!([{ "value": "ok" }])).await;
    assert_eq!(r.status, 200, "{}", r.body);
    started.elapsed()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn error_policies_contain_trapping_looping_and_memory_hungry_plugins() {
    let server = TestServer::start_with(|plugins, config| {
        // Keep calling them: this test is about the policies, not quarantine.
        config.plugins.quarantine_failures = 1000;
        install_plugin(
            plugins,
            "trapper",
            "filter",
            artifacts::HOSTILE_PANIC_ON_BOOM,
            "[[attach]]\ntopic = \"t-reject\"\non_error = \"reject\"",
        );
        install_plugin(
            plugins,
            "looper",
            "filter",
            artifacts::HOSTILE_LOOP_FOREVER,
            "[limits]\ntimeout_ms = 50\n[[attach]]\ntopic = \"t-skip\"\non_error = \"skip\"",
        );
        install_plugin(
            plugins,
            "hog",
            "filter",
            artifacts::HOSTILE_MEMORY_BOMB,
            // A long timeout: on a busy machine the memory limit must still be
            // what stops it.
            "[limits]\nmemory_mb = 16\ntimeout_ms = 10000\n[[attach]]\ntopic = \"t-dlq\"\ndead_letter_topic = \"hog-dead\"",
        );
    })
    .await;
    let api = server.client();
    for t in ["t-reject", "t-skip", "t-dlq", "healthy"] {
        api.create_topic(t, json!({ "partitions": 1 })).await;
    }
    let mut baseline: Vec<Duration> = Vec::new();
    for _ in 0..20 {
        baseline.push(timed_publish(&api, "healthy").await);
    }

    // Hostile traffic on three topics while the healthy topic keeps publishing.
    let hostile = {
        let api = api.clone();
        tokio::spawn(async move {
            for round in 0..5 {
                let r = publish_raw(
                    &api,
                    "t-reject",
                    json!([{ "value": "fine" }, { "value": "boom" }]),
                )
                .await;
                r.assert_problem(422, "plugin_rejected");
                assert_eq!(r.body["index"], 1, "{}", r.body);
                assert_eq!(r.body["error_kind"], "plugin_trap");
                assert_eq!(r.body["plugin"], "trapper");

                let r = publish_raw(&api, "t-skip", json!([{ "value": round }])).await;
                assert_eq!(r.status, 200, "{}", r.body);
                assert_eq!(r.body["results"][0]["status"], "skipped");
                assert_eq!(r.body["results"][0]["error"]["kind"], "plugin_timeout");

                let r = publish_raw(&api, "t-dlq", json!([{ "key": "m", "value": round }])).await;
                assert_eq!(r.status, 200, "{}", r.body);
                assert_eq!(r.body["results"][0]["status"], "dead_lettered");
                assert_eq!(r.body["results"][0]["error"]["kind"], "plugin_memory_limit");
                assert_eq!(r.body["results"][0]["dead_letter"]["topic"], "hog-dead");
            }
        })
    };
    let mut during: Vec<Duration> = Vec::new();
    while !hostile.is_finished() {
        during.push(timed_publish(&api, "healthy").await);
    }
    hostile.await.unwrap();
    baseline.sort();
    during.sort();
    let (b, d) = (baseline[baseline.len() / 2], during[during.len() / 2]);
    assert!(
        d < b * 4 + Duration::from_millis(50),
        "healthy topic's median publish went from {b:?} to {d:?}"
    );

    // reject stored nothing, skip stored nothing, dead_letter kept every original.
    assert_eq!(api.offsets("t-reject", 0).await.1, 0);
    assert_eq!(api.offsets("t-skip", 0).await.1, 0);
    assert_eq!(api.offsets("t-dlq", 0).await.1, 0);
    let dead = api.fetch_all("hog-dead", 0, 0).await;
    let values: Vec<&Value> = dead.iter().map(|r| &r["value"]).collect();
    assert_eq!(
        values,
        [&json!(0), &json!(1), &json!(2), &json!(3), &json!(4)]
    );
    assert_eq!(
        dead[0]["headers"]["weir-dlq-error-kind"],
        "plugin_memory_limit"
    );
    let looper = plugin(&api, "looper").await;
    assert_eq!(looper["counters"]["skipped"], 5);
    assert_eq!(looper["counters"]["errors"]["plugin_timeout"], 5);
    assert_eq!(plugin(&api, "trapper").await["counters"]["rejected"], 10);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_plugin_is_quarantined_and_recovers() {
    let server = TestServer::start_with(|plugins, config| {
        config.plugins.quarantine_failures = 3;
        config.plugins.quarantine_backoff_ms = 300;
        install_plugin(
            plugins,
            "fragile",
            "filter",
            artifacts::HOSTILE_PANIC_ON_BOOM,
            "[[attach]]\ntopic = \"q\"\non_error = \"skip\"",
        );
    })
    .await;
    let api = server.client();
    api.create_topic("q", json!({ "partitions": 1 })).await;
    for _ in 0..3 {
        let r = publish_raw(&api, "q", json!([{ "value": "boom" }])).await;
        assert_eq!(
            r.body["results"][0]["error"]["kind"], "plugin_trap",
            "{}",
            r.body
        );
    }
    let p = plugin(&api, "fragile").await;
    assert_eq!(p["state"], "quarantined", "{p}");
    assert_eq!(p["times_quarantined"], 1);
    let calls = p["counters"]["calls"].as_u64().unwrap();
    // Quarantined: the policy applies without calling the plugin.
    let r = publish_raw(&api, "q", json!([{ "value": "fine" }])).await;
    assert_eq!(r.body["results"][0]["status"], "skipped");
    assert_eq!(r.body["results"][0]["error"]["kind"], "plugin_quarantined");
    assert_eq!(plugin(&api, "fragile").await["counters"]["calls"], calls);
    // After the backoff a good batch is the probe; it succeeds and ends the quarantine.
    tokio::time::sleep(Duration::from_millis(400)).await;
    let r = publish_raw(&api, "q", json!([{ "value": "fine" }])).await;
    assert_eq!(r.body["results"][0]["status"], "stored", "{}", r.body);
    let p = plugin(&api, "fragile").await;
    assert_eq!(p["state"], "active", "{p}");
    assert!(p["quarantine"].is_null());
    assert_eq!(api.fetch_all("q", 0, 0).await.len(), 1);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plugin_that_fails_to_load_fails_closed_on_its_topics() {
    let server = TestServer::start_with(|plugins, _| {
        // A redactor whose component is garbage: its topic must not get unredacted data.
        install_plugin(
            plugins,
            "broken-redact",
            "transform",
            artifacts::REDACT,
            "[config]\nfields = [\"/card\"]\n[[attach]]\ntopic = \"cards\"",
        );
        std::fs::write(plugins.join("broken-redact/plugin.wasm"), b"\0asm garbage").unwrap();
    })
    .await;
    let api = server.client();
    api.create_topic("cards", json!({ "partitions": 1 })).await;
    let p = plugin(&api, "broken-redact").await;
    assert_eq!(p["state"], "failed", "{p}");
    assert_eq!(p["last_error"]["kind"], "plugin_component_invalid");
    assert_eq!(p["attachments"][0]["topic"], "cards");
    let r = publish_raw(&api, "cards", json!([{ "value": { "card": "4111" } }])).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["results"][0]["status"], "dead_lettered");
    assert_eq!(r.body["results"][0]["error"]["kind"], "plugin_unavailable");
    assert_eq!(
        api.offsets("cards", 0).await.1,
        0,
        "nothing unredacted was stored"
    );
    server.stop().await;
}
