//! Stream processors end to end: the example processors built from source, run by the
//! real server over real sockets on real sled files; the real `weir` binary killed
//! with SIGKILL while a count runs.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use serde_json::{Value, json};
use weir_test_artifacts as artifacts;

use crate::deploy::deploy;
use crate::harness::{
    Api, ServerProcess, TestServer, eventually, eventually_within, install_plugin,
};

/// `[processor]` and `[config]` of the window count over `clicks` in 1 s windows,
/// event time read from `/ts`.
fn count_manifest(extra: &str) -> String {
    format!(
        "[processor]\ninputs = [\"clicks\"]\noutputs = [\"counts\"]\n\
         windows = {{ kind = \"tumbling\", size_ms = 1000 }}\nevent_time = \"plugin\"\n\
         late = \"side_output\"\n{extra}\n\
         [config]\noutput = \"counts\"\ntime_field = \"/ts\"\n"
    )
}

fn install_count(plugins: &Path) {
    install_plugin(
        plugins,
        "window-count",
        "processor",
        artifacts::WINDOW_COUNT,
        &count_manifest(""),
    );
}

/// Publishes `(key, event time)` clicks.
async fn click(api: &Api, events: &[(&str, i64)]) {
    let records: Vec<Value> = events
        .iter()
        .map(|(k, ts)| json!({ "key": k, "value": { "ts": ts } }))
        .collect();
    api.publish("clicks", json!(records)).await;
}

/// Every window result in `counts`: `(key, window start) -> count`, checking that no
/// window was emitted twice and that each carries its bounds.
async fn window_counts(api: &Api, partitions: u32) -> BTreeMap<(String, i64), u64> {
    let mut out = BTreeMap::new();
    for p in 0..partitions {
        for r in api.fetch_all("counts", p, 0).await {
            let v = &r["value"];
            let key = v["key"].as_str().unwrap().to_string();
            let start = v["start"].as_i64().unwrap();
            assert_eq!(v["end"].as_i64().unwrap(), start + 1000, "{r}");
            assert_eq!(r["headers"]["weir-window-start"], start.to_string(), "{r}");
            let count = v["count"].as_u64().unwrap();
            let before = out.insert((key, start), count);
            assert!(before.is_none(), "window emitted twice: {r}");
        }
    }
    out
}

async fn status(api: &Api, name: &str) -> Value {
    let r = api.get(&format!("/v1/processors/{name}")).await;
    assert_eq!(r.status, 200, "{}", r.body);
    r.body
}

/// Waits until `name` consumed everything published to its inputs.
async fn caught_up(api: &Api, name: &str) {
    eventually_within(
        Duration::from_secs(60),
        "the processor to catch up",
        || async {
            let s = status(api, name).await;
            s["lag_records"] == 0 && s["state"] == "running"
        },
    )
    .await;
}

/// Creates `clicks` and `counts` and publishes clicks that close three windows (1 s
/// tumbling): the counts they must give.
async fn three_windows_closed(api: &Api) -> BTreeMap<(String, i64), u64> {
    api.create_topic("clicks", json!({ "partitions": 1 })).await;
    api.create_topic("counts", json!({ "partitions": 1 })).await;
    click(
        api,
        &[("a", 100), ("b", 200), ("a", 900), ("a", 1500), ("b", 2100)],
    )
    .await;
    counts_of(&[("a", 0, 2), ("b", 0, 1), ("a", 1000, 1)])
}

