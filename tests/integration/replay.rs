//! Replays: a stored range run through an older, still loaded version of a real
//! plugin (built from `examples/`) into another topic, over the HTTP API and the
//! `weir` CLI, without touching the source topic or its groups.

use std::time::Duration;

use serde_json::{Value, json};
use weir_test_artifacts as artifacts;

use crate::deploy::deploy;
use crate::harness::{Api, TestServer, WEIR, eventually_within, install_plugin};

fn greeter(word: &str) -> String {
    format!(
        "name = \"greeter\"\nkind = \"filter\"\ncomponent = \"plugin.wasm\"\n\
         [config]\nword = \"{word}\"\n"
    )
}

/// Every value of `topic`, partition by partition.
async fn values(api: &Api, topic: &str, partitions: u32) -> Vec<String> {
    let mut out = Vec::new();
    for p in 0..partitions {
        for r in api.fetch_all(topic, p, 0).await {
            out.push(r["value"].as_str().unwrap().to_string());
        }
    }
    out
}

async fn finished(api: &Api, path: &str) -> Value {
    eventually_within(Duration::from_secs(120), "the replay to finish", || async {
        api.get(path).await.body["done"] == true
    })
    .await;
    api.get(path).await.body
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replay_through_an_older_version_leaves_the_source_and_its_groups_untouched() {
    let server = TestServer::start_with(|plugins, _| {
        install_plugin(
            plugins,
            "greeter",
            "filter",
            artifacts::HELLO_FILTER,
            "[config]\nword = \"keep\"\n",
        );
    })
    .await;
    let api = server.client();
    let old = api.get("/v1/plugins/greeter").await.body["version"]
        .as_str()
        .unwrap()
        .to_string();
    let component = std::fs::read(artifacts::HELLO_FILTER).unwrap();
    let r = deploy(&api, "greeter", &greeter("drop"), component).await;
    assert_eq!(r.status, 201, "{}", r.body);
    api.create_topic("source", json!({ "partitions": 2 })).await;
    let total = 100_000;
    for chunk in (0..total).collect::<Vec<_>>().chunks(1000) {
        let records: Vec<Value> = chunk
            .iter()
            .map(|i| {
                let word = if i % 3 == 0 { "keep" } else { "drop" };
                json!({ "key": format!("k{}", i % 10), "value": format!("{word}-{i}") })
            })
            .collect();
        api.publish("source", json!(records)).await;
    }
    let before: Vec<Value> = vec![api.describe("source").await["partitions"].clone()];
    let r = api
        .post(
            "/v1/plugins/greeter/replays",
            "application/json",
            json!({ "topic": "source", "into": "replayed", "version": &old[..12] }).to_string(),
        )
        .await;
    assert_eq!(r.status, 202, "{}", r.body);
    assert_eq!(r.body["total"], total, "{}", r.body);
    let id = r.body["id"].as_u64().unwrap();
    let status = finished(&api, &format!("/v1/plugins/greeter/replays/{id}")).await;
    assert_eq!(status["read"], total, "{status}");
    assert_eq!(status["failed"], 0, "{status}");
    assert!(status["error"].is_null(), "{status}");
    assert!(
        status["version"]
            .as_str()
            .unwrap()
            .starts_with(&format!("greeter@{}", &old[..12]))
    );
    // The older version kept what it keeps, and said so on every record.
    let mut kept = values(&api, "replayed", 2).await;
    kept.sort();
    let mut expected: Vec<String> = (0..total)
        .filter(|i| i % 3 == 0)
        .map(|i| format!("keep-{i}"))
        .collect();
    expected.sort();
    assert_eq!(kept.len(), expected.len());
    assert_eq!(kept, expected);
    assert_eq!(status["written"], expected.len());
    let first = &api.fetch_all("replayed", 0, 0).await[0];
    assert_eq!(
        first["headers"]["weir-replay"],
        format!("greeter@{}", &old[..12]),
        "{first}"
    );
    // The source and its groups are as they were.
    assert_eq!(
        vec![api.describe("source").await["partitions"].clone()],
        before
    );
    assert_eq!(api.get("/v1/groups").await.body["groups"], json!([]));
    // The serving version is another one, untouched by the replay.
    let serving = api.get("/v1/plugins/greeter").await.body;
    assert_ne!(serving["version"], old);
    assert_eq!(serving["counters"]["events_in"], 0, "{serving}");

    // The CLI: a range by offsets through the serving version, with its progress.
    let out = std::process::Command::new(WEIR)
        .args([
            "plugin", "replay", "greeter", "--topic", "source", "--into", "dropped",
        ])
        .args(["--from", "0", "--to", "30", "--url", &api.url])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout} {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("done: 60 read, 40 written"), "{stdout}");
    // A diff: the older version against the serving one on the same range, nothing
    // written. The older keeps the 20 `keep-` values, the serving one the 40 others.
    let out = std::process::Command::new(WEIR)
        .args(["plugin", "replay", "greeter", "--topic", "source", "--diff"])
        .args(["--version", &old[..12], "--from", "0", "--to", "30"])
        .args(["--url", &api.url])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout} {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("events 60: identical 0, different 0, only in old 40, only in new 20"),
        "{stdout}"
    );
    assert!(stdout.contains("done: 60 read, 0 written"), "{stdout}");
    let diffs = api.get("/v1/plugins/greeter/replays").await.body;
    let diff = &diffs["replays"][0];
    assert_eq!(diff["into"], Value::Null, "{diff}");
    assert!(
        diff["diff"]["against"]
            .as_str()
            .unwrap()
            .starts_with("greeter@"),
        "{diff}"
    );
    let samples = diff["diff"]["samples"].as_array().unwrap();
    assert!(
        samples
            .iter()
            .any(|s| s["kind"] == "only_in_old" && s["old"][0].as_str().unwrap().contains("drop-")),
        "{diff}"
    );
    // Refusals say why.
    let r = api
        .post(
            "/v1/plugins/greeter/replays",
            "application/json",
            json!({ "topic": "source", "into": "x", "diff": true }).to_string(),
        )
        .await;
    r.assert_problem(400, "invalid_request");
    let r = api
        .post(
            "/v1/plugins/greeter/replays",
            "application/json",
            json!({ "topic": "source", "into": "x", "version": "ffffffffffff" }).to_string(),
        )
        .await;
    r.assert_problem(404, "version_not_loaded");
    let r = api
        .post(
            "/v1/plugins/greeter/replays",
            "application/json",
            json!({ "topic": "source", "into": "source" }).to_string(),
        )
        .await;
    r.assert_problem(400, "invalid_request");
    server.stop().await;
}
