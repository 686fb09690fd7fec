//! Plugins in Python and JavaScript, built from `examples/` by componentize-py and
//! componentize-js (the test build runs them), served by a real `weir serve`: in
//! pipelines and as `filter=` subscriptions, their stdout in the broker's log, a
//! component importing `wasi:http` refused naming the import, and compiled code read
//! back from the on-disk cache after a restart.

use serde_json::{Value, json};

use weir_test_artifacts as artifacts;

use crate::harness::{Api, ServerProcess, install_plugin};

/// Installs the Python and JS examples: on topic `py` the Python filter and
/// transform, on `js` the JavaScript ones, and a filter in each language attached
/// nowhere (`pick-js`, `pick-py`: used by subscriptions).
fn install_examples(plugins: &std::path::Path) {
    let attach =
        |topic: &str, config: &str| format!("[config]\n{config}\n[[attach]]\ntopic = \"{topic}\"");
    install_plugin(
        plugins,
        "a-hello-py",
        "filter",
        artifacts::HELLO_FILTER_PY,
        &attach("py", "word = \"hello\""),
    );
    install_plugin(
        plugins,
        "b-shout-py",
        "transform",
        artifacts::SHOUT_TRANSFORM_PY,
        &attach("py", "twice = true"),
    );
    install_plugin(
        plugins,
        "a-hello-js",
        "filter",
        artifacts::HELLO_FILTER_JS,
        &attach("js", "word = \"hello\""),
    );
    install_plugin(
        plugins,
        "b-shout-js",
        "transform",
        artifacts::SHOUT_TRANSFORM_JS,
        &attach("js", "twice = true"),
    );
    for (name, component) in [
        ("pick-js", artifacts::HELLO_FILTER_JS),
        ("pick-py", artifacts::HELLO_FILTER_PY),
    ] {
        install_plugin(plugins, name, "filter", component, "[config]\nword = \"x\"");
    }
}

/// Publishes `records` to `topic` through its pipeline, asserting 200; the answer.
async fn publish(api: &Api, topic: &str, records: Value) -> Value {
    let r = api
        .post(
            &format!("/v1/topics/{topic}/records"),
            "application/json",
            json!({ "records": records }).to_string(),
        )
        .await;
    assert_eq!(r.status, 200, "{topic}: {}", r.body);
    r.body
}

/// How many records a pipeline publish stored, over all its results.
fn outputs(answer: &Value) -> usize {
    answer["results"].as_array().map_or(0, |rs| {
        rs.iter()
            .map(|r| r["outputs"].as_array().map_or(0, Vec::len))
            .sum()
    })
}

/// Starts `weir serve` in `dir` with a compile cache the tests share: each component
/// is compiled once per test run, not once per test.
fn serve_sharing_compiled_code(dir: &std::path::Path) -> ServerProcess {
    let cache = concat!(env!("CARGO_TARGET_TMPDIR"), "/compiled-plugins");
    ServerProcess::start_configured(dir, &format!("[plugins]\ncompile_cache_dir = {cache:?}\n"))
}

fn values(records: &Value) -> Vec<Value> {
    records["records"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["value"].clone())
        .collect()
}

#[tokio::test]
async fn python_and_javascript_plugins_serve_in_pipelines_and_subscriptions() {
    let temp = tempfile::tempdir().unwrap();
    install_examples(&temp.path().join("plugins"));
    let server = serve_sharing_compiled_code(temp.path());
    let api = server.client();
    for topic in ["py", "js", "raw"] {
        api.create_topic(topic, json!({ "partitions": 1 })).await;
    }

    // Filter, then a transform that fans out two loud copies with a header.
    for topic in ["py", "js"] {
        let answer = publish(
            &api,
            topic,
            json!([{ "value": "hello a" }, { "value": "bye" }, { "value": "hello b", "headers": { "h": "1" } }]),
        )
        .await;
        assert_eq!(outputs(&answer), 4, "{topic}: {answer}");
        assert_eq!(
            answer["results"][1]["status"], "filtered",
            "{topic}: {answer}"
        );
        let r = api.fetch(topic, 0, 0).await;
        assert_eq!(
            values(&r.body),
            [
                json!("HELLO A"),
                json!("HELLO A"),
                json!("HELLO B"),
                json!("HELLO B")
            ],
            "{topic}: {}",
            r.body
        );
        let last = &r.body["records"][3];
        assert_eq!(last["headers"]["shouted"], "yes", "{topic}: {last}");
        assert_eq!(last["headers"]["h"], "1", "{topic}: {last}");
    }

    // Each language's filter as a subscription, with the manifest's config and with
    // the subscription's own.
    api.publish(
        "raw",
        json!([{ "value": "x1" }, { "value": "y2" }, { "value": "x3y" }]),
    )
    .await;
    for filter in ["pick-js", "pick-py"] {
        let r = api
            .get(&format!(
                "/v1/topics/raw/partitions/0/records?offset=0&filter={filter}"
            ))
            .await;
        assert_eq!(r.status, 200, "{filter}: {}", r.body);
        assert_eq!(values(&r.body), [json!("x1"), json!("x3y")], "{filter}");
        let r = api
            .get(&format!(
                "/v1/topics/raw/partitions/0/records?offset=0&filter={filter}&filter_config.word=%22y%22"
            ))
            .await;
        assert_eq!(values(&r.body), [json!("y2"), json!("x3y")], "{filter}");
    }

    // `print` and `console.log` in `init` are lines in the broker's log, attributed.
    let py = server.log_lines("hello-filter-py keeps events containing 'hello'");
    assert!(
        py.iter()
            .any(|l| l.contains("a-hello-py") && l.contains("stdout")),
        "{py:?}"
    );
    let js = server.log_lines("hello-filter-js keeps events containing \\\"hello\\\"");
    let js = if js.is_empty() {
        server.log_lines("hello-filter-js keeps events containing \"hello\"")
    } else {
        js
    };
    assert!(
        js.iter()
            .any(|l| l.contains("a-hello-js") && l.contains("stdout")),
        "{js:?}"
    );

    // The status counts what the pooled instances hold and the lines they wrote.
    let pool = api.get("/v1/plugins/a-hello-py").await.body["pool"].clone();
    assert!(pool["idle_instances"].as_u64().unwrap() >= 1, "{pool}");
    assert!(
        pool["memory_bytes"].as_u64().unwrap() >= 4 << 20,
        "a CPython instance holds megabytes: {pool}"
    );
    assert!(pool["output_lines"].as_u64().unwrap() >= 1, "{pool}");
}

