//! Hot reload end to end: the real server follows its plugin directory while it
//! serves. Versions are swapped under load, bad versions are refused, failing new
//! versions are rolled back, folders come and go, and plugins are deployed and rolled
//! back over HTTP.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use weir_broker::plugins::PluginFiles;
use weir_test_artifacts as artifacts;

use crate::deploy::deploy;
use crate::harness::{Api, TestServer, install_plugin};

/// Deadline for a change in the plugin directory to show (debug builds compile
/// components slowly; the release figure is in the README).
const SHOWS_WITHIN: Duration = Duration::from_secs(20);

async fn status(api: &Api, name: &str) -> Value {
    let r = api.get(&format!("/v1/plugins/{name}")).await;
    assert_eq!(r.status, 200, "{}", r.body);
    r.body
}

/// Polls `GET /v1/plugins/{name}` until `ok` holds.
async fn wait_for(api: &Api, name: &str, what: &str, ok: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + SHOWS_WITHIN;
    loop {
        let r = api.get(&format!("/v1/plugins/{name}")).await;
        if r.status == 200 && ok(&r.body) {
            return r.body;
        }
        assert!(
            Instant::now() < deadline,
            "plugin {name}: {what} did not happen: {}",
            r.body
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The content hash the folder's files have now.
fn folder_version(dir: &Path) -> String {
    PluginFiles::read(dir).unwrap().version()
}

fn manifest(name: &str, kind: &str, extra: &str) -> String {
    format!("name = \"{name}\"\nkind = \"{kind}\"\ncomponent = \"plugin.wasm\"\n{extra}\n")
}

/// Replaces the folder's files the way a deploy tool does: new files renamed over the
/// old ones.
fn replace_by_rename(dir: &Path, manifest_text: &str, component: &[u8]) {
    std::fs::write(dir.join(".plugin.wasm.new"), component).unwrap();
    std::fs::rename(dir.join(".plugin.wasm.new"), dir.join("plugin.wasm")).unwrap();
    std::fs::write(dir.join(".plugin.toml.new"), manifest_text).unwrap();
    std::fs::rename(dir.join(".plugin.toml.new"), dir.join("plugin.toml")).unwrap();
}

/// Replaces them the way an editor or `cp` does: written in place.
fn replace_in_place(dir: &Path, manifest_text: &str, component: &[u8]) {
    std::fs::write(dir.join("plugin.wasm"), component).unwrap();
    std::fs::write(dir.join("plugin.toml"), manifest_text).unwrap();
}

async fn publish(api: &Api, topic: &str, records: Value) -> crate::harness::Resp {
    api.post(
        &format!("/v1/topics/{topic}/records"),
        "application/json",
        json!({ "records": records }).to_string(),
    )
    .await
}

fn masker_manifest(mask: &str) -> String {
    manifest(
        "masker",
        "transform",
        &format!(
            "[config]\nfields = [\"/secret\"]\nmask = \"{mask}\"\n[[attach]]\ntopic = \"seq\"\non_error = \"reject\""
        ),
    )
}

/// One acknowledged record: where it was stored, and the request it came in.
#[derive(Debug, Clone, Copy)]
struct Acked {
    request: u64,
    partition: u64,
    offset: u64,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn versions_swap_under_load_and_every_record_is_processed_by_exactly_one() {
    let server = TestServer::start_with(|plugins, _| {
        let dir = plugins.join("masker");
        std::fs::create_dir_all(&dir).unwrap();
        replace_in_place(
            &dir,
            &masker_manifest("m0"),
            &std::fs::read(artifacts::REDACT).unwrap(),
        );
    })
    .await;
    let api = server.client();
    let dir = server.dir.join("plugins/masker");
    api.create_topic("seq", json!({ "partitions": 3 })).await;
    let component = std::fs::read(artifacts::REDACT).unwrap();
    let mut mask_of_version: HashMap<String, String> = HashMap::new();
    mask_of_version.insert(folder_version(&dir)[..12].to_string(), "m0".into());

    // Producers publish numbered records in requests of 10 until told to stop.
    let stop = Arc::new(AtomicBool::new(false));
    let mut producers = Vec::new();
    for p in 0..4u64 {
        let api = api.clone();
        let stop = stop.clone();
        producers.push(tokio::spawn(async move {
            let mut acked: BTreeMap<u64, Acked> = BTreeMap::new();
            let mut failures = Vec::new();
            let mut request = 0u64;
            while !stop.load(Ordering::Relaxed) {
                let first = (p << 32) | (request * 10);
                let records: Vec<Value> = (0..10)
                    .map(|i| json!({ "key": format!("k{}", first + i), "value": { "seq": first + i, "secret": "s3cret" } }))
                    .collect();
                let r = publish(&api, "seq", json!(records)).await;
                if r.status != 200 {
                    failures.push(r.body.to_string());
                } else {
                    for (i, res) in r.body["results"].as_array().unwrap().iter().enumerate() {
                        let out = &res["outputs"][0];
                        acked.insert(
                            first + i as u64,
                            Acked {
                                request: (p << 32) | request,
                                partition: out["partition"].as_u64().unwrap(),
                                offset: out["offset"].as_u64().unwrap(),
                            },
                        );
                    }
                }
                request += 1;
            }
            (acked, failures)
        }));
    }

    // Six new versions (new masks) while they publish, alternating how files change.
    for v in 1..=6 {
        tokio::time::sleep(Duration::from_millis(150)).await;
        let mask = format!("m{v}");
        let text = masker_manifest(&mask);
        if v % 2 == 0 {
            replace_by_rename(&dir, &text, &component);
        } else {
            replace_in_place(&dir, &text, &component);
        }
        let version = folder_version(&dir);
        mask_of_version.insert(version[..12].to_string(), mask);
        wait_for(&api, "masker", "the swap", |s| {
            s["version"] == version.as_str()
        })
        .await;
    }
    tokio::time::sleep(Duration::from_millis(150)).await;
    stop.store(true, Ordering::Relaxed);
    let mut acked = BTreeMap::new();
    for p in producers {
        let (a, failures) = p.await.unwrap();
        assert!(
            failures.is_empty(),
            "publishes failed during reloads: {failures:?}"
        );
        acked.extend(a);
    }
    assert!(acked.len() > 100, "too little load: {}", acked.len());

    // Every acknowledged record is stored once, masked by one version, and every
    // record of a request by the same version.
    let mut stored: HashMap<(u64, u64), Value> = HashMap::new();
    for p in 0..3 {
        for r in api.fetch_all("seq", p, 0).await {
            stored.insert((p as u64, r["offset"].as_u64().unwrap()), r);
        }
    }
    assert_eq!(
        stored.len(),
        acked.len(),
        "stored records != acknowledged records"
    );
    let mut masks_seen = HashSet::new();
    let mut mask_of_request: HashMap<u64, String> = HashMap::new();
    for (seq, a) in &acked {
        let r = &stored[&(a.partition, a.offset)];
        assert_eq!(r["value"]["seq"], *seq);
        let mask = r["value"]["secret"].as_str().unwrap().to_string();
        let lineage = r["headers"]["weir-lineage"].as_str().unwrap();
        let version = lineage.strip_prefix("masker@").unwrap();
        assert_eq!(
            mask_of_version.get(version),
            Some(&mask),
            "record {seq}: masked as {mask} but lineage says {lineage}"
        );
        let first = mask_of_request
            .entry(a.request)
            .or_insert_with(|| mask.clone());
        assert_eq!(*first, mask, "one request saw two versions");
        masks_seen.insert(mask);
    }
    assert!(
        masks_seen.len() >= 3,
        "swaps did not happen under load: {masks_seen:?}"
    );

    let s = status(&api, "masker").await;
    assert_eq!(s["reloads"]["activated"], 7);
    assert_eq!(s["reloads"]["rejected"], 0);
    server.stop().await;
}

/// Writes a bad version and waits until it shows as rejected, with the old version
/// still serving.
async fn reject(api: &Api, dir: &Path, rejected_before: u64, text: &str, bytes: &[u8]) -> Value {
    let serving = status(api, "greeter").await["version"].clone();
    let started = Instant::now();
    replace_in_place(dir, text, bytes);
    let s = wait_for(api, "greeter", "the rejection", |s| {
        s["reloads"]["rejected"] == rejected_before + 1
    })
    .await;
    eprintln!("rejection visible after {:?}", started.elapsed());
    assert_eq!(s["version"], serving, "{s}");
    assert_eq!(s["state"], "active");
    let r = &s["rejected_versions"][0];
    assert_eq!(r["outcome"], "rejected");
    assert_eq!(s["last_error"]["message"], r["reason"]);
    let mut r = r.clone();
    r["kind"] = s["last_error"]["kind"].clone();
    r
}

/// The filter still filters as the original version did.
async fn greeter_serves(api: &Api) {
    let r = publish(
        api,
        "greet",
        json!([{ "value": "hello there" }, { "value": "bye" }]),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let statuses: Vec<&str> = r.body["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["status"].as_str().unwrap())
        .collect();
    assert_eq!(statuses, ["stored", "filtered"]);
}

fn greeter_manifest(extra: &str) -> String {
    manifest(
        "greeter",
        "filter",
        &format!("{extra}\n[config]\nword = \"hello\"\n[[attach]]\ntopic = \"greet\""),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_versions_are_refused_or_rolled_back_and_the_old_one_keeps_serving() {
    let server = TestServer::start_with(|plugins, _| {
        install_plugin(
            plugins,
            "greeter",
            "filter",
            artifacts::HELLO_FILTER,
            "[config]\nword = \"hello\"\n[[attach]]\ntopic = \"greet\"",
        );
    })
    .await;
    let api = server.client();
    api.create_topic("greet", json!({ "partitions": 1 })).await;
    let dir = server.dir.join("plugins/greeter");
    let good_bytes = std::fs::read(artifacts::HELLO_FILTER).unwrap();
    let good_text = std::fs::read_to_string(dir.join("plugin.toml")).unwrap();
    let good = folder_version(&dir);
    greeter_serves(&api).await;

    // Refused at load: each keeps the good version serving.
    let text = greeter_manifest("");
    let r = reject(&api, &dir, 0, &text, b"this is not wasm").await;
    assert!(
        r["reason"]
            .as_str()
            .unwrap()
            .contains("not a valid component"),
        "{r}"
    );
    assert!(r["file"].as_str().unwrap().ends_with("plugin.wasm"), "{r}");
    let r = reject(&api, &dir, 1, &text, &good_bytes[..good_bytes.len() / 2]).await;
    assert!(
        r["reason"]
            .as_str()
            .unwrap()
            .contains("not a valid component"),
        "{r}"
    );
    let shout = std::fs::read(artifacts::SHOUT_TRANSFORM).unwrap();
    let r = reject(&api, &dir, 2, &text, &shout).await;
    assert!(
        r["reason"].as_str().unwrap().contains("'filter' world"),
        "{r}"
    );
    let init_trap = std::fs::read(artifacts::HOSTILE_INIT_TRAP).unwrap();
    let r = reject(&api, &dir, 3, &text, &init_trap).await;
    assert_eq!(r["kind"], "plugin_init_rejected", "{r}");
    let r = reject(&api, &dir, 4, "name = \"greeter\"\nkind = ", &good_bytes).await;
    assert_eq!(r["kind"], "plugin_manifest_invalid", "{r}");
    let r = reject(
        &api,
        &dir,
        5,
        &greeter_manifest("").replace("hello", ""),
        &good_bytes,
    )
    .await;
    assert!(
        r["reason"]
            .as_str()
            .unwrap()
            .contains("word must not be empty"),
        "{r}"
    );
    assert_eq!(r["kind"], "plugin_init_rejected", "{r}");
    greeter_serves(&api).await;

    // Loaded, then failing on its first events: rolled back, files restored.
    for (hostile, limits, first) in [
        (artifacts::HOSTILE_PANIC_ON_BOOM, "", "boom"),
        (
            artifacts::HOSTILE_LOOP_FOREVER,
            "[limits]\ntimeout_ms = 50",
            "hello",
        ),
    ] {
        let rolled_back_before = status(&api, "greeter").await["reloads"]["rolled_back"]
            .as_u64()
            .unwrap();
        replace_in_place(
            &dir,
            &greeter_manifest(limits),
            &std::fs::read(hostile).unwrap(),
        );
        let bad = folder_version(&dir);
        wait_for(&api, "greeter", "activation", |s| {
            s["version"] == bad.as_str()
        })
        .await;
        let r = publish(&api, "greet", json!([{ "value": first }])).await;
        assert_eq!(r.status, 200, "{}", r.body);
        let s = wait_for(&api, "greeter", "the rollback", |s| {
            s["version"] == good.as_str() && s["reloads"]["rolled_back"] == rolled_back_before + 1
        })
        .await;
        assert_eq!(s["state"], "active");
        let v = api.get("/v1/plugins/greeter/versions").await.body;
        assert_eq!(v["current"], good.as_str());
        assert_eq!(v["versions"][0]["origin"], "rollback");
        assert_eq!(v["versions"][1]["version"], bad.as_str());
        assert_eq!(v["versions"][1]["outcome"], "rolled_back");
        assert!(
            v["versions"][1]["reason"]
                .as_str()
                .unwrap()
                .contains("automatic rollback"),
            "{v}"
        );
        // The folder holds the serving version again, so a restart serves it too.
        let deadline = Instant::now() + SHOWS_WITHIN;
        while folder_version(&dir) != good {
            assert!(Instant::now() < deadline, "files not restored");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert_eq!(
            std::fs::read_to_string(dir.join("plugin.toml")).unwrap(),
            good_text
        );
        greeter_serves(&api).await;
    }
    // The same figures for Prometheus.
    let metrics = api.metrics_text().await;
    for line in [
        "weir_plugin_reloads_total{plugin=\"greeter\",result=\"rejected\"} 6",
        "weir_plugin_reloads_total{plugin=\"greeter\",result=\"rolled_back\"} 2",
        "weir_plugin_state{plugin=\"greeter\",state=\"active\"} 1",
    ] {
        assert!(
            metrics.lines().any(|l| l == line),
            "{line} not in:\n{metrics}"
        );
    }
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slowly_written_folder_is_loaded_once_complete() {
    // Pauses of 100 ms between writes, a debounce of 500 ms: margin for a busy CI
    // machine.
    let server = TestServer::start_with(|_, c| c.plugins.reload_debounce_ms = 500).await;
    let api = server.client();
    api.create_topic("greet", json!({ "partitions": 1 })).await;
    let dir = server.dir.join("plugins/greeter");
    std::fs::create_dir_all(&dir).unwrap();
    // The manifest first, then the component in pieces with pauses shorter than the
    // debounce: a folder copied file by file by a slow tool.
    std::fs::write(dir.join("plugin.toml"), greeter_manifest("")).unwrap();
    let bytes = std::fs::read(artifacts::HELLO_FILTER).unwrap();
    {
        use std::io::Write;
        let mut f = std::fs::File::create(dir.join("plugin.wasm")).unwrap();
        for chunk in bytes.chunks(bytes.len().div_ceil(8)) {
            tokio::time::sleep(Duration::from_millis(100)).await;
            f.write_all(chunk).unwrap();
            f.flush().unwrap();
        }
    }
    let s = wait_for(&api, "greeter", "the load", |s| s["state"] == "active").await;
    assert_eq!(s["version"], folder_version(&dir).as_str());
    tokio::time::sleep(Duration::from_millis(600)).await;
    let s = status(&api, "greeter").await;
    assert_eq!(s["reloads"]["activated"], 1, "{s}");
    assert_eq!(s["reloads"]["rejected"], 0, "{s}");
    greeter_serves(&api).await;
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleting_a_folder_detaches_the_plugin_and_re_adding_it_restores_it() {
    let server = TestServer::start_with(|plugins, _| {
        install_plugin(
            plugins,
            "shout",
            "transform",
            artifacts::SHOUT_TRANSFORM,
            "[[attach]]\ntopic = \"loud\"",
        );
    })
    .await;
    let api = server.client();
    api.create_topic("loud", json!({ "partitions": 1 })).await;
    let plugins = server.dir.join("plugins");
    let value_stored = |api: Api, text: &'static str| async move {
        let r = publish(&api, "loud", json!([{ "value": text }])).await;
        assert_eq!(r.status, 200, "{}", r.body);
        // A pipeline answers with results, a plain topic with offsets.
        let offset = r.body["results"][0]["outputs"][0]["offset"]
            .as_u64()
            .or_else(|| r.body["offsets"][0]["offset"].as_u64())
            .unwrap_or_else(|| panic!("{}", r.body));
        let recs = api.fetch_all("loud", 0, offset).await;
        recs[0]["value"].as_str().unwrap().to_string()
    };
    assert_eq!(value_stored(api.clone(), "hi").await, "HI");

    // Moved away (a folder rename out of the directory, then deleted).
    let away = server.dir.join("shout-away");
    std::fs::rename(plugins.join("shout"), &away).unwrap();
    let s = wait_for(&api, "shout", "removal", |s| s["state"] == "removed").await;
    assert!(s["attachments"].as_array().unwrap().is_empty(), "{s}");
    // The topic keeps working without it: records pass unchanged, nothing fails.
    assert_eq!(value_stored(api.clone(), "hi").await, "hi");
    let d = api.describe("loud").await;
    assert!(d["chain"].as_array().is_none_or(|c| c.is_empty()), "{d}");

    // Back again (a folder moved in whole).
    std::fs::rename(&away, plugins.join("shout")).unwrap();
    wait_for(&api, "shout", "re-add", |s| s["state"] == "active").await;
    assert_eq!(value_stored(api.clone(), "hey").await, "HEY");
    let v = api.get("/v1/plugins/shout/versions").await.body;
    let outcomes: Vec<&str> = v["versions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["outcome"].as_str().unwrap())
        .collect();
    assert_eq!(outcomes, ["active", "removed"]);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rollback_through_the_api_restores_the_previous_version() {
    let server = TestServer::start_with(|plugins, _| {
        let dir = plugins.join("masker");
        std::fs::create_dir_all(&dir).unwrap();
        replace_in_place(
            &dir,
            &masker_manifest("first"),
            &std::fs::read(artifacts::REDACT).unwrap(),
        );
    })
    .await;
    let api = server.client();
    api.create_topic("seq", json!({ "partitions": 1 })).await;
    let dir = server.dir.join("plugins/masker");
    let v1 = folder_version(&dir);
    let r = api
        .post("/v1/plugins/masker/rollback", "application/json", "")
        .await;
    r.assert_problem(409, "plugin_no_previous_version");

    replace_by_rename(
        &dir,
        &masker_manifest("second"),
        &std::fs::read(artifacts::REDACT).unwrap(),
    );
    let v2 = folder_version(&dir);
    wait_for(&api, "masker", "v2", |s| s["version"] == v2.as_str()).await;
    let masked = |api: Api| async move {
        let r = publish(&api, "seq", json!([{ "value": { "secret": "x" } }])).await;
        let out = &r.body["results"][0]["outputs"][0];
        let recs = api
            .fetch_all("seq", 0, out["offset"].as_u64().unwrap())
            .await;
        recs[0]["value"]["secret"].as_str().unwrap().to_string()
    };
    assert_eq!(masked(api.clone()).await, "second");

    let r = api
        .post("/v1/plugins/masker/rollback", "application/json", "")
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["version"], v1.as_str());
    assert_eq!(r.body["rolled_back"], v2.as_str());
    assert_eq!(masked(api.clone()).await, "first");
    let v = api.get("/v1/plugins/masker/versions").await.body;
    let summary: Vec<(String, String)> = v["versions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["version"].as_str().unwrap()[..8].to_string(),
                e["outcome"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert_eq!(
        summary,
        [
            (v1[..8].to_string(), "active".to_string()),
            (v2[..8].to_string(), "rolled_back".to_string()),
            (v1[..8].to_string(), "replaced".to_string()),
        ]
    );
    assert!(v["versions"][0]["at_ms"].as_u64().unwrap() > 0);
    let deadline = Instant::now() + SHOWS_WITHIN;
    while folder_version(&dir) != v1 {
        assert!(Instant::now() < deadline, "files not restored");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // Nothing earlier than v1 served: no further rollback.
    let r = api
        .post("/v1/plugins/masker/rollback", "application/json", "")
        .await;
    r.assert_problem(409, "plugin_no_previous_version");
    let r = api
        .post("/v1/plugins/nobody/rollback", "application/json", "")
        .await;
    r.assert_problem(404, "plugin_not_found");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plugins_deploy_over_http_into_the_plugin_directory() {
    let server = TestServer::start().await;
    let api = server.client();
    api.create_topic("greet", json!({ "partitions": 1 })).await;
    let bytes = std::fs::read(artifacts::HELLO_FILTER).unwrap();
    let text = greeter_manifest("");

    let r = deploy(&api, "greeter", &text, bytes.clone()).await;
    assert_eq!(r.status, 201, "{}", r.body);
    assert_eq!(r.body["outcome"], "activated");
    let version = r.body["version"].as_str().unwrap().to_string();
    let dir: PathBuf = server.dir.join("plugins/greeter");
    assert_eq!(folder_version(&dir), version);
    greeter_serves(&api).await;
    let r = deploy(&api, "greeter", &text, bytes.clone()).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["outcome"], "unchanged");

    // A bad version is refused and nothing is written.
    let r = deploy(&api, "greeter", &text, b"\0asm garbage".to_vec()).await;
    r.assert_problem(422, "plugin_version_rejected");
    assert_eq!(r.body["reason_code"], "plugin_component_invalid");
    assert_eq!(folder_version(&dir), version);
    let s = status(&api, "greeter").await;
    assert_eq!(s["version"], version.as_str());
    assert_eq!(s["rejected_versions"].as_array().unwrap().len(), 1);
    greeter_serves(&api).await;

    let r = deploy(&api, "other", &text, bytes.clone()).await;
    r.assert_problem(422, "plugin_version_rejected");
    assert!(
        r.body["detail"].as_str().unwrap().contains("not 'other'"),
        "{}",
        r.body
    );
    let escape = text.replace("plugin.wasm", "../escape.wasm");
    let r = deploy(&api, "greeter", &escape, bytes.clone()).await;
    r.assert_problem(422, "plugin_version_rejected");
    assert!(!server.dir.join("plugins/escape.wasm").exists());
    let r = api
        .send(
            api.http
                .put(format!("{}/v1/plugins/greeter", api.url))
                .header("content-type", "application/json")
                .body("{}"),
        )
        .await;
    r.assert_problem(415, "unsupported_media_type");
    let form = reqwest::multipart::Form::new().text("manifest", text.clone());
    let r = api
        .send(
            api.http
                .put(format!("{}/v1/plugins/greeter", api.url))
                .multipart(form),
        )
        .await;
    r.assert_problem(400, "invalid_request");

    // The watcher sees the files the deploy wrote and finds nothing new.
    tokio::time::sleep(Duration::from_millis(700)).await;
    let s = status(&api, "greeter").await;
    assert_eq!(s["reloads"]["activated"], 1, "{s}");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn attachment_changes_in_the_manifest_take_effect_live() {
    let server = TestServer::start_with(|plugins, _| {
        install_plugin(
            plugins,
            "shout",
            "transform",
            artifacts::SHOUT_TRANSFORM,
            "[[attach]]\ntopic = \"a\"",
        );
    })
    .await;
    let api = server.client();
    for t in ["a", "b"] {
        api.create_topic(t, json!({ "partitions": 1 })).await;
    }
    let chain = |api: Api, topic: &'static str| async move {
        let d = api.describe(topic).await;
        d["chain"]
            .as_array()
            .map(|c| {
                c.iter()
                    .map(|s| s["plugin"].to_string())
                    .collect::<Vec<_>>()
            })
            .unwrap_or_default()
    };
    assert_eq!(chain(api.clone(), "a").await, ["\"shout\""]);
    assert!(chain(api.clone(), "b").await.is_empty());
    let dir = server.dir.join("plugins/shout");
    let text = std::fs::read_to_string(dir.join("plugin.toml"))
        .unwrap()
        .replace("topic = \"a\"", "topic = \"b\"");
    std::fs::write(dir.join("plugin.toml"), text).unwrap();
    let version = folder_version(&dir);
    wait_for(&api, "shout", "the new attachment", |s| {
        s["version"] == version.as_str()
    })
    .await;
    assert!(chain(api.clone(), "a").await.is_empty());
    assert_eq!(chain(api.clone(), "b").await, ["\"shout\""]);
    let r = publish(&api, "b", json!([{ "value": "hi" }])).await;
    assert_eq!(r.body["results"][0]["status"], "stored", "{}", r.body);
    let r = publish(&api, "a", json!([{ "value": "hi" }])).await;
    assert_eq!(r.body["offsets"][0]["offset"], 0, "{}", r.body);
    server.stop().await;
}
