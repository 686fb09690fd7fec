//! `weir bench processors`: the window-count example processor (built from
//! `examples/`) run by an in-process broker on a real store.
//!
//! - Throughput: the processor is paused, `--records` records of `--value-bytes`
//!   with `--keys` distinct keys are stored (one 1-minute window), and the time from
//!   `resume` to a lag of 0 gives records/s. Every batch of `--batch` is one plugin
//!   call and one atomic append of state, open windows and offsets.
//! - Close-to-readable latency: one key on its own topic; each record's time starts
//!   a new window and so closes the one before; the time from publishing it to the
//!   previous window's count being readable by a long-polling consumer.
//! - Restore: `--restore-keys` distinct keys in one open window, processed, then the
//!   broker restarted on the same store: the time from opening the store to the
//!   processor having every open window back (and reading again).

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Context, bail, ensure};
use bytes::Bytes;
use serde_json::Value;

use super::Client;
use crate::produce::percentile_ms;

/// `weir bench processors` options.
#[derive(Debug, clap::Args)]
pub struct ProcessorArgs {
    /// Records of the throughput case.
    #[arg(long, default_value_t = 1_000_000)]
    records: u64,
    /// Distinct keys in the throughput case.
    #[arg(long, default_value_t = 10_000)]
    keys: u64,
    /// Value size in bytes.
    #[arg(long, default_value_t = 100)]
    value_bytes: usize,
    /// Most records per processor batch.
    #[arg(long, default_value_t = 1000)]
    batch: u32,
    /// Windows closed in the latency case.
    #[arg(long, default_value_t = 200)]
    closes: u64,
    /// Distinct keys (open windows) in the restore case.
    #[arg(long, default_value_t = 1_000_000)]
    restore_keys: u64,
    /// Small counts only (for smoke tests).
    #[arg(long)]
    quick: bool,
}

/// Partitions of the throughput and restore inputs.
const PARTITIONS: u32 = 4;

/// A broker serving from `data_dir` in this process.
struct Broker {
    url: String,
    broker: weir_broker::Broker,
    stop: tokio::sync::oneshot::Sender<()>,
    task: tokio::task::JoinHandle<anyhow::Result<()>>,
}

impl Broker {
    async fn start(data_dir: &Path, plugin_dir: &Path) -> anyhow::Result<Broker> {
        let config = weir_server::Config {
            data_dir: data_dir.to_path_buf(),
            plugin_dir: plugin_dir.to_path_buf(),
            ..weir_server::Config::default()
        };
        let opened = weir_server::open_broker(&config).await?;
        let broker = opened.broker.clone();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let url = format!("http://{}", listener.local_addr()?);
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            weir_server::run(listener, opened, &config, async {
                let _ = stopped.await;
            })
            .await
        });
        Ok(Broker {
            url,
            broker,
            stop,
            task,
        })
    }

    async fn stop(self) -> anyhow::Result<()> {
        let _ = self.stop.send(());
        self.task.await?
    }
}

