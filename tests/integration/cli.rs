//! The `weir` client subcommands against a live server.

use std::io::Write;
use std::process::{Command, Output, Stdio};

use serde_json::Value;

use crate::harness::{TestServer, WEIR};

/// The repository's root.
fn repo() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// `weir` with the plugin builds' shared target directory set to the test build's
/// guests folder, where the wasm32 standard library is already built.
fn weir_command(url: &str) -> Command {
    let mut cmd = Command::new(WEIR);
    cmd.env("WEIR_URL", url)
        .env("WEIR_PLUGIN_TARGET_DIR", repo().join("target/wasm-guests"));
    cmd
}

async fn weir(url: &str, args: &[&str], stdin: Option<String>) -> Output {
    weir_in(None, url, args, stdin).await
}

/// [`weir`] run in `cwd`.
async fn weir_in(
    cwd: Option<&std::path::Path>,
    url: &str,
    args: &[&str],
    stdin: Option<String>,
) -> Output {
    let mut cmd = weir_command(url);
    cmd.args(args);
    if let Some(dir) = cwd {
        cmd.current_dir(dir);
    }
    let stdin_text = stdin.unwrap_or_default();
    tokio::task::spawn_blocking(move || {
        let mut child = cmd
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        child
            .stdin
            .take()
            .unwrap()
            .write_all(stdin_text.as_bytes())
            .unwrap();
        child.wait_with_output().unwrap()
    })
    .await
    .unwrap()
}

