//! The pipeline cases of `weir bench`: the same requests published to a topic
//! without plugins, through a chain of json-filter and redact, and through a router
//! to 4 topics, back to back in one run, so the ratios hold on any machine.

use std::path::{Path, PathBuf};

use anyhow::Context;
use bytes::Bytes;
use serde_json::json;

use super::{Client, How, publish_cell};

/// Builds json-filter, redact and header-router from `src` (default: this
/// repository's `plugins/`) into `plugin_dir`, with manifests for the bench. Returns
/// false (and says why) when the sources or the WASM toolchain are missing.
pub(super) fn build_plugins(src: Option<&Path>, plugin_dir: &Path) -> anyhow::Result<bool> {
    let src = src.map_or_else(
        || Path::new(env!("CARGO_MANIFEST_DIR")).join("../../plugins"),
        Path::to_path_buf,
    );
    if !src.join("json-filter/Cargo.toml").is_file() {
        println!(
            "pipeline cases skipped: no plugin sources in {} (use --plugins-src)\n",
            src.display()
        );
        return Ok(false);
    }
    if let Err(e) = weir_toolchain::check() {
        println!("pipeline cases skipped: {e}\n");
        return Ok(false);
    }
    // One target dir for all three, beside the workspace's, so std is built once.
    let target = src.join("../target/wasm-guests");
    for (name, manifest) in [
        (
            "json-filter",
            "name = \"json-filter\"\nkind = \"filter\"\ncomponent = \"json_filter.wasm\"\n\
             [config]\npath = \"/status\"\nequals = \"paid\"\n",
        ),
        (
            "redact",
            "name = \"redact\"\nkind = \"transform\"\ncomponent = \"redact.wasm\"\n\
             [config]\nfields = [\"/card/number\"]\n",
        ),
        (
            "header-router",
            "name = \"header-router\"\nkind = \"router\"\ncomponent = \"header_router.wasm\"\n\
             [router]\ndestinations = [\"bench-route-0\", \"bench-route-1\", \"bench-route-2\", \"bench-route-3\"]\n\
             [config]\nheader = \"region\"\n\
             [config.routes]\nr0 = \"bench-route-0\"\nr1 = \"bench-route-1\"\n\
             r2 = \"bench-route-2\"\nr3 = \"bench-route-3\"\n",
        ),
    ] {
        eprintln!("building plugin {name} for the pipeline cases...");
        let folder: PathBuf = crate::plugin::build_in(&src.join(name), Some(plugin_dir), &target)
            .with_context(|| format!("building {name}"))?;
        std::fs::write(folder.join("plugin.toml"), manifest)?;
    }
    Ok(true)
}

/// Builds the plugin crate `plugins/<name>` of this repository into a temporary
/// folder; returns its component.
pub(super) fn build_one(name: &str) -> anyhow::Result<Vec<u8>> {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../plugins");
    let out = tempfile::tempdir()?;
    let target = src.join("../target/wasm-guests");
    eprintln!("building plugin {name}...");
    let folder = crate::plugin::build_in(&src.join(name), Some(out.path()), &target)
        .with_context(|| format!("building {name}"))?;
    Ok(weir_broker::plugins::PluginFiles::read(&folder)?
        .component
        .to_vec())
}

/// A JSON produce body of `batch` records whose values are JSON objects of
/// `value_bytes` bytes that pass the filter and have a field to redact, each with a
/// `region` header naming one of 4 routes.
pub(super) fn pipeline_body(value_bytes: usize, batch: usize) -> Vec<u8> {
    let fixed = r#"{"status":"paid","card":{"number":"4111111111111111"},"pad":""}"#.len();
    let pad = "x".repeat(value_bytes.saturating_sub(fixed));
    let mut out = Vec::with_capacity(batch * (value_bytes + 48) + 16);
    out.extend_from_slice(b"{\"records\":[");
    for i in 0..batch {
        if i > 0 {
            out.push(b',');
        }
        out.extend_from_slice(
            format!(
                r#"{{"value":{{"status":"paid","card":{{"number":"4111111111111111"}},"pad":"{pad}"}},"headers":{{"region":"r{}"}}}}"#,
                i % 4
            )
            .as_bytes(),
        );
    }
    out.extend_from_slice(b"]}");
    out
}