pub(super) async fn run(mut args: ProcessorArgs) -> anyhow::Result<()> {
    if args.quick {
        args.records = args.records.min(20_000);
        args.keys = args.keys.min(1_000);
        args.closes = args.closes.min(10);
        args.restore_keys = args.restore_keys.min(20_000);
    }
    let plugin_dir = tempfile::tempdir()?;
    let data = tempfile::tempdir()?;
    build(&args, plugin_dir.path())?;
    let server = Broker::start(data.path(), plugin_dir.path()).await?;
    let client = Client::new(&server.url)?;
    for (topic, partitions) in [
        ("bench-clicks", PARTITIONS),
        ("bench-counts", 1),
        ("bench-tick", 1),
        ("bench-tick-counts", 1),
        ("bench-many", PARTITIONS),
        ("bench-many-counts", 1),
    ] {
        server
            .broker
            .create_topic(topic, weir_broker::TopicConfig::with_partitions(partitions))
            .await?;
    }
    println!(
        "| case | records | seconds | records/s | p50 ms | p99 ms |\n|---|---:|---:|---:|---:|---:|"
    );
    let (n, secs) = throughput(
        &args,
        &server,
        &client,
        "bench-count",
        "bench-clicks",
        args.keys,
        args.records,
    )
    .await?;
    println!(
        "| tumbling count, {} B, {} keys, batch {} | {n} | {secs:.2} | {:.0} | - | - |",
        args.value_bytes,
        args.keys,
        args.batch,
        n as f64 / secs
    );
    let latencies = close_latency(&args, &client).await?;
    println!(
        "| window close to result readable | {} | - | - | {:.1} | {:.1} |",
        latencies.len(),
        percentile_ms(&latencies, 0.5),
        percentile_ms(&latencies, 0.99)
    );
    let (n, secs) = throughput(
        &args,
        &server,
        &client,
        "bench-restore",
        "bench-many",
        args.restore_keys,
        args.restore_keys,
    )
    .await?;
    println!(
        "| {} keys in open windows (to restore) | {n} | {secs:.2} | {:.0} | - | - |",
        args.restore_keys,
        n as f64 / secs
    );
    server.stop().await?;
    let started = Instant::now();
    let server = Broker::start(data.path(), plugin_dir.path()).await?;
    let opened = started.elapsed();
    let client = Client::new(&server.url)?;
    wait(&client, "bench-restore", Duration::from_secs(600), |s| {
        s["windows_open"].as_u64() == Some(args.restore_keys) && s["state"] == "running"
    })
    .await?;
    let restored = started.elapsed();
    println!(
        "| restart with {} keys: store open / windows restored | - | {:.2} / {:.2} | - | - | - |",
        args.restore_keys,
        opened.as_secs_f64(),
        restored.as_secs_f64()
    );
    server.stop().await
}

/// Builds the window-count example into `plugin_dir` three times: the throughput
/// and restore processors, and the latency one.
fn build(args: &ProcessorArgs, plugin_dir: &Path) -> anyhow::Result<()> {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples");
    ensure!(
        src.join("window-count/Cargo.toml").is_file(),
        "no example sources in {}",
        src.display()
    );
    weir_toolchain::check()?;
    let target = src.join("../target/wasm-guests");
    eprintln!("building the window-count example...");
    let built = crate::plugin::build_in(&src.join("window-count"), Some(plugin_dir), &target)
        .context("building window-count")?;
    for (name, input, output, size_ms) in [
        ("bench-count", "bench-clicks", "bench-counts", 60_000),
        ("bench-latency", "bench-tick", "bench-tick-counts", 1_000),
        ("bench-restore", "bench-many", "bench-many-counts", 60_000),
    ] {
        let dest = plugin_dir.join(name);
        std::fs::create_dir_all(&dest)?;
        std::fs::copy(
            built.join("window_count.wasm"),
            dest.join("window_count.wasm"),
        )?;
        std::fs::write(
            dest.join("plugin.toml"),
            format!(
                "name = \"{name}\"\nkind = \"processor\"\ncomponent = \"window_count.wasm\"\n\
                 [processor]\ninputs = [\"{input}\"]\noutputs = [\"{output}\"]\n\
                 windows = {{ kind = \"tumbling\", size_ms = {size_ms} }}\n\
                 event_time = \"plugin\"\nbatch_max = {}\n\
                 [config]\noutput = \"{output}\"\ntime_field = \"/ts\"\n",
                args.batch
            ),
        )?;
    }
    std::fs::remove_dir_all(&built)?;
    Ok(())
}

/// The processor's status.
async fn status(client: &Client, name: &str) -> anyhow::Result<Value> {
    client.get(&format!("/v1/processors/{name}")).await
}

