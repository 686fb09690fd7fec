//! Connectors end to end: real source and sink plugins built from source, real
//! loopback HTTP servers started by the test (failing on demand), real files, the
//! real `weir` binary killed with SIGKILL.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use axum::extract::{Query, State};
use axum::http::StatusCode;
use bytes::Bytes;
use serde_json::{Value, json};
use std::sync::Mutex;
use weir_test_artifacts as artifacts;

use crate::harness::{
    Api, ServerProcess, TestServer, allow_connectors, eventually, eventually_within,
    install_plugin, test_config,
};

/// A loopback HTTP server: `POST /ingest` receives a sink's batches, `GET /items`
/// serves a source's items after a cursor. Both fail with 503 on demand.
struct Remote {
    url: String,
    state: Arc<RemoteState>,
}

#[derive(Default)]
struct RemoteState {
    /// Each accepted POST body (a JSON array of events).
    batches: Mutex<Vec<Vec<Value>>>,
    /// Items `GET /items` serves, by ascending `id`.
    items: Mutex<Vec<Value>>,
    requests: AtomicU64,
    /// Every n-th request fails (0: none).
    fail_every: AtomicU64,
    /// Every request fails.
    outage: AtomicBool,
}

impl RemoteState {
    fn fails_now(&self) -> bool {
        let n = self.requests.fetch_add(1, Ordering::Relaxed) + 1;
        let every = self.fail_every.load(Ordering::Relaxed);
        self.outage.load(Ordering::Relaxed) || (every > 0 && n.is_multiple_of(every))
    }
}

impl Remote {
    async fn start() -> Remote {
        let state = Arc::new(RemoteState::default());
        let app = axum::Router::new()
            .route("/ingest", axum::routing::post(ingest))
            .route("/items", axum::routing::get(items))
            .with_state(state.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await });
        Remote { url, state }
    }

    fn host(&self) -> &str {
        self.url.trim_start_matches("http://")
    }

    /// Every event received, first delivery per (partition, offset) kept.
    fn received(&self) -> BTreeMap<(u64, u64), Value> {
        let mut out = BTreeMap::new();
        for batch in self.state.batches.lock().unwrap().iter() {
            for e in batch {
                let key = (
                    e["partition"].as_u64().unwrap(),
                    e["offset"].as_u64().unwrap(),
                );
                out.entry(key).or_insert_with(|| e.clone());
            }
        }
        out
    }
}

async fn ingest(State(s): State<Arc<RemoteState>>, body: Bytes) -> StatusCode {
    if s.fails_now() {
        return StatusCode::SERVICE_UNAVAILABLE;
    }
    let batch: Vec<Value> = serde_json::from_slice(&body).expect("a JSON array");
    s.batches.lock().unwrap().push(batch);
    StatusCode::OK
}

async fn items(
    State(s): State<Arc<RemoteState>>,
    Query(q): Query<HashMap<String, String>>,
) -> Result<axum::Json<Vec<Value>>, StatusCode> {
    if s.fails_now() {
        return Err(StatusCode::SERVICE_UNAVAILABLE);
    }
    let after: i64 = q.get("cursor").map_or(-1, |c| c.parse().unwrap());
    let limit: usize = q.get("limit").map_or(usize::MAX, |l| l.parse().unwrap());
    let items = s.items.lock().unwrap();
    Ok(axum::Json(
        items
            .iter()
            .filter(|i| i["id"].as_i64().unwrap() > after)
            .take(limit.min(7))
            .cloned()
            .collect(),
    ))
}

async fn connector(api: &Api, name: &str) -> Value {
    let r = api.get(&format!("/v1/connectors/{name}")).await;
    assert_eq!(r.status, 200, "{}", r.body);
    r.body
}