fn counts_of(pairs: &[(&str, i64, u64)]) -> BTreeMap<(String, i64), u64> {
    pairs
        .iter()
        .map(|(k, start, n)| ((k.to_string(), *start), *n))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn windows_close_once_with_their_bounds_and_late_events_go_aside() {
    let server = TestServer::start_with(|plugins, _| install_count(plugins)).await;
    let api = server.client();
    let expected = three_windows_closed(&api).await;
    eventually("the closed windows' counts", || async {
        window_counts(&api, 1).await == expected
    })
    .await;
    // The watermark is 2100: [0, 1000) is closed, so this one is late.
    click(&api, &[("a", 50)]).await;
    eventually("the late event in the side output", || async {
        api.fetch_all("window-count.late", 0, 0).await.len() == 1
    })
    .await;
    let late = api.fetch_all("window-count.late", 0, 0).await;
    assert_eq!(late[0]["headers"]["weir-late"], "true");
    assert_eq!(late[0]["value"]["ts"], 50);
    caught_up(&api, "window-count").await;
    assert_eq!(
        window_counts(&api, 1).await,
        expected,
        "late events change nothing"
    );
    let s = status(&api, "window-count").await;
    assert_eq!(s["counters"]["late"], 1, "{s}");
    assert_eq!(s["counters"]["windows_closed"], 3, "{s}");
    assert_eq!(s["watermark_ms"], 2100, "{s}");
    assert_eq!(s["windows_open"], 1, "b's [2000, 3000) is open: {s}");
    assert_eq!(s["state_size"]["keys"], 1, "its counter: {s}");
    assert_eq!(s["group"], "processor.window-count");
    // The open window's counter is in the state, read-only over HTTP.
    let r = api.get("/v1/processors/window-count/state?limit=10").await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["entries"].as_array().unwrap().len(), 1, "{}", r.body);
    let listed = api.get("/v1/processors").await;
    assert_eq!(listed.body["processors"][0]["name"], "window-count");

    // Paused, it consumes nothing; resumed, it goes on from where it was.
    let r = api
        .post("/v1/processors/window-count/pause", "application/json", "")
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    eventually("the processor to pause", || async {
        status(&api, "window-count").await["state"] == "paused"
    })
    .await;
    click(&api, &[("b", 2500), ("b", 3100)]).await;
    assert_eq!(status(&api, "window-count").await["desired"], "paused");
    let r = api
        .post("/v1/processors/window-count/resume", "application/json", "")
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    eventually("b's second window", || async {
        window_counts(&api, 1).await.get(&("b".to_string(), 2000)) == Some(&2)
    })
    .await;
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_and_javascript_processors_count_windows_like_the_rust_one() {
    for (name, component, field) in [
        ("window-count-py", artifacts::WINDOW_COUNT_PY, "time_field"),
        ("window-count-js", artifacts::WINDOW_COUNT_JS, "timeField"),
    ] {
        count_in(name, component, field).await;
    }
}

/// The window count written in another language counts like the Rust one.
async fn count_in(name: &str, component: &str, time_field: &str) {
    let server = TestServer::start_with(|plugins, _| {
        install_plugin(
            plugins,
            name,
            "processor",
            component,
            &format!(
                "[limits]\ntimeout_ms = 5000\n\
                 [processor]\ninputs = [\"clicks\"]\noutputs = [\"counts\"]\n\
                 windows = {{ kind = \"tumbling\", size_ms = 1000 }}\nevent_time = \"plugin\"\n\
                 [config]\noutput = \"counts\"\n{time_field} = \"ts\"\n"
            ),
        );
    })
    .await;
    let api = server.client();
    let expected = three_windows_closed(&api).await;
    eventually_within(
        Duration::from_secs(60),
        "the Python processor's counts",
        || async { window_counts(&api, 1).await == expected },
    )
    .await;
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_compatible_version_keeps_the_state_and_an_incompatible_one_needs_a_reset() {
    let server = TestServer::start_with(|plugins, _| install_count(plugins)).await;
    let api = server.client();
    api.create_topic("clicks", json!({ "partitions": 1 })).await;
    api.create_topic("counts", json!({ "partitions": 1 })).await;
    click(&api, &[("a", 100), ("a", 200)]).await;
    caught_up(&api, "window-count").await;
    let component = std::fs::read(artifacts::WINDOW_COUNT).unwrap();
    let manifest = |extra: &str| {
        format!(
            "name = \"window-count\"\nkind = \"processor\"\ncomponent = \"plugin.wasm\"\n{}",
            count_manifest(extra)
        )
    };
    // A new version with the same state layout: the open window's count carries on.
    let r = deploy(
        &api,
        "window-count",
        &manifest("allowed_lateness_ms = 10"),
        component.clone(),
    )
    .await;
    assert_eq!(r.status, 201, "{}", r.body);
    let generation = status(&api, "window-count").await["generation"]
        .as_u64()
        .unwrap();
    click(&api, &[("a", 300), ("a", 1200)]).await;
    eventually("the count across both versions", || async {
        window_counts(&api, 1).await == counts_of(&[("a", 0, 3)])
    })
    .await;
    // Another layout would misread the state: refused, the serving version stays.
    let r = deploy(
        &api,
        "window-count",
        &manifest("state_version = 2"),
        component.clone(),
    )
    .await;
    r.assert_problem(409, "state_version_changed");
    assert_eq!(status(&api, "window-count").await["state_version"], 1);
    // With reset_state, the state is cleared and the input processed again.
    let form = reqwest::multipart::Form::new()
        .part(
            "manifest",
            reqwest::multipart::Part::text(manifest("state_version = 2")).file_name("plugin.toml"),
        )
        .part(
            "component",
            reqwest::multipart::Part::bytes(component).file_name("plugin.wasm"),
        );
    let r = api
        .send(
            api.http
                .put(format!(
                    "{}/v1/plugins/window-count?reset_state=true",
                    api.url
                ))
                .multipart(form),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.body);
    assert_eq!(r.body["state_reset"], 1, "{}", r.body);
    eventually("the window counted again after the reset", || async {
        api.fetch_all("counts", 0, 0).await.len() == 2
    })
    .await;
    let again = api.fetch_all("counts", 0, 0).await;
    assert_eq!(again[1]["value"]["count"], 3, "{again:?}");
    let s = status(&api, "window-count").await;
    assert_eq!(s["state_version"], 2);
    assert!(s["generation"].as_u64().unwrap() > generation, "{s}");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dedup_forgets_ids_when_their_timers_fire_and_dead_letters_what_it_cannot_read() {
    let server = TestServer::start_with(|plugins, _| {
        install_plugin(
            plugins,
            "dedup",
            "processor",
            artifacts::DEDUP,
            "[processor]\ninputs = [\"payments\"]\noutputs = [\"unique\"]\n\
             [config]\nfield = \"/id\"\noutput = \"unique\"\nwindow_ms = 300\n",
        );
    })
    .await;
    let api = server.client();
    api.create_topic("payments", json!({ "partitions": 1 }))
        .await;
    api.create_topic("unique", json!({ "partitions": 1 })).await;
    let pay = |id: &str| json!({ "key": "p", "value": { "id": id } });
    api.publish(
        "payments",
        json!([pay("1"), pay("2"), pay("1"), { "key": "p", "value": { "no": "id" } }, pay("2")]),
    )
    .await;
    caught_up(&api, "dedup").await;
    let ids = |records: Vec<Value>| -> Vec<String> {
        records
            .iter()
            .map(|r| r["value"]["id"].as_str().unwrap().to_string())
            .collect()
    };
    // The consumed offset is readable a moment before the outputs stored with it
    // (the flush that makes them visible follows): wait for them as a reader would.
    eventually("the unique ids", || async {
        ids(api.fetch_all("unique", 0, 0).await) == ["1", "2"]
    })
    .await;
    let dead = api.fetch_all("payments.dlq", 0, 0).await;
    assert_eq!(dead.len(), 1, "{dead:?}");
    assert_eq!(dead[0]["value"]["no"], "id");
    assert!(
        dead[0]["headers"]["weir-error"]
            .as_str()
            .unwrap()
            .contains("no id field"),
        "{dead:?}"
    );
    assert_eq!(status(&api, "dedup").await["counters"]["dead_lettered"], 1);
    // The ids are forgotten when their timers fire (processing time, 300 ms).
    eventually("the timers to fire", || async {
        status(&api, "dedup").await["timers"] == 0
    })
    .await;
    api.publish("payments", json!([pay("1")])).await;
    caught_up(&api, "dedup").await;
    eventually("the forgotten id again", || async {
        ids(api.fetch_all("unique", 0, 0).await) == ["1", "2", "1"]
    })
    .await;
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn records_the_plugin_traps_or_fails_on_are_dead_lettered_and_the_rest_go_on() {
    let server = TestServer::start_with(|plugins, _| {
        install_plugin(
            plugins,
            "hostile",
            "processor",
            artifacts::HOSTILE_PROCESSOR,
            "[processor]\ninputs = [\"in\"]\noutputs = [\"out\"]\n[config]\noutput = \"out\"\n",
        );
    })
    .await;
    let api = server.client();
    api.create_topic("in", json!({ "partitions": 1 })).await;
    api.create_topic("out", json!({ "partitions": 1 })).await;
    // More traps and failures than the plugin's breaker allows in a minute (5):
    // retries of a batch count once, so the breaker never stops the processor.
    let values = [
        "a", "trap", "b", "fail", "c", "trap", "fail", "d", "trap", "fail", "e",
    ];
    let records: Vec<Value> = values.iter().map(|v| json!({ "value": v })).collect();
    api.publish("in", json!(records)).await;
    eventually_within(Duration::from_secs(120), "the good records out", || async {
        api.fetch_all("out", 0, 0).await.len() == 5
    })
    .await;
    caught_up(&api, "hostile").await;
    let out: Vec<Value> = api
        .fetch_all("out", 0, 0)
        .await
        .iter()
        .map(|r| r["value"].clone())
        .collect();
    assert_eq!(
        out,
        vec![json!("a"), json!("b"), json!("c"), json!("d"), json!("e")]
    );
    let dead: Vec<Value> = api
        .fetch_all("in.dlq", 0, 0)
        .await
        .iter()
        .map(|r| r["value"].clone())
        .collect();
    assert_eq!(
        dead,
        vec![
            json!("trap"),
            json!("fail"),
            json!("trap"),
            json!("fail"),
            json!("trap"),
            json!("fail")
        ]
    );
    let s = status(&api, "hostile").await;
    assert_eq!(s["counters"]["dead_lettered"], 6, "{s}");
    // Its consumer group moves only with its state: clients may read it, not move it.
    let r = api
        .post(
            "/v1/groups/processor.hostile/offsets",
            "application/json",
            json!({ "offsets": [{ "topic": "in", "partition": 0, "offset": 0 }] }).to_string(),
        )
        .await;
    r.assert_problem(409, "group_reserved");
    let r = api
        .get("/v1/topics/in/records?group=processor.hostile")
        .await;
    r.assert_problem(409, "group_reserved");
    assert_eq!(api.get("/v1/groups/processor.hostile").await.status, 200);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn orders_are_joined_with_their_customers_across_co_partitioned_topics() {
    let server = TestServer::start_with(|plugins, _| {
        install_plugin(
            plugins,
            "order-enrich",
            "processor",
            artifacts::ORDER_ENRICH,
            "[processor]\ninputs = [\"customers\", \"orders\"]\noutputs = [\"enriched\"]\n\
             [config]\ncustomers = \"customers\"\noutput = \"enriched\"\n",
        );
    })
    .await;
    let api = server.client();
    for topic in ["customers", "orders", "enriched"] {
        api.create_topic(topic, json!({ "partitions": 3 })).await;
    }
    let customers: Vec<Value> = (0..6)
        .map(|i| json!({ "key": format!("c{i}"), "value": { "name": format!("n{i}") } }))
        .collect();
    api.publish("customers", json!(customers)).await;
    caught_up(&api, "order-enrich").await;
    let orders: Vec<Value> = (0..8)
        .map(|i| json!({ "key": format!("c{i}"), "value": { "order": i } }))
        .collect();
    api.publish("orders", json!(orders)).await;
    caught_up(&api, "order-enrich").await;
    let mut joined = BTreeMap::new();
    for p in 0..3 {
        for r in api.fetch_all("enriched", p, 0).await {
            joined.insert(
                r["value"]["order"]["order"].as_u64().unwrap(),
                r["value"]["customer"].clone(),
            );
        }
    }
    assert_eq!(joined.len(), 8, "{joined:?}");
    for (order, customer) in &joined {
        let expected = if *order < 6 {
            json!({ "name": format!("n{order}") })
        } else {
            Value::Null
        };
        assert_eq!(customer, &expected, "order {order}");
    }
    server.stop().await;
}

/// Events per run of the SIGKILL test: 1,000,000 for the figure
/// (`WEIR_PROCESSOR_KILL_EVENTS=1000000`), fewer by default so CI stays short.
fn kill_test_events() -> usize {
    std::env::var("WEIR_PROCESSOR_KILL_EVENTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(40_000)
}

async fn publish_range(api: &Api, range: std::ops::Range<usize>) {
    let events: Vec<usize> = range.collect();
    for chunk in events.chunks(2000) {
        let records: Vec<Value> = chunk
            .iter()
            .map(|i| json!({ "key": format!("k{}", i % 100), "value": { "ts": i } }))
            .collect();
        api.publish("clicks", json!(records)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn counts_are_exact_and_windows_emitted_once_across_ten_sigkills() {
    let temp = tempfile::tempdir().unwrap();
    let dir = temp.path();
    install_count(&dir.join("plugins"));
    let total = kill_test_events();
    let rounds = 10;
    let mut server = ServerProcess::start(dir);
    let api = server.client();
    api.create_topic("clicks", json!({ "partitions": 4 })).await;
    api.create_topic("counts", json!({ "partitions": 1 })).await;
    let mut generation = 0;
    for round in 0..rounds {
        let api = server.client();
        publish_range(&api, round * total / rounds..(round + 1) * total / rounds).await;
        // Kill once the processor has made progress on this round's events.
        let lag_before = status(&api, "window-count").await["lag_records"]
            .as_u64()
            .unwrap_or(u64::MAX);
        eventually_within(
            Duration::from_secs(120),
            "progress before the kill",
            || async {
                let s = status(&api, "window-count").await;
                s["lag_records"]
                    .as_u64()
                    .is_some_and(|l| l < lag_before || l == 0)
            },
        )
        .await;
        let s = status(&api, "window-count").await;
        let now = s["generation"].as_u64().unwrap();
        assert!(now > generation, "every start takes a new generation: {s}");
        generation = now;
        server.kill();
        server = ServerProcess::start(dir);
    }
    let api = server.client();
    // An event per key far ahead closes every window on every partition.
    let closing: Vec<Value> = (0..100)
        .map(|k| json!({ "key": format!("k{k}"), "value": { "ts": total + 10_000 } }))
        .collect();
    api.publish("clicks", json!(closing)).await;
    let mut expected: BTreeMap<(String, i64), u64> = BTreeMap::new();
    for i in 0..total {
        *expected
            .entry((format!("k{}", i % 100), (i as i64 / 1000) * 1000))
            .or_default() += 1;
    }
    eventually_within(Duration::from_secs(300), "every window's count", || async {
        let s = status(&api, "window-count").await;
        s["lag_records"] == 0 && api.fetch_all("counts", 0, 0).await.len() >= expected.len()
    })
    .await;
    assert_eq!(window_counts(&api, 1).await, expected);
    server.kill();
}