/// Polls `name`'s status every 10 ms until `done` holds.
async fn wait(
    client: &Client,
    name: &str,
    limit: Duration,
    done: impl Fn(&Value) -> bool,
) -> anyhow::Result<()> {
    let deadline = Instant::now() + limit;
    loop {
        let s = status(client, name).await?;
        if done(&s) {
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!("processor {name} did not get there in {limit:?}: {s}");
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Pauses `name`, stores `records` records over `keys` keys in `input` (one
/// window), resumes it and times it to a lag of 0.
#[allow(clippy::too_many_arguments)]
async fn throughput(
    args: &ProcessorArgs,
    server: &Broker,
    client: &Client,
    name: &str,
    input: &str,
    keys: u64,
    records: u64,
) -> anyhow::Result<(u64, f64)> {
    wait(client, name, Duration::from_secs(60), |s| {
        s["state"] == "running"
    })
    .await?;
    client
        .post(
            &format!("/v1/processors/{name}/pause"),
            "application/json",
            Bytes::new(),
        )
        .await?;
    wait(client, name, Duration::from_secs(60), |s| {
        s["state"] == "paused"
    })
    .await?;
    let topic = server.broker.topic(input)?;
    let pad = args.value_bytes.saturating_sub(24);
    let base = weir_broker::now_ms();
    let mut sent = 0;
    while sent < records {
        let n = (records - sent).min(1000);
        let keyed: Vec<(String, String)> = (sent..sent + n)
            .map(|i| {
                (
                    format!("k{}", i % keys),
                    format!(
                        "{{\"ts\":{},\"p\":\"{}\"}}",
                        base + (i % 1000) as i64,
                        "x".repeat(pad)
                    ),
                )
            })
            .collect();
        let batch: Vec<weir_broker::NewRecord<'_>> = keyed
            .iter()
            .map(|(k, v)| weir_broker::NewRecord {
                key: Some(k.as_bytes().into()),
                value: Some(v.as_bytes().into()),
                value_is_json: true,
                ..weir_broker::NewRecord::default()
            })
            .collect();
        server
            .broker
            .produce(&topic, &batch, weir_broker::Acks::All)
            .await?;
        sent += n;
    }
    let started = Instant::now();
    client
        .post(
            &format!("/v1/processors/{name}/resume"),
            "application/json",
            Bytes::new(),
        )
        .await?;
    wait(client, name, Duration::from_secs(3600), |s| {
        s["lag_records"] == 0 && s["state"] == "running"
    })
    .await?;
    Ok((records, started.elapsed().as_secs_f64()))
}

/// Publishes one record per window over HTTP; each closes the window before it:
/// the time from sending it to that window's count being read by a long poll.
async fn close_latency(args: &ProcessorArgs, client: &Client) -> anyhow::Result<Vec<Duration>> {
    let name = "bench-latency";
    wait(client, name, Duration::from_secs(60), |s| {
        s["state"] == "running"
    })
    .await?;
    let base = (weir_broker::now_ms() / 1000 + 1) * 1000;
    let tick = |i: u64| -> Bytes {
        let record = serde_json::json!({ "records": [{ "key": "k", "value": { "ts": base + i as i64 * 1000 } }] });
        Bytes::from(record.to_string())
    };
    client
        .post("/v1/topics/bench-tick/records", "application/json", tick(0))
        .await?;
    let mut latencies = Vec::new();
    for i in 1..=args.closes {
        let started = Instant::now();
        client
            .post("/v1/topics/bench-tick/records", "application/json", tick(i))
            .await?;
        let path = format!(
            "/v1/topics/bench-tick-counts/partitions/0/records?offset={}&max_records=1&timeout_ms=10000",
            i - 1
        );
        let read = client.get(&path).await?;
        let count = read["records"][0]["value"]["count"].as_u64();
        ensure!(
            count == Some(1),
            "window {i} was not emitted as expected: {read}"
        );
        latencies.push(started.elapsed());
    }
    latencies.sort();
    Ok(latencies)
}