/// Publishes `n` records keyed over 10 keys, `{"n": from + i}`, in requests of 50.
async fn publish_numbered(api: &Api, topic: &str, from: usize, n: usize) {
    for chunk in (from..from + n).collect::<Vec<_>>().chunks(50) {
        let records: Vec<Value> = chunk
            .iter()
            .map(|i| json!({ "key": format!("k{}", i % 10), "value": { "n": i } }))
            .collect();
        api.publish(topic, json!(records)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_sink_delivers_every_record_in_order_through_failures_and_a_kill() {
    let remote = Remote::start().await;
    remote.state.fail_every.store(3, Ordering::Relaxed);
    let temp = tempfile::tempdir().unwrap();
    install_plugin(
        &temp.path().join("plugins"),
        "orders-out",
        "sink",
        artifacts::HTTP_SINK,
        &format!(
            "[[attach]]\ntopic = \"orders\"\n[grants]\nhttp = [\"{}\"]\n\
             [connector]\nbatch_max = 40\nmax_retries = 2\nbackoff_initial_ms = 10\nbackoff_max_ms = 100\npoll_interval_ms = 20\n\
             [config]\nurl = \"{}/ingest\"\n",
            remote.host(),
            remote.url
        ),
    );
    let config = allow_connectors(&[], &[remote.host()]);
    let server = ServerProcess::start_configured(temp.path(), &config);
    let api = server.client();
    api.create_topic("orders", json!({ "partitions": 3 })).await;
    publish_numbered(&api, "orders", 0, 300).await;
    // An outage while records keep coming, then SIGKILL mid-stream.
    remote.state.outage.store(true, Ordering::Relaxed);
    publish_numbered(&api, "orders", 300, 200).await;
    // The outage lasts past max_retries (2): it is waited out, not dead-lettered.
    eventually("retries beyond max_retries during the outage", || async {
        connector(&api, "orders-out").await["retries"].as_u64() > Some(2)
    })
    .await;
    remote.state.outage.store(false, Ordering::Relaxed);
    tokio::time::sleep(Duration::from_millis(150)).await;
    server.kill();

    let server = ServerProcess::start_configured(temp.path(), &config);
    let api = server.client();
    publish_numbered(&api, "orders", 500, 100).await;
    let mut expected: BTreeMap<(u64, u64), Value> = BTreeMap::new();
    for p in 0..3u32 {
        for r in api.fetch_all("orders", p, 0).await {
            expected.insert(
                (u64::from(p), r["offset"].as_u64().unwrap()),
                r["value"].clone(),
            );
        }
    }
    assert_eq!(expected.len(), 600);
    eventually_within(
        Duration::from_secs(60),
        "every record delivered",
        || async { remote.received().len() == 600 },
    )
    .await;
    // Every record, with the value stored at its offset.
    for (key, e) in remote.received() {
        assert_eq!(Some(&e["value"]), expected.get(&key), "{key:?}");
        assert_eq!(e["topic"], "orders");
    }
    // In order per partition: a batch never starts past the next undelivered offset,
    // and offsets ascend within it.
    let mut next: HashMap<u64, u64> = HashMap::new();
    let mut redelivered = 0;
    for batch in remote.state.batches.lock().unwrap().iter() {
        let p = batch[0]["partition"].as_u64().unwrap();
        let offsets: Vec<u64> = batch
            .iter()
            .map(|e| e["offset"].as_u64().unwrap())
            .collect();
        assert!(offsets.windows(2).all(|w| w[1] > w[0]), "{offsets:?}");
        let expect = next.entry(p).or_insert(0);
        assert!(
            offsets[0] <= *expect,
            "gap in partition {p}: {} after {}",
            offsets[0],
            expect
        );
        if offsets[0] < *expect {
            redelivered += 1;
        }
        *expect = (*expect).max(offsets.last().unwrap() + 1);
    }
    eprintln!("batches re-delivered after failures or the kill: {redelivered}");
    eventually("lag 0", || async {
        connector(&api, "orders-out").await["lag_records"] == 0
    })
    .await;
    let status = connector(&api, "orders-out").await;
    assert_eq!(status["state"], "running", "{status}");
    assert_eq!(status["group"], "connector.orders-out");
    // The outage was waited out: nothing is dead-lettered for it.
    assert_eq!(status["dead_lettered"], 0, "{status}");
    api.get("/v1/topics/orders.dlq")
        .await
        .assert_problem(404, "topic_not_found");
    let group = api.get("/v1/groups/connector.orders-out").await;
    assert_eq!(group.status, 200, "{}", group.body);
    server.kill();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sources_resume_without_gaps_or_repeats_after_a_kill() {
    let temp = tempfile::tempdir().unwrap();
    let inbox = temp.path().join("inbox");
    std::fs::create_dir_all(&inbox).unwrap();
    let plugins = temp.path().join("plugins");
    install_plugin(
        &plugins,
        "tail",
        "source",
        artifacts::FILE_SOURCE,
        &format!(
            "[[attach]]\ntopic = \"lines\"\n[grants]\ndirs = [\"{0}\"]\n\
             [connector]\nbatch_max = 25\npoll_interval_ms = 20\nbackoff_initial_ms = 10\nbackoff_max_ms = 50\n\
             [config]\ndir = \"{0}\"\nread_bytes = 2000\n",
            inbox.display()
        ),
    );
    install_plugin(
        &plugins,
        "gen",
        "source",
        artifacts::GENERATOR,
        "[[attach]]\ntopic = \"synthetic\"\n[connector]\nbatch_max = 50\npoll_interval_ms = 10\n\
         [config]\nrate = 4000\ntotal = 3000\n",
    );
    let line = |i: usize| format!("{{\"line\":{i}}}\n");
    let write_lines = |file: &str, range: std::ops::Range<usize>| {
        use std::io::Write;
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(inbox.join(file))
            .unwrap();
        for i in range {
            f.write_all(line(i).as_bytes()).unwrap();
        }
    };
    write_lines("a.ndjson", 0..400);
    let config = allow_connectors(&[&inbox], &[]);
    let server = ServerProcess::start_configured(temp.path(), &config);
    let api = server.client();
    api.create_topic("lines", json!({ "partitions": 1 })).await;
    api.create_topic("synthetic", json!({ "partitions": 2 }))
        .await;
    // A partial line is not read until it is complete.
    {
        use std::io::Write;
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .open(inbox.join("a.ndjson"))
            .unwrap();
        f.write_all(b"{\"line\":400").unwrap();
        tokio::time::sleep(Duration::from_millis(100)).await;
        f.write_all(b"}\n").unwrap();
    }
    write_lines("b.ndjson", 401..700);
    // Kill while both sources are mid-way.
    eventually("some lines published", || async {
        api.offsets("lines", 0).await.1 > 50
    })
    .await;
    server.kill();

    write_lines("b.ndjson", 700..900);
    let server = ServerProcess::start_configured(temp.path(), &config);
    let api = server.client();
    eventually_within(Duration::from_secs(60), "900 lines", || async {
        api.offsets("lines", 0).await.1 >= 900
    })
    .await;
    eventually_within(Duration::from_secs(60), "3000 generated", || async {
        api.offsets("synthetic", 0).await.1 + api.offsets("synthetic", 1).await.1 >= 3000
    })
    .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let lines: Vec<i64> = api
        .fetch_all("lines", 0, 0)
        .await
        .iter()
        .map(|r| r["value"]["line"].as_i64().unwrap())
        .collect();
    assert_eq!(
        lines,
        (0..900).collect::<Vec<i64>>(),
        "lines in file order, once each"
    );
    let mut seqs: Vec<i64> = Vec::new();
    for p in 0..2 {
        seqs.extend(
            api.fetch_all("synthetic", p, 0)
                .await
                .iter()
                .map(|r| r["value"]["seq"].as_i64().unwrap()),
        );
    }
    seqs.sort_unstable();
    assert_eq!(
        seqs,
        (0..3000).collect::<Vec<i64>>(),
        "each sequence number once"
    );
    let status = connector(&api, "tail").await;
    assert_eq!(status["kind"], "source");
    assert_eq!(status["errors"], 0, "{status}");
    server.kill();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_source_follows_its_cursor_through_failures_and_a_restart() {
    let remote = Remote::start().await;
    remote.state.fail_every.store(4, Ordering::Relaxed);
    remote
        .state
        .items
        .lock()
        .unwrap()
        .extend((0..40).map(|i| json!({ "id": i, "name": format!("item-{i}") })));
    let (host, url) = (remote.host().to_string(), remote.url.clone());
    let allowed = vec![host.clone()];
    let setup = move |plugins: &std::path::Path, c: &mut weir_server::Config| {
        c.connectors.allowed_hosts = allowed;
        install_plugin(
            plugins,
            "poller",
            "source",
            artifacts::HTTP_SOURCE,
            &format!(
                "[[attach]]\ntopic = \"items\"\n[grants]\nhttp = [\"{host}\"]\n\
                 [connector]\npoll_interval_ms = 20\nbackoff_initial_ms = 10\nbackoff_max_ms = 50\n\
                 [config]\nurl = \"{url}/items\"\nlimit_param = \"limit\"\nkey_field = \"name\"\n"
            ),
        );
    };
    let server = TestServer::start_with(setup).await;
    let api = server.client();
    api.create_topic("items", json!({ "partitions": 1 })).await;
    eventually("40 items", || async {
        api.offsets("items", 0).await.1 >= 40
    })
    .await;
    let dir = server.dir.clone();
    let temp = server.stop().await;
    remote
        .state
        .items
        .lock()
        .unwrap()
        .extend((40..60).map(|i| json!({ "id": i, "name": format!("item-{i}") })));
    let mut config = test_config(&dir);
    config.connectors.allowed_hosts = vec![remote.host().to_string()];
    let server = TestServer::start_in(&dir, config).await;
    let api = server.client();
    eventually("60 items", || async {
        api.offsets("items", 0).await.1 >= 60
    })
    .await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    let records = api.fetch_all("items", 0, 0).await;
    let ids: Vec<i64> = records
        .iter()
        .map(|r| r["value"]["id"].as_i64().unwrap())
        .collect();
    assert_eq!(ids, (0..60).collect::<Vec<i64>>());
    assert_eq!(records[5]["key"], "item-5");
    let status = connector(&api, "poller").await;
    assert!(
        status["errors"].as_u64().unwrap() > 0,
        "the server failed every 4th request: {status}"
    );
    server.stop().await;
    drop(temp);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn capability_violations_are_refused() {
    let remote = Remote::start().await;
    let outside = tempfile::tempdir().unwrap();
    let secret = outside.path().join("secret.txt");
    std::fs::write(&secret, "do not read").unwrap();
    let allowed = tempfile::tempdir().unwrap();
    let (url, secret_path, allowed_dir, outside_dir) = (
        remote.url.clone(),
        secret.display().to_string(),
        allowed.path().display().to_string(),
        outside.path().display().to_string(),
    );
    // The operator allows these; the plugins then reach past them at run time.
    let bounds = allowed.path().to_path_buf();
    let server = TestServer::start_with(move |plugins, c| {
        c.connectors.allowed_dirs = vec![bounds];
        c.connectors.allowed_hosts = vec!["127.0.0.1:1".into()];
        install_plugin(
            plugins,
            "escape",
            "source",
            artifacts::ESCAPE_SOURCE,
            &format!(
                "[[attach]]\ntopic = \"loot\"\n[grants]\nhttp = [\"127.0.0.1:1\"]\ndirs = [\"{allowed_dir}\"]\n\
                 [config]\nurl = \"{url}/items\"\npath = \"{secret_path}\"\n"
            ),
        );
        // A file sink told to write outside its grant fails at init.
        install_plugin(
            plugins,
            "misplaced",
            "sink",
            artifacts::FILE_SINK,
            &format!(
                "[[attach]]\ntopic = \"loot\"\n[grants]\ndirs = [\"{allowed_dir}\"]\n[config]\ndir = \"{outside_dir}/out\"\n"
            ),
        );
    })
    .await;
    let api = server.client();
    api.create_topic("loot", json!({ "partitions": 1 })).await;
    eventually("the escape attempt's report", || async {
        api.offsets("loot", 0).await.1 >= 1
    })
    .await;
    let report = &api.fetch_all("loot", 0, 0).await[0]["value"];
    for field in ["http", "file"] {
        let text = report[field].as_str().unwrap();
        assert!(text.starts_with("capability_denied"), "{field}: {text}");
    }
    assert_eq!(
        remote.state.requests.load(Ordering::Relaxed),
        0,
        "no request left the sandbox"
    );
    let status = connector(&api, "escape").await;
    assert_eq!(status["capability_refusals"], 2, "{status}");
    let misplaced = connector(&api, "misplaced").await;
    assert_eq!(misplaced["state"], "failed", "{misplaced}");
    let why = misplaced["last_error"]["message"].as_str().unwrap();
    assert!(why.contains("capability_denied"), "{why}");
    assert!(!outside.path().join("out").exists());
    let metrics = api.metrics_text().await;
    let line = "weir_connector_capability_refusals_total{connector=\"escape\",kind=\"source\"} 2";
    assert!(
        metrics.lines().any(|l| l == line),
        "{line} not in:\n{metrics}"
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_trapping_sink_is_retried_then_dead_lettered_while_others_run() {
    let out = tempfile::tempdir().unwrap();
    let root = out.path().to_path_buf();
    let (hostile_dir, files_dir) = (out.path().join("hostile"), out.path().join("files"));
    std::fs::create_dir_all(&hostile_dir).unwrap();
    let (h, f) = (
        hostile_dir.display().to_string(),
        files_dir.display().to_string(),
    );
    let server = TestServer::start_with(move |plugins, c| {
        c.connectors.allowed_dirs = vec![root];
        install_plugin(
            plugins,
            "fragile",
            "sink",
            artifacts::HOSTILE_SINK,
            &format!(
                "[[attach]]\ntopic = \"jobs\"\n[grants]\ndirs = [\"{h}\"]\n[limits]\ntimeout_ms = 300\n\
                 [connector]\nmax_retries = 2\nbackoff_initial_ms = 20\nbackoff_max_ms = 40\npoll_interval_ms = 20\n\
                 [config]\ndir = \"{h}\"\n"
            ),
        );
        install_plugin(
            plugins,
            "archive",
            "sink",
            artifacts::FILE_SINK,
            &format!(
                "[[attach]]\ntopic = \"jobs\"\n[grants]\ndirs = [\"{f}\"]\n[connector]\npoll_interval_ms = 20\n[config]\ndir = \"{f}\"\n"
            ),
        );
    })
    .await;
    let api = server.client();
    api.create_topic("jobs", json!({ "partitions": 1 })).await;
    api.publish(
        "jobs",
        json!([
            { "value": "ok 1" }, { "value": "trap now" }, { "value": "ok 2" },
            { "value": "loop now" }, { "value": "ok 3" }
        ]),
    )
    .await;
    eventually_within(Duration::from_secs(30), "two dead letters", || async {
        connector(&api, "fragile").await["dead_lettered"] == 2
    })
    .await;
    let letters = api.fetch_all("jobs.dlq", 0, 0).await;
    let values: Vec<&str> = letters
        .iter()
        .map(|r| r["value"].as_str().unwrap())
        .collect();
    assert_eq!(values, ["trap now", "loop now"]);
    let kinds: Vec<&Value> = letters
        .iter()
        .map(|r| &r["headers"]["weir-dlq-error-kind"])
        .collect();
    assert_eq!(
        kinds,
        [&json!("plugin_trap"), &json!("plugin_timeout")],
        "{letters:?}"
    );
    assert_eq!(letters[0]["headers"]["weir-dlq-connector"], "fragile");
    assert_eq!(letters[0]["headers"]["weir-dlq-offset"], "1");
    // The good events reached the hostile sink's own output, once the bad ones were
    // isolated; the other connector delivered everything meanwhile.
    let delivered =
        std::fs::read_to_string(hostile_dir.join("delivered.ndjson")).unwrap_or_default();
    for v in ["ok 1", "ok 2", "ok 3"] {
        assert!(delivered.contains(v), "{v} in {delivered}");
    }
    eventually("the archive has all five", || async {
        std::fs::read_to_string(files_dir.join("jobs-0.ndjson"))
            .is_ok_and(|t| t.lines().count() == 5)
    })
    .await;
    let status = connector(&api, "fragile").await;
    assert!(status["retries"].as_u64().unwrap() >= 2, "{status}");
    assert_eq!(status["lag_records"], 0, "{status}");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connectors_pause_resume_and_stay_paused_across_a_restart() {
    let out = tempfile::tempdir().unwrap();
    let root = out.path().to_path_buf();
    let d = out.path().display().to_string();
    let server = TestServer::start_with(move |plugins, c| {
        c.connectors.allowed_dirs = vec![root];
        install_plugin(
            plugins,
            "archive",
            "sink",
            artifacts::FILE_SINK,
            &format!(
                "[[attach]]\ntopic = \"t\"\n[grants]\ndirs = [\"{d}\"]\n[connector]\npoll_interval_ms = 20\n[config]\ndir = \"{d}\"\n"
            ),
        );
    })
    .await;
    let api = server.client();
    api.create_topic("t", json!({ "partitions": 1 })).await;
    let file = out.path().join("t-0.ndjson");
    let lines = || std::fs::read_to_string(&file).map_or(0, |t| t.lines().count());
    api.publish("t", json!([{ "value": 1 }])).await;
    eventually("first line", || async { lines() == 1 }).await;

    let r = api
        .post("/v1/connectors/archive/pause", "application/json", "")
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    eventually("paused", || async {
        connector(&api, "archive").await["state"] == "paused"
    })
    .await;
    api.publish("t", json!([{ "value": 2 }])).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(lines(), 1, "a paused sink delivers nothing");
    assert_eq!(connector(&api, "archive").await["lag_records"], 1);

    // Paused survives a restart.
    let dir = server.dir.clone();
    let temp = server.stop().await;
    let mut config = test_config(&dir);
    config.connectors.allowed_dirs = vec![out.path().to_path_buf()];
    let server = TestServer::start_in(&dir, config).await;
    let api = server.client();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let status = connector(&api, "archive").await;
    assert_eq!(
        (status["state"].as_str(), status["desired"].as_str()),
        (Some("paused"), Some("paused"))
    );
    assert_eq!(lines(), 1);

    let r = api
        .post("/v1/connectors/archive/resume", "application/json", "")
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    eventually("resumed delivery", || async { lines() == 2 }).await;
    let r = api
        .post("/v1/connectors/nope/pause", "application/json", "")
        .await;
    r.assert_problem(404, "connector_not_found");
    let r = api
        .post("/v1/connectors/archive/explode", "application/json", "")
        .await;
    r.assert_problem(400, "invalid_request");
    let list = api.get("/v1/connectors").await;
    assert_eq!(list.body["connectors"][0]["name"], "archive");
    server.stop().await;
    drop(temp);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connector_follows_its_folder_live() {
    let out = tempfile::tempdir().unwrap();
    let root = out.path().to_path_buf();
    let d = out.path().display().to_string();
    let manifest = move |topic: &str| {
        format!(
            "name = \"archive\"\nkind = \"sink\"\ncomponent = \"plugin.wasm\"\n[[attach]]\ntopic = \"{topic}\"\n\
             [grants]\ndirs = [\"{d}\"]\n[connector]\npoll_interval_ms = 20\n[config]\ndir = \"{d}\"\n"
        )
    };
    let first = manifest("one");
    let server = TestServer::start_with(move |plugins, c| {
        c.connectors.allowed_dirs = vec![root];
        install_plugin(plugins, "archive", "sink", artifacts::FILE_SINK, "");
        std::fs::write(plugins.join("archive/plugin.toml"), first).unwrap();
    })
    .await;
    let api = server.client();
    api.create_topic("one", json!({ "partitions": 1 })).await;
    api.create_topic("two", json!({ "partitions": 1 })).await;
    let lines = |file: &str| {
        std::fs::read_to_string(out.path().join(file)).map_or(0, |t| t.lines().count())
    };
    api.publish("one", json!([{ "value": 1 }])).await;
    eventually("topic one delivered", || async {
        lines("one-0.ndjson") == 1
    })
    .await;

    // Re-attached to another topic: the task hands over to a new one.
    let folder = server.dir.join("plugins/archive");
    let temp = folder.join("plugin.toml.new");
    std::fs::write(&temp, manifest("two")).unwrap();
    std::fs::rename(&temp, folder.join("plugin.toml")).unwrap();
    eventually("re-attached", || async {
        connector(&api, "archive").await["topics"] == json!(["two"])
    })
    .await;
    api.publish("two", json!([{ "value": 2 }, { "value": 3 }]))
        .await;
    api.publish("one", json!([{ "value": 4 }])).await;
    eventually("topic two delivered", || async {
        lines("two-0.ndjson") == 2
    })
    .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(lines("one-0.ndjson"), 1, "no longer reads topic one");

    // The folder goes: so does the connector.
    std::fs::remove_dir_all(&folder).unwrap();
    eventually("connector gone", || async {
        api.get("/v1/connectors").await.body["connectors"] == json!([])
    })
    .await;
    server.stop().await;
}
