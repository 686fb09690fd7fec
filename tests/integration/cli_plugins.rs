//! The plugin author's dev loop from the command line: `weir plugin new`, build,
//! test and deploy outside the repository, paths from anywhere, and a scaffolded
//! source connector operated end to end.

use serde_json::Value;

use crate::cli::{ok, repo, weir, weir_command, weir_in};
use crate::harness::TestServer;

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