#[tokio::test]
async fn a_restart_reads_compiled_code_from_the_cache_and_compiles_nothing() {
    let temp = tempfile::tempdir().unwrap();
    // Its own cache (in the data dir): the first start must compile.
    install_plugin(
        &temp.path().join("plugins"),
        "a-hello-py",
        "filter",
        artifacts::HELLO_FILTER_PY,
        "[config]\nword = \"hello\"\n[[attach]]\ntopic = \"py\"",
    );
    let server = ServerProcess::start(temp.path());
    server
        .client()
        .create_topic("py", json!({ "partitions": 1 }))
        .await;
    let compiled = server.log_lines("plugin component compiled");
    assert!(!compiled.is_empty(), "the first start compiles");
    server.terminate();

    let server = ServerProcess::start(temp.path());
    let api = server.client();
    // Serving the same plugins again, compiled by nobody.
    let r = api.get("/v1/plugins/a-hello-py").await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(
        server.log_lines("plugin component compiled"),
        Vec::<String>::new()
    );
    assert!(!server.log_lines("from the compile cache").is_empty());
    let answer = publish(&api, "py", json!([{ "value": "hello" }])).await;
    assert_eq!(outputs(&answer), 1, "{answer}");
}

#[tokio::test]
async fn a_component_importing_wasi_http_is_refused_naming_the_import() {
    let temp = tempfile::tempdir().unwrap();
    install_plugin(
        &temp.path().join("plugins"),
        "fetcher",
        "filter",
        artifacts::WASI_HTTP_JS,
        "[config]\nword = \"x\"",
    );
    let server = serve_sharing_compiled_code(temp.path());
    let r = server.client().get("/v1/plugins/fetcher").await;
    let text = r.body.to_string();
    assert!(
        text.contains("wasi:http/") && text.contains("-d http fetch-event"),
        "{text}"
    );
}

/// Runs `weir args...` in `dir`, asserting success; returns stdout.
fn weir_in(dir: &std::path::Path, args: &[&str]) -> String {
    let out = std::process::Command::new(crate::harness::WEIR)
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "weir {args:?}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn python_and_javascript_scaffolds_build_and_run_as_they_are() {
    let temp = tempfile::tempdir().unwrap();
    let events = temp.path().join("events.ndjson");
    std::fs::write(
        &events,
        "{\"value\":\"hello world\"}\n{\"value\":\"bye\"}\n",
    )
    .unwrap();
    let events = events.to_str().unwrap();
    for (name, lang, kind) in [("picky", "python", "filter"), ("tagger", "js", "transform")] {
        weir_in(
            temp.path(),
            &["plugin", "new", name, "--lang", lang, "--kind", kind],
        );
        let built = weir_in(&temp.path().join(name), &["plugin", "build"]);
        assert!(built.contains("target/plugin/"), "{built}");
        let out = weir_in(temp.path(), &["plugin", "test", name, "--input", events]);
        let lines: Vec<serde_json::Value> = out
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        match kind {
            "filter" => assert_eq!(lines.len(), 1, "{out}"),
            _ => {
                assert_eq!(lines.len(), 2, "{out}");
                assert_eq!(lines[1]["headers"]["seen-by"], name, "{out}");
            }
        }
    }
    // The Python scaffold's own native test passes in plain CPython.
    let test = std::process::Command::new("python3")
        .arg("test_app.py")
        .current_dir(temp.path().join("picky"))
        .output()
        .unwrap();
    assert!(
        test.status.success(),
        "{}",
        String::from_utf8_lossy(&test.stderr)
    );
}