fn ok(out: &Output) -> String {
    assert!(
        out.status.success(),
        "weir failed: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout.clone()).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn topic_produce_consume_cycle() {
    let server = TestServer::start().await;
    let url = server.url.clone();

    let out = ok(&weir(
        &url,
        &["topic", "create", "logs", "--partitions", "2"],
        None,
    )
    .await);
    assert!(out.contains("created topic logs"), "{out}");
    let out = ok(&weir(
        &url,
        &["topic", "create", "logs", "--partitions", "2"],
        None,
    )
    .await);
    assert!(out.contains("already exists"), "{out}");
    let conflict = weir(
        &url,
        &["topic", "create", "logs", "--partitions", "3"],
        None,
    )
    .await;
    assert!(!conflict.status.success());
    assert!(String::from_utf8_lossy(&conflict.stderr).contains("topic_exists"));

    let lines: String =
        (0..25).map(|i| format!("line {i}\n")).collect::<String>() + "{\"json\":true}\n";
    let produced = weir(
        &url,
        &["produce", "logs", "--key", "k", "--batch", "10"],
        Some(lines),
    )
    .await;
    ok(&produced);
    let summary = String::from_utf8_lossy(&produced.stderr);
    assert!(summary.contains("produced 26 records"), "{summary}");
    assert!(summary.contains("p99"), "{summary}");

    let out = ok(&weir(&url, &["consume", "logs"], None).await);
    let records: Vec<Value> = out
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(records.len(), 26);
    assert_eq!(records[0]["value"], "line 0");
    assert_eq!(records[25]["value"], serde_json::json!({ "json": true }));
    assert!(
        records
            .iter()
            .all(|r| r["key"] == "k" && r["partition"] == records[0]["partition"])
    );

    let p = records[0]["partition"].as_u64().unwrap().to_string();
    let out = ok(&weir(
        &url,
        &[
            "consume",
            "logs",
            "--partition",
            &p,
            "--from",
            "20",
            "-n",
            "3",
        ],
        None,
    )
    .await);
    let offsets: Vec<u64> = out
        .lines()
        .map(|l| {
            serde_json::from_str::<Value>(l).unwrap()["offset"]
                .as_u64()
                .unwrap()
        })
        .collect();
    assert_eq!(offsets, [20, 21, 22]);

    let out = ok(&weir(&url, &["topic", "list"], None).await);
    assert!(
        out.lines()
            .any(|l| l.starts_with("logs") && l.contains(" 26 ")),
        "{out}"
    );
    let out = ok(&weir(&url, &["topic", "describe", "logs"], None).await);
    let d: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(d["config"]["partitions"], 2);
    ok(&weir(&url, &["topic", "delete", "logs"], None).await);
    let gone = weir(&url, &["topic", "describe", "logs"], None).await;
    assert!(String::from_utf8_lossy(&gone.stderr).contains("topic_not_found"));
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn consume_follow_sees_new_records() {
    let server = TestServer::start().await;
    let api = server.client();
    api.create_topic("f", serde_json::json!({ "partitions": 1 }))
        .await;
    let url = server.url.clone();
    let follower =
        tokio::spawn(
            async move { weir(&url, &["consume", "f", "--follow", "-n", "2"], None).await },
        );
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    api.publish(
        "f",
        serde_json::json!([{ "value": "one" }, { "value": "two" }]),
    )
    .await;
    let out = ok(&follower.await.unwrap());
    assert_eq!(out.lines().count(), 2, "{out}");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bench_quick_runs() {
    let server = TestServer::start().await;
    let url = server.url.clone();
    let out = ok(&weir(
        &url,
        &[
            "bench",
            "--url",
            &url,
            "--quick",
            "--batch",
            "1,100",
            "--value-bytes",
            "100",
            "--concurrency",
            "1,4",
        ],
        None,
    )
    .await);
    assert!(out.contains("produce 100 B x 100/req, 4 conc"), "{out}");
    assert!(out.contains("fetch 100 B"), "{out}");
    assert!(out.contains("file append+fsync"), "{out}");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bench_quick_runs_the_pipeline_cases_in_process() {
    // No --url: the bench starts its own broker, builds the first-party plugins from
    // plugins/ and runs the same requests without plugins, through a chain and
    // through a router.
    let out = ok(&weir(
        "http://127.0.0.1:9",
        &[
            "bench",
            "--quick",
            "--batch",
            "100",
            "--value-bytes",
            "100",
            "--concurrency",
            "1",
            "--pipeline-concurrency",
            "1",
            "--latency-rate",
            "1000",
        ],
        None,
    )
    .await);
    for row in [
        "pipe no plugins, 100 B x 100, 1 conc",
        "pipe json-filter + redact (",
        "pipe router to 4 topics (",
        "plugin time/event: header-router",
    ] {
        assert!(out.contains(row), "missing '{row}' in:\n{out}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bench_reload_quick_swaps_versions_under_load_without_losing_records() {
    // The bench fails (non-zero exit) on any failed publish or lost, duplicated or
    // unmasked record.
    let out = ok(&weir("http://127.0.0.1:9", &["bench", "reload", "--quick"], None).await);
    for row in [
        "new component: total (write → serving)",
        "manifest-only change:   load",
        "| failed publishes",
        "| acknowledged records lost",
    ] {
        assert!(out.contains(row), "missing '{row}' in:\n{out}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bench_connectors_quick_drains_every_case() {
    // Every case waits for its records (the sinks drain to lag 0, the generator
    // produces them all, every latency record arrives) or the command fails.
    let out = ok(&weir(
        "http://127.0.0.1:9",
        &["bench", "connectors", "--quick"],
        None,
    )
    .await);
    for row in [
        "| file-sink (append + fsync per batch) | 2000 |",
        "| http-sink (POST per batch, loopback) | 2000 |",
        "| generator source (poll + atomic append with cursor) | 2000 |",
        "| http-sink publish-to-delivery latency |",
    ] {
        assert!(out.contains(row), "missing '{row}' in:\n{out}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bench_compare_quick_measures_every_workload_on_every_system() {
    // Real peers: nats-server and redis-server (installed by tests/install.sh, or by the
    // command itself), each on its own loopback port with a temp data dir.
    let dir = tempfile::tempdir().unwrap();
    let out_file = dir.path().join("compare.md");
    let out = ok(&weir(
        "http://127.0.0.1:9",
        &[
            "bench",
            "compare",
            "--quick",
            "--out",
            out_file.to_str().unwrap(),
        ],
        None,
    )
    .await);
    let written = std::fs::read_to_string(&out_file).unwrap();
    assert!(out.contains(&written), "the file holds the printed table");
    let systems = [
        "Weir HTTP (acks=all)",
        "Weir in-process (acks=all)",
        "Weir HTTP (acks=none)",
        "Weir in-process (acks=none)",
        "Redis Streams (appendfsync always)",
        "Redis Streams (appendfsync everysec)",
        "NATS JetStream (file)",
    ];
    let mut workloads = vec![
        "publish -> receive at 1,000/s".to_string(),
        "publish -> receive at 10,000/s".to_string(),
    ];
    for bytes in [100, 1024] {
        for how in [
            "one by one, 1 conc",
            "one by one, 64 conc",
            "in batches of 100, 1 conc",
            "in batches of 1000, 1 conc",
        ] {
            workloads.push(format!("publish {bytes} B {how}"));
        }
    }
    for system in systems {
        for workload in &workloads {
            let row = format!("| {workload} | {system} |");
            assert!(written.contains(&row), "missing '{row}' in:\n{written}");
        }
    }
    // Reads are measured once per system (not per fsync setting), and by kcat.
    let consume = "| consume 20,000 x 100 B from the start |";
    assert_eq!(written.matches(consume).count(), 5, "{written}");
    // The Kafka rows: kcat's async producer beside the same workload over HTTP.
    for bytes in [100, 1024] {
        let workload = format!("| publish {bytes} B async, client-batched");
        for system in [
            "Weir HTTP (acks=all)",
            "Weir Kafka (kcat, acks=all, linger 5 ms)",
        ] {
            assert!(
                written
                    .lines()
                    .any(|l| l.starts_with(&workload) && l.contains(&format!("| {system} |"))),
                "missing {system} in {workload}:\n{written}"
            );
        }
    }
    // Every row has a throughput; every Weir HTTP row is its class's reference.
    for line in written
        .lines()
        .filter(|l| l.starts_with("| publish") || l.starts_with("| consume"))
    {
        let cells: Vec<&str> = line.split('|').map(str::trim).collect();
        let rate: f64 = cells[4].replace(',', "").parse().unwrap();
        assert!(rate > 0.0, "{line}");
        if cells[2].starts_with("Weir HTTP (") {
            assert!(cells[8].starts_with("1.00"), "{line}");
        }
    }
    // HTTP/2 is measured on the publish workloads.
    for workload in workloads
        .iter()
        .filter(|w| w.starts_with("publish ") && !w.contains("receive"))
    {
        let row = format!("| {workload} | Weir HTTP/2 (acks=all) |");
        assert!(written.contains(&row), "missing '{row}' in:\n{written}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unreachable_server_is_a_clear_error() {
    let out = weir("http://127.0.0.1:9", &["topic", "list"], None).await;
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("cannot reach the Weir server"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_refuses_a_config_with_unknown_keys() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("weir.toml");
    std::fs::write(
        &path,
        "listen = \"127.0.0.1:0\"\n[limits]\nmax_body_bytes = 5\n",
    )
    .unwrap();
    let out = weir(
        "http://unused",
        &["serve", "--config", path.to_str().unwrap()],
        None,
    )
    .await;
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("unknown field") && err.contains("max_body_bytes"),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn group_consume_describe_reset() {
    let server = TestServer::start().await;
    let api = server.client();
    api.create_topic("gt", serde_json::json!({ "partitions": 2 }))
        .await;
    let records: Vec<_> = (0..30)
        .map(|i| serde_json::json!({ "key": format!("k{i}"), "value": i }))
        .collect();
    api.publish("gt", serde_json::json!(records)).await;
    let url = server.url.clone();

    let out = ok(&weir(&url, &["consume", "gt", "--group", "cg", "-n", "10"], None).await);
    assert_eq!(out.lines().count(), 10, "{out}");
    let out = ok(&weir(&url, &["consume", "gt", "--group", "cg"], None).await);
    assert_eq!(out.lines().count(), 20, "the rest, nothing twice: {out}");

    let out = ok(&weir(&url, &["group", "describe", "cg"], None).await);
    assert!(out.contains("group cg: empty"), "{out}");
    let lags: Vec<&str> = out.lines().filter(|l| l.starts_with("gt ")).collect();
    assert_eq!(lags.len(), 2, "{out}");
    let out = ok(&weir(&url, &["group", "list"], None).await);
    assert!(
        out.lines()
            .any(|l| l.starts_with("cg ") && l.contains(" 0 ")),
        "{out}"
    );

    let out = ok(&weir(
        &url,
        &["group", "reset", "cg", "--topic", "gt", "--to", "earliest"],
        None,
    )
    .await);
    assert_eq!(out.lines().count(), 2, "{out}");
    let out = ok(&weir(&url, &["consume", "gt", "--group", "cg"], None).await);
    assert_eq!(out.lines().count(), 30, "{out}");
    ok(&weir(&url, &["group", "delete", "cg"], None).await);
    let gone = weir(&url, &["group", "describe", "cg"], None).await;
    assert!(String::from_utf8_lossy(&gone.stderr).contains("group_not_found"));
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plugin_new_build_test_outside_the_repository() {
    let dir = tempfile::tempdir().unwrap();
    let parent = dir.path().to_str().unwrap().to_string();
    let out = ok(&weir(
        "http://unused",
        &[
            "plugin", "new", "shouty", "--kind", "filter", "--dir", &parent,
        ],
        None,
    )
    .await);
    assert!(out.contains("created filter plugin"), "{out}");
    let crate_dir = dir.path().join("shouty");
    assert!(crate_dir.join(".weir/sdk/src/lib.rs").exists());
    let deploy = dir.path().join("deploy");
    let out = ok(&weir(
        "http://unused",
        &[
            "plugin",
            "build",
            crate_dir.to_str().unwrap(),
            "--out",
            deploy.to_str().unwrap(),
        ],
        None,
    )
    .await);
    assert!(out.contains("built"), "{out}");
    assert!(deploy.join("shouty/plugin.toml").exists());
    assert!(deploy.join("shouty/shouty.wasm").exists());

    let input = dir.path().join("events.ndjson");
    std::fs::write(&input, "{\"value\":\"hello there\"}\n{\"value\":\"bye\"}\n{\"key\":\"k\",\"value\":\"say hello\"}\n").unwrap();
    let tested = weir(
        "http://unused",
        &[
            "plugin",
            "test",
            deploy.join("shouty").to_str().unwrap(),
            "--input",
            input.to_str().unwrap(),
        ],
        None,
    )
    .await;
    let out = ok(&tested);
    let summary = String::from_utf8_lossy(&tested.stderr);
    assert!(summary.contains("2 of 3 records kept"), "{summary}");
    let kept: Vec<Value> = out
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(kept.len(), 2, "{out}");
    assert_eq!(kept[0]["value"], "hello there");
    assert_eq!(kept[1]["key"], "k");

    // Deployed over HTTP, then rebuilt and redeployed by `plugin watch` on a change.
    let server = TestServer::start().await;
    api_create_topic(&server, "greet").await;
    let url = server.url.clone();
    for m in [
        crate_dir.join("plugin.toml"),
        deploy.join("shouty/plugin.toml"),
    ] {
        let text = std::fs::read_to_string(&m).unwrap();
        std::fs::write(&m, format!("{text}\n[[attach]]\ntopic = \"greet\"\n")).unwrap();
    }
    let out = ok(&weir(
        &url,
        &["plugin", "deploy", deploy.join("shouty").to_str().unwrap()],
        None,
    )
    .await);
    assert!(out.starts_with("shouty activated "), "{out}");
    let first = out.split_whitespace().nth(2).unwrap().to_string();
    let plugins = server.dir.join("plugins");
    let log = dir.path().join("watch.log");
    let mut watch = weir_command(&url)
        .args([
            "plugin",
            "watch",
            crate_dir.to_str().unwrap(),
            "--plugin-dir",
        ])
        .arg(&plugins)
        .args(["--check", "--url", &url])
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    let manifest = crate_dir.join("plugin.toml");
    let text = std::fs::read_to_string(&manifest).unwrap();
    // Let the first build (same version as deployed) finish before the change.
    wait_until(&log, "serving shouty").await;
    std::fs::write(
        &manifest,
        text.replace("word = \"hello\"", "word = \"bye\""),
    )
    .unwrap();
    let api = server.client();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
    loop {
        let s = api.get("/v1/plugins/shouty").await.body;
        if s["version"] != first.as_str() && s["state"] == "active" {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "watch did not redeploy: {s}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let _ = watch.kill();
    let _ = watch.wait();
    let r = publish_values(&server, "greet", &["hello", "bye"]).await;
    assert_eq!(r, ["filtered", "stored"]);
    let out = ok(&weir(&url, &["plugin", "versions", "shouty"], None).await);
    assert!(out.contains("active") && out.contains("replaced"), "{out}");
    let out = ok(&weir(&url, &["plugin", "rollback", "shouty"], None).await);
    assert!(out.contains(&format!("to {first}")), "{out}");
    server.stop().await;
}

/// `weir plugin build`, `test` and `watch` take a plugin crate by a relative or an
/// absolute path from any directory, for a crate of its own and for a member of a
/// workspace (whose output is in the workspace's target directory, as cargo reports).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plugin_commands_take_relative_and_absolute_paths_from_anywhere() {
    let dir = tempfile::tempdir().unwrap();
    let tmp = dir.path();
    let root = repo().canonicalize().unwrap();
    ok(&weir_in(
        Some(tmp),
        "http://unused",
        &["plugin", "new", "solo", "--kind", "filter"],
        None,
    )
    .await);
    std::fs::write(
        tmp.join("events.ndjson"),
        "{\"value\":\"hello\"}\n{\"value\":\"bye\"}\n{\"value\":{\"status\":\"paid\"}}\n",
    )
    .unwrap();
    let solo_abs = tmp.join("solo");
    let member_abs = root.join("plugins/json-filter");
    let events_abs = tmp.join("events.ndjson");
    // (working directory, crate as typed, its plugin name, events kept by `test`)
    let cases: [(&std::path::Path, String, &str, usize); 4] = [
        (tmp, "solo".into(), "solo", 1),
        (
            std::path::Path::new("/"),
            solo_abs.display().to_string(),
            "solo",
            1,
        ),
        (&root, "plugins/json-filter".into(), "json-filter", 1),
        (tmp, member_abs.display().to_string(), "json-filter", 1),
    ];
    for (i, (cwd, krate, name, kept)) in cases.iter().enumerate() {
        // build: relative output folders are taken from the working directory too.
        let out = format!("out-{i}");
        ok(&weir_in(
            Some(cwd),
            "http://unused",
            &["plugin", "build", krate, "--out", &out],
            None,
        )
        .await);
        let folder = cwd.join(&out).join(name);
        assert!(
            folder.join("plugin.toml").is_file(),
            "case {i}: {}",
            folder.display()
        );
        std::fs::remove_dir_all(cwd.join(&out)).unwrap();
        // test: builds the crate and runs it over the events.
        let tested = weir_in(
            Some(cwd),
            "http://unused",
            &[
                "plugin",
                "test",
                krate,
                "--input",
                events_abs.to_str().unwrap(),
            ],
            None,
        )
        .await;
        ok(&tested);
        let summary = String::from_utf8_lossy(&tested.stderr);
        assert!(
            summary.contains(&format!("{kept} of 3 records kept")),
            "case {i}: {summary}"
        );
    }
    // watch: a relative crate and plugin directory, for each kind of crate.
    for (cwd, krate, name) in [
        (tmp, "solo", "solo"),
        (root.as_path(), "plugins/json-filter", "json-filter"),
    ] {
        let plugin_dir = tmp.join(format!("watched-{name}"));
        let relative_dir = pathdiff(&plugin_dir, cwd);
        let log = tmp.join(format!("watch-{name}.log"));
        let mut watch = weir_command("http://unused")
            .current_dir(cwd)
            .args(["plugin", "watch", krate, "--plugin-dir", &relative_dir])
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap();
        wait_until(&log, &format!("built {name} ")).await;
        let _ = watch.kill();
        let _ = watch.wait();
        assert!(
            plugin_dir.join(name).join("plugin.toml").is_file(),
            "{name}"
        );
    }
}

/// `path` relative to `base` (both absolute): `../..` up to their common part.
fn pathdiff(path: &std::path::Path, base: &std::path::Path) -> String {
    let (p, b): (Vec<_>, Vec<_>) = (path.components().collect(), base.components().collect());
    let common = p.iter().zip(&b).take_while(|(x, y)| x == y).count();
    let mut rel: Vec<String> = vec!["..".into(); b.len() - common];
    rel.extend(
        p[common..]
            .iter()
            .map(|c| c.as_os_str().to_string_lossy().into_owned()),
    );
    rel.join("/")
}

/// Waits until `log` contains `text`.
async fn wait_until(log: &std::path::Path, text: &str) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
    loop {
        let got = std::fs::read_to_string(log).unwrap_or_default();
        if got.contains(text) {
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "never saw {text:?} in: {got}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
}

async fn api_create_topic(server: &TestServer, topic: &str) {
    server
        .client()
        .create_topic(topic, serde_json::json!({ "partitions": 1 }))
        .await;
}

/// Publishes string values and returns each record's pipeline status.
async fn publish_values(server: &TestServer, topic: &str, values: &[&str]) -> Vec<String> {
    let records: Vec<Value> = values
        .iter()
        .map(|v| serde_json::json!({ "value": v }))
        .collect();
    let r = server
        .client()
        .post(
            &format!("/v1/topics/{topic}/records"),
            "application/json",
            serde_json::json!({ "records": records }).to_string(),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    r.body["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["status"].as_str().unwrap().to_string())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_scaffolded_source_is_built_deployed_and_operated_from_the_cli() {
    let dir = tempfile::tempdir().unwrap();
    let parent = dir.path().to_str().unwrap().to_string();
    let out = ok(&weir(
        "http://unused",
        &[
            "plugin", "new", "counter", "--kind", "source", "--dir", &parent,
        ],
        None,
    )
    .await);
    assert!(out.contains("created source plugin"), "{out}");
    let deploy = dir.path().join("deploy");
    let crate_dir = dir.path().join("counter");
    ok(&weir(
        "http://unused",
        &[
            "plugin",
            "build",
            crate_dir.to_str().unwrap(),
            "--out",
            deploy.to_str().unwrap(),
        ],
        None,
    )
    .await);
    let server = TestServer::start().await;
    api_create_topic(&server, "events").await;
    let url = server.url.clone();
    ok(&weir(
        &url,
        &["plugin", "deploy", deploy.join("counter").to_str().unwrap()],
        None,
    )
    .await);
    let api = server.client();
    crate::harness::eventually("100 counted events", || async {
        api.offsets("events", 0).await.1 == 100
    })
    .await;
    let values: Vec<Value> = api
        .fetch_all("events", 0, 0)
        .await
        .iter()
        .map(|r| r["value"]["n"].clone())
        .collect();
    assert_eq!(values, (0..100).map(Value::from).collect::<Vec<_>>());
    let list = ok(&weir(&url, &["connector", "list"], None).await);
    assert!(
        list.lines()
            .any(|l| l.starts_with("counter") && l.contains("source") && l.contains("100")),
        "{list}"
    );
    let paused = ok(&weir(&url, &["connector", "pause", "counter"], None).await);
    assert!(paused.contains("asked: paused"), "{paused}");
    let status = ok(&weir(&url, &["connector", "status", "counter"], None).await);
    assert!(status.contains("state      paused"), "{status}");
    let missing = weir(&url, &["connector", "status", "nope"], None).await;
    assert!(!missing.status.success());
    assert!(String::from_utf8_lossy(&missing.stderr).contains("connector_not_found"));
    server.stop().await;
}

/// Compares `actual` with `tests/integration/snapshots/<name>`; with
/// `WEIR_UPDATE_SNAPSHOTS=1` it writes the snapshot instead.
fn snapshot(name: &str, actual: &str) {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/integration/snapshots")
        .join(name);
    if std::env::var_os("WEIR_UPDATE_SNAPSHOTS").is_some() {
        std::fs::write(&path, actual).unwrap();
        return;
    }
    let expected = std::fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!(
            "{}: {e} (WEIR_UPDATE_SNAPSHOTS=1 writes it)",
            path.display()
        )
    });
    assert_eq!(
        actual, expected,
        "{name} changed; if on purpose, rerun with WEIR_UPDATE_SNAPSHOTS=1"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn help_has_examples_for_every_command_and_matches_its_snapshot() {
    let top = ok(&weir("http://unused", &["--help"], None).await);
    snapshot("weir-help.txt", &top);
    for cmd in [
        "serve",
        "topic",
        "group",
        "connector",
        "plugin",
        "produce",
        "consume",
        "bench",
        "top",
        "doctor",
        "completions",
        "man",
    ] {
        let help = ok(&weir("http://unused", &[cmd, "--help"], None).await);
        assert!(
            help.contains(&format!("Examples:\n  weir {cmd}")),
            "weir {cmd} --help has no examples:\n{help}"
        );
    }
    let connector = ok(&weir("http://unused", &["connector", "--help"], None).await);
    snapshot("weir-connector-help.txt", &connector);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn completions_and_man_pages_come_from_the_cli_definition() {
    for shell in ["bash", "zsh", "fish"] {
        let script = ok(&weir("http://unused", &["completions", shell], None).await);
        assert!(
            script.contains("connector") && script.contains("doctor"),
            "{shell}"
        );
    }
    let dir = tempfile::tempdir().unwrap();
    let out = ok(&weir(
        "http://unused",
        &["man", "--out", dir.path().to_str().unwrap()],
        None,
    )
    .await);
    assert!(out.contains("man pages in"), "{out}");
    for page in [
        "weir.1",
        "weir-connector-pause.1",
        "weir-topic-create.1",
        "weir-doctor.1",
    ] {
        let text = std::fs::read_to_string(dir.path().join(page)).unwrap();
        assert!(text.contains(".TH"), "{page}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn doctor_says_what_to_fix() {
    let dir = tempfile::tempdir().unwrap();
    let plugins = dir.path().join("plugins");
    std::fs::create_dir_all(plugins.join("broken")).unwrap();
    std::fs::write(
        plugins.join("broken/plugin.toml"),
        "name = \"broken\"\nkind = \"mangle\"\n",
    )
    .unwrap();
    let data = dir.path().join("data");
    let args = |data: &std::path::Path| {
        vec![
            "doctor".to_string(),
            "--data-dir".into(),
            data.display().to_string(),
            "--plugin-dir".into(),
            plugins.display().to_string(),
        ]
    };
    let run = |a: Vec<String>| async move {
        let refs: Vec<&str> = a.iter().map(String::as_str).collect();
        weir("http://unused", &refs, None).await
    };
    let good = run(args(&data)).await;
    let out = ok(&good);
    assert!(out.contains("[ok  ] data directory"), "{out}");
    assert!(out.contains("[ok  ] disk space"), "{out}");
    assert!(
        out.contains("[warn] plugin") && out.contains("unknown variant"),
        "{out}"
    );
    assert!(out.contains("fix:"), "{out}");
    // A file where the data directory should be stops `weir serve`: a failure.
    let file = dir.path().join("a-file");
    std::fs::write(&file, "x").unwrap();
    let bad = run(args(&file)).await;
    assert!(!bad.status.success());
    let out = String::from_utf8_lossy(&bad.stdout);
    assert!(
        out.contains("[FAIL] data directory") && out.contains("fix:"),
        "{out}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_can_log_json_lines() {
    let dir = tempfile::tempdir().unwrap();
    let mut child = Command::new(WEIR)
        .args(["serve", "--listen", "127.0.0.1:0", "--log-format", "json"])
        .arg("--data-dir")
        .arg(dir.path().join("data"))
        .arg("--plugin-dir")
        .arg(dir.path().join("plugins"))
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let line = tokio::task::spawn_blocking(move || {
        use std::io::BufRead;
        std::io::BufReader::new(stderr)
            .lines()
            .map_while(Result::ok)
            .find(|l| l.contains("listen"))
    })
    .await
    .unwrap()
    .expect("a log line naming the listen address");
    child.kill().unwrap();
    child.wait().unwrap();
    let v: Value = serde_json::from_str(&line).unwrap_or_else(|e| panic!("{e}: {line}"));
    assert_eq!(v["level"], "INFO", "{line}");
    assert!(
        v["timestamp"].is_string() && v["listen"].is_string(),
        "{line}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tables_match_their_snapshots() {
    let server = TestServer::start().await;
    let api = server.client();
    api.create_topic("alpha", serde_json::json!({ "partitions": 2 }))
        .await;
    api.create_topic("beta", serde_json::json!({ "partitions": 1 }))
        .await;
    api.publish("beta", serde_json::json!([{ "value": 1 }, { "value": 2 }]))
        .await;
    let url = server.url.clone();
    snapshot(
        "topic-list.txt",
        &ok(&weir(&url, &["topic", "list"], None).await),
    );
    snapshot(
        "connector-list.txt",
        &ok(&weir(&url, &["connector", "list"], None).await),
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn top_shows_rates_lag_and_health() {
    let server = TestServer::start().await;
    let api = server.client();
    api.create_topic("busy", serde_json::json!({ "partitions": 2 }))
        .await;
    api.publish("busy", serde_json::json!([{ "value": 1 }, { "value": 2 }]))
        .await;
    let r = api
        .get("/v1/topics/busy/records?group=watchers&max_records=1")
        .await;
    assert_eq!(r.status, 200);
    let url = server.url.clone();
    let top =
        tokio::spawn(
            async move { weir(&url, &["top", "--once", "--interval", "0.5"], None).await },
        );
    // Published during the interval: a rate above zero.
    tokio::time::sleep(std::time::Duration::from_millis(150)).await;
    api.publish("busy", serde_json::json!([{ "value": 3 }, { "value": 4 }]))
        .await;
    let out = ok(&top.await.unwrap());
    assert!(out.contains("storage ready"), "{out}");
    let busy = out
        .lines()
        .find(|l| l.starts_with("busy "))
        .unwrap_or_else(|| panic!("{out}"));
    let cols: Vec<&str> = busy.split_whitespace().collect();
    assert_eq!(&cols[..3], ["busy", "2", "4"], "{out}");
    assert!(cols[3].parse::<f64>().unwrap() > 0.0, "{out}");
    assert!(out.lines().any(|l| l.starts_with("watchers ")), "{out}");
    server.stop().await;
}
