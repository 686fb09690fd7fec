//! The `weir` client subcommands against a live server.

use std::io::Write;
use std::process::{Command, Output, Stdio};

use serde_json::Value;

use crate::harness::{TestServer, WEIR};

/// The repository's root.
pub(crate) fn repo() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// `weir` with the plugin builds' shared target directory set to the test build's
/// guests folder, where the wasm32 standard library is already built.
pub(crate) fn weir_command(url: &str) -> Command {
    let mut cmd = Command::new(WEIR);
    cmd.env("WEIR_URL", url)
        .env("WEIR_PLUGIN_TARGET_DIR", repo().join("target/wasm-guests"));
    cmd
}

pub(crate) async fn weir(url: &str, args: &[&str], stdin: Option<String>) -> Output {
    weir_in(None, url, args, stdin).await
}

/// [`weir`] run in `cwd`.
pub(crate) async fn weir_in(
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

pub(crate) fn ok(out: &Output) -> String {
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
