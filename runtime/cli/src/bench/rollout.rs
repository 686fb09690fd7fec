//! `weir bench rollout`: what safe rollout costs. Publishes through a json-filter +
//! redact pipeline (the first-party plugins built from source) without a shadow,
//! with a shadow of redact comparing every batch, and with one comparing 10 % of
//! them, back to back; then replays the stored topic through each plugin.

use std::time::{Duration, Instant};

use anyhow::Context;
use bytes::Bytes;
use serde_json::{Value, json};

use super::{Client, How, InProcess, pipeline, publish_cell};

/// `weir bench rollout` options.
#[derive(Debug, clap::Args)]
pub struct RolloutArgs {
    /// Seconds per publish cell.
    #[arg(long, default_value_t = 5.0)]
    seconds: f64,
    /// Records per publish request.
    #[arg(long, default_value_t = 100)]
    batch: usize,
    /// Concurrent producers.
    #[arg(long, default_value_t = 8)]
    concurrency: usize,
    /// Value size in bytes.
    #[arg(long, default_value_t = 100)]
    value_bytes: usize,
    /// Short cells (for smoke tests).
    #[arg(long)]
    quick: bool,
}

const TOPIC: &str = "bench-rollout";

pub(super) async fn run(args: RolloutArgs) -> anyhow::Result<()> {
    let seconds = if args.quick { 0.3 } else { args.seconds };
    let plugin_dir = tempfile::tempdir()?;
    anyhow::ensure!(
        pipeline::build_plugins(None, plugin_dir.path())?,
        "the first-party plugins could not be built"
    );
    let redact = weir_broker::plugins::PluginFiles::read(&plugin_dir.path().join("redact"))?;
    let server = InProcess::start(plugin_dir.path()).await?;
    let client = Client::new(&server.url)?;
    let steps = json!([{ "plugin": "json-filter" }, { "plugin": "redact" }]);
    pipeline::create(&client, TOPIC, 4, Some(steps)).await?;
    let body = Bytes::from(pipeline::pipeline_body(args.value_bytes, args.batch));
    println!(
        "| case ({} B, batch {}, {} producers) | records/s | p50 ms | p99 ms | batches compared / skipped |",
        args.value_bytes, args.batch, args.concurrency
    );
    println!("|---|---:|---:|---:|---:|");
    for (case, sample) in [
        ("json-filter + redact, no shadow", None),
        ("with a shadow of redact, 100 % sampled", Some(100)),
        ("with a shadow of redact, 10 % sampled", Some(10)),
    ] {
        if let Some(percent) = sample {
            shadow(&client, &redact, percent).await?;
        }
        let mut row = publish_cell(
            std::slice::from_ref(&client),
            TOPIC,
            body.clone(),
            args.batch,
            args.concurrency,
            seconds,
            How::default(),
        )
        .await?;
        row.latencies.sort();
        let compared = match sample {
            Some(_) => {
                let r = client.get("/v1/plugins/redact/shadow").await?;
                client.delete_json("/v1/plugins/redact/shadow").await?;
                format!("{} / {}", r["batches"], r["skipped_batches"])
            }
            None => "-".into(),
        };
        println!(
            "| {case} | {:.0} | {:.2} | {:.2} | {compared} |",
            row.records as f64 / row.secs,
            crate::produce::percentile_ms(&row.latencies, 0.5),
            crate::produce::percentile_ms(&row.latencies, 0.99),
        );
    }
    for plugin in ["json-filter", "redact"] {
        let (read, secs) = replay(&client, plugin).await?;
        println!(
            "| replay of {TOPIC} through {plugin} | {:.0} | - | - | {read} records in {secs:.2} s |",
            read as f64 / secs
        );
    }
    server.stop().await;
    Ok(())
}

/// Deploys the redact version in `files` as a shadow of the serving one.
async fn shadow(
    client: &Client,
    files: &weir_broker::plugins::PluginFiles,
    percent: u32,
) -> anyhow::Result<()> {
    let form = crate::client::deploy_form(files.manifest_text.clone(), files.component.to_vec());
    client
        .put_multipart(
            &format!("/v1/plugins/redact?shadow=true&sample_percent={percent}"),
            form,
        )
        .await
        .context("deploying the shadow")?;
    Ok(())
}

/// Replays the whole topic through `plugin`'s serving version; records read and
/// seconds taken.
async fn replay(client: &Client, plugin: &str) -> anyhow::Result<(u64, f64)> {
    let body = json!({ "topic": TOPIC, "into": format!("{TOPIC}-replay-{plugin}") });
    let started = Instant::now();
    let r: Value = client
        .post(
            &format!("/v1/plugins/{plugin}/replays"),
            "application/json",
            body.to_string().into(),
        )
        .await?;
    let path = format!("/v1/plugins/{plugin}/replays/{}", r["id"]);
    loop {
        let s = client.get(&path).await?;
        if s["done"] == true {
            anyhow::ensure!(s["error"].is_null(), "the replay failed: {}", s["error"]);
            return Ok((
                s["read"].as_u64().unwrap_or(0),
                started.elapsed().as_secs_f64(),
            ));
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
