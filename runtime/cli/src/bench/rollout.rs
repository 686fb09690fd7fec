//! `weir bench rollout`: what safe rollout costs. Publishes through a json-filter +
//! redact pipeline (the first-party plugins built from source) without a shadow,
//! with a shadow of redact comparing every batch, with one comparing 10 % of them,
//! and with a canary of redact serving 10 % of the events, back to back; then
//! replays the stored topic through each plugin, and once as a diff.

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
    for (case, stage) in [
        ("json-filter + redact, no shadow", Stage::None),
        ("with a shadow of redact, 100 % sampled", Stage::Shadow(100)),
        ("with a shadow of redact, 10 % sampled", Stage::Shadow(10)),
        (
            "with a canary of redact on 10 % of events",
            Stage::Canary(10),
        ),
    ] {
        match stage {
            Stage::Shadow(percent) => shadow(&client, &redact, percent).await?,
            Stage::Canary(percent) => canary(&client, &redact, percent).await?,
            Stage::None => {}
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
        let compared = match stage {
            Stage::Shadow(_) => {
                let r = client.get("/v1/plugins/redact/shadow").await?;
                client.delete_json("/v1/plugins/redact/shadow").await?;
                format!("{} / {}", r["batches"], r["skipped_batches"])
            }
            Stage::Canary(_) => {
                let r = client.delete_json("/v1/plugins/redact/canary").await?;
                format!("canary took {} of {} events", r["new"]["events"], {
                    r["new"]["events"].as_u64().unwrap_or(0)
                        + r["old"]["events"].as_u64().unwrap_or(0)
                })
            }
            Stage::None => "-".into(),
        };
        println!(
            "| {case} | {:.0} | {:.2} | {:.2} | {compared} |",
            row.records as f64 / row.secs,
            crate::produce::percentile_ms(&row.latencies, 0.5),
            crate::produce::percentile_ms(&row.latencies, 0.99),
        );
    }
    for (plugin, diff) in [("json-filter", false), ("redact", false), ("redact", true)] {
        let (read, secs) = replay(&client, plugin, diff).await?;
        let how = if diff {
            "a diff (vs itself)"
        } else {
            "a replay"
        };
        println!(
            "| {how} of {TOPIC} through {plugin} | {:.0} | - | - | {read} records in {secs:.2} s |",
            read as f64 / secs
        );
    }
    server.stop().await;
    Ok(())
}

/// What runs beside the serving redact during a cell.
#[derive(Clone, Copy)]
enum Stage {
    None,
    /// A shadow sampling this percent of batches.
    Shadow(u32),
    /// A canary serving this percent of the events (the bench's records have no
    /// keys: spread by a counter), never judged during the cell.
    Canary(u32),
}

/// Deploys the redact version in `files`, with one more comment line (another
/// version), as a canary beside the serving one.
async fn canary(
    client: &Client,
    files: &weir_broker::plugins::PluginFiles,
    percent: u32,
) -> anyhow::Result<()> {
    let manifest = format!("{}\n# the bench's canary\n", files.manifest_text);
    let form = crate::client::deploy_form(manifest, files.component.to_vec());
    client
        .put_multipart(
            &format!("/v1/plugins/redact?canary_percent={percent}&promote_after=1000000000"),
            form,
        )
        .await
        .context("deploying the canary")?;
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

/// Replays the whole topic through `plugin`'s serving version (with `diff`, compared
/// with itself, nothing written); records read and seconds taken.
async fn replay(client: &Client, plugin: &str, diff: bool) -> anyhow::Result<(u64, f64)> {
    let body = if diff {
        json!({ "topic": TOPIC, "diff": true })
    } else {
        json!({ "topic": TOPIC, "into": format!("{TOPIC}-replay-{plugin}") })
    };
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