/// Three cells with the same body: no plugins, filter + transform, router; each
/// row's name starts with `label` (which broker, when a run compares several).
#[allow(clippy::too_many_arguments)]
pub(super) async fn cells(
    label: &str,
    client: &Client,
    value_bytes: usize,
    batch: usize,
    concurrency: usize,
    partitions: u32,
    seconds: f64,
    broker: &weir_broker::Broker,
) -> anyhow::Result<()> {
    let body = Bytes::from(pipeline_body(value_bytes, batch));
    let before = plugin_time(broker);
    for i in 0..4 {
        create(client, &format!("bench-route-{i}"), partitions, None).await?;
    }
    let mut plain_rate = None;
    for (case, steps) in [
        ("no plugins", json!([])),
        (
            "json-filter + redact",
            json!([{ "plugin": "json-filter" }, { "plugin": "redact" }]),
        ),
        ("router to 4 topics", json!([{ "plugin": "header-router" }])),
    ] {
        let topic = format!(
            "bench-pipe-{}-v{value_bytes}-b{batch}-c{concurrency}",
            case.split_whitespace().next().unwrap_or("x")
        );
        create(client, &topic, partitions, Some(steps)).await?;
        let mut row = publish_cell(
            std::slice::from_ref(client),
            &topic,
            body.clone(),
            batch,
            concurrency,
            seconds,
            How::default(),
        )
        .await?;
        let rate = row.records as f64 / row.secs;
        let ratio = match plain_rate {
            None => {
                plain_rate = Some(rate);
                String::new()
            }
            Some(plain) => format!(" ({:.0}%)", rate / plain * 100.0),
        };
        row.name =
            format!("{label}pipe {case}{ratio}, {value_bytes} B x {batch}, {concurrency} conc");
        row.bytes = row.records * value_bytes as u64;
        row.print();
    }
    print_plugin_time(&before, &plugin_time(broker));
    Ok(())
}

/// Per plugin: (name, events in, nanoseconds in calls).
fn plugin_time(broker: &weir_broker::Broker) -> Vec<(String, u64, f64)> {
    broker
        .pipelines()
        .map(|p| p.registry().slots())
        .unwrap_or_default()
        .iter()
        .map(|s| {
            let st = s.status();
            (st.name, st.counters.events_in, st.counters.time_ms * 1e6)
        })
        .collect()
}

/// The wall time each plugin spent per event between two snapshots, as a table row.
fn print_plugin_time(before: &[(String, u64, f64)], after: &[(String, u64, f64)]) {
    let parts: Vec<String> = after
        .iter()
        .filter_map(|(name, n, ns)| {
            let (n0, ns0) = before
                .iter()
                .find(|(b, _, _)| b == name)
                .map_or((0, 0.0), |(_, n, ns)| (*n, *ns));
            let events = n - n0;
            (events > 0).then(|| format!("{name} {:.0} ns", (ns - ns0) / events as f64))
        })
        .collect();
    println!(
        "| {:<40} | {:>12} | {:>8} | {:>9} | {:>9} |",
        format!("  plugin time/event: {}", parts.join(", ")),
        "",
        "",
        "",
        ""
    );
}

pub(super) async fn create(
    client: &Client,
    topic: &str,
    partitions: u32,
    pipeline: Option<serde_json::Value>,
) -> anyhow::Result<()> {
    let mut config = json!({ "partitions": partitions });
    if let Some(p) = pipeline {
        config["pipeline"] = p;
    }
    let (status, body) = client.put(&format!("/v1/topics/{topic}"), &config).await?;
    anyhow::ensure!(
        status == 201 || status == 200,
        "creating {topic} failed: {status} {body}"
    );
    Ok(())
}
