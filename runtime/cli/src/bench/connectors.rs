//! `weir bench connectors`: what the first-party connectors move, against an
//! in-process broker with plugins built from source.
//!
//! - Sinks (`file-sink`, `http-sink` to a loopback receiver): the connector is
//!   paused, `--records` records are published, and the time from `resume` to a
//!   group lag of 0 gives records/s. Each batch is a `write` call, an append or a POST,
//!   and for the file sink an fsync, then a durable offset commit.
//! - Source (`generator`): `--records` synthetic events as fast as it is polled; the
//!   span between the first and last record's broker timestamps gives records/s. Each
//!   poll is published with its cursor in one atomic, fsynced append.
//! - Latency (`http-sink`): records published one at a time at `--rate` per second,
//!   each carrying its send time; the receiver takes publish-to-delivery per record.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, ensure};
use bytes::Bytes;
use serde_json::Value;
use std::sync::Mutex;

use super::{Client, InProcess};
use crate::produce::percentile_ms;

/// `weir bench connectors` options.
#[derive(Debug, clap::Args)]
pub struct ConnectorArgs {
    /// Records per throughput case.
    #[arg(long, default_value_t = 200_000)]
    records: u64,
    /// Value size in bytes.
    #[arg(long, default_value_t = 100)]
    value_bytes: usize,
    /// Events per write or poll.
    #[arg(long, default_value_t = 1000)]
    batch: u32,
    /// Records per second in the latency case.
    #[arg(long, default_value_t = 200)]
    rate: u64,
    /// Seconds of the latency case.
    #[arg(long, default_value_t = 5.0)]
    seconds: f64,
    /// Where the first-party plugins' sources are (default: this repository's
    /// `plugins/`).
    #[arg(long)]
    plugins_src: Option<PathBuf>,
    /// Small counts only (for smoke tests).
    #[arg(long)]
    quick: bool,
}

/// Partitions of the benchmark topics.
const PARTITIONS: u32 = 4;

pub(super) async fn run(mut args: ConnectorArgs) -> anyhow::Result<()> {
    if args.quick {
        args.records = args.records.min(2_000);
        args.seconds = args.seconds.min(0.5);
    }
    let plugin_dir = tempfile::tempdir()?;
    let out_dir = tempfile::tempdir()?;
    let receiver = Receiver::start().await?;
    build(&args, plugin_dir.path(), out_dir.path(), &receiver)?;
    let bounds = weir_server::config::ConnectorsConfig {
        allowed_dirs: vec![out_dir.path().to_path_buf()],
        allowed_hosts: vec![receiver.url.trim_start_matches("http://").to_string()],
    };
    let server = InProcess::start_with(plugin_dir.path(), bounds).await?;
    let client = Client::new(&server.url)?;
    let result = measure(&args, &server, &client, &receiver).await;
    server.stop().await;
    let rows = result?;
    println!(
        "| case | records | seconds | records/s | MB/s | p50 ms | p99 ms |\n|---|---:|---:|---:|---:|---:|---:|"
    );
    for r in rows {
        println!("{r}");
    }
    Ok(())
}

/// One line of the table.
struct Row {
    case: &'static str,
    records: u64,
    seconds: f64,
    bytes: u64,
    latency: Option<(f64, f64)>,
}

impl std::fmt::Display for Row {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let (p50, p99) = self.latency.map_or(("-".into(), "-".into()), |(a, b)| {
            (format!("{a:.1}"), format!("{b:.1}"))
        });
        write!(
            f,
            "| {} | {} | {:.2} | {:.0} | {:.1} | {p50} | {p99} |",
            self.case,
            self.records,
            self.seconds,
            self.records as f64 / self.seconds,
            self.bytes as f64 / self.seconds / 1e6,
        )
    }
}

/// Builds the three connectors into `plugin_dir` with manifests for the bench.
fn build(
    args: &ConnectorArgs,
    plugin_dir: &Path,
    out_dir: &Path,
    receiver: &Receiver,
) -> anyhow::Result<()> {
    let src = args
        .plugins_src
        .clone()
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../../plugins"));
    ensure!(
        src.join("generator/Cargo.toml").is_file(),
        "no plugin sources in {} (use --plugins-src)",
        src.display()
    );
    weir_toolchain::check()?;
    let target = src.join("../target/wasm-guests");
    let settings = format!(
        "[connector]\nbatch_max = {}\npoll_interval_ms = 10\nbackoff_initial_ms = 10\nbackoff_max_ms = 50\n",
        args.batch
    );
    let out = out_dir.display();
    let host = receiver.url.trim_start_matches("http://");
    for (crate_name, folder, manifest) in [
        (
            "file-sink",
            "bench-file-sink",
            format!(
                "name = \"bench-file-sink\"\nkind = \"sink\"\ncomponent = \"file_sink.wasm\"\n\
                 [[attach]]\ntopic = \"bench-file\"\n[grants]\ndirs = [\"{out}\"]\n{settings}\
                 [config]\ndir = \"{out}\"\n"
            ),
        ),
        (
            "http-sink",
            "bench-http-sink",
            format!(
                "name = \"bench-http-sink\"\nkind = \"sink\"\ncomponent = \"http_sink.wasm\"\n\
                 [[attach]]\ntopic = \"bench-http\"\n[[attach]]\ntopic = \"bench-latency\"\n\
                 [grants]\nhttp = [\"{host}\"]\n{settings}\
                 [config]\nurl = \"{}/ingest\"\n",
                receiver.url
            ),
        ),
        (
            "generator",
            "bench-generator",
            format!(
                "name = \"bench-generator\"\nkind = \"source\"\ncomponent = \"generator.wasm\"\n\
                 [[attach]]\ntopic = \"bench-generated\"\n{settings}\
                 [config]\nrate = 100000000\ntotal = {}\npayload_bytes = {}\n",
                args.records,
                args.value_bytes.saturating_sub(40)
            ),
        ),
    ] {
        eprintln!("building plugin {crate_name}...");
        let built = crate::plugin::build_in(&src.join(crate_name), Some(plugin_dir), &target)
            .with_context(|| format!("building {crate_name}"))?;
        let dest = plugin_dir.join(folder);
        std::fs::rename(&built, &dest)?;
        std::fs::write(dest.join("plugin.toml"), manifest)?;
    }
    Ok(())
}

async fn measure(
    args: &ConnectorArgs,
    server: &InProcess,
    client: &Client,
    receiver: &Receiver,
) -> anyhow::Result<Vec<Row>> {
    for topic in [
        "bench-file",
        "bench-http",
        "bench-latency",
        "bench-generated",
    ] {
        server
            .broker
            .create_topic(topic, weir_broker::TopicConfig::with_partitions(PARTITIONS))
            .await?;
    }
    let mut rows = Vec::new();
    for (case, connector, topic) in [
        (
            "file-sink (append + fsync per batch)",
            "bench-file-sink",
            "bench-file",
        ),
        (
            "http-sink (POST per batch, loopback)",
            "bench-http-sink",
            "bench-http",
        ),
    ] {
        rows.push(sink_case(args, server, client, case, connector, topic).await?);
    }
    rows.push(source_case(args, server).await?);
    rows.push(latency_case(args, server, receiver).await?);
    Ok(rows)
}

/// Waits until `connector` reports a state, then pauses it, publishes, resumes and
/// times the drain.
async fn sink_case(
    args: &ConnectorArgs,
    server: &InProcess,
    client: &Client,
    case: &'static str,
    connector: &str,
    topic: &str,
) -> anyhow::Result<Row> {
    wait_for(Duration::from_secs(30), || async {
        client
            .get(&format!("/v1/connectors/{connector}"))
            .await
            .is_ok()
    })
    .await
    .with_context(|| format!("{connector} did not start"))?;
    let control = |action: &'static str| async move {
        client
            .post(
                &format!("/v1/connectors/{connector}/{action}"),
                "application/json",
                Bytes::new(),
            )
            .await
    };
    control("pause").await?;
    let bytes = publish(server, topic, args.records, args.value_bytes).await?;
    let group = format!("connector.{connector}");
    let topics = [topic.to_string()];
    let lag = || -> u64 {
        server
            .broker
            .groups()
            .lag_records(&group, &topics)
            .unwrap_or(u64::MAX)
    };
    let started = Instant::now();
    control("resume").await?;
    wait_for(Duration::from_secs(600), || async { lag() == 0 })
        .await
        .with_context(|| format!("{connector} did not drain {topic}"))?;
    Ok(Row {
        case,
        records: args.records,
        seconds: started.elapsed().as_secs_f64(),
        bytes,
        latency: None,
    })
}

/// The generator's output rate, from the broker's append timestamps.
async fn source_case(args: &ConnectorArgs, server: &InProcess) -> anyhow::Result<Row> {
    let topic = server.broker.topic("bench-generated")?;
    let total = || -> u64 {
        (0..PARTITIONS)
            .filter_map(|p| topic.partition(p).ok())
            .map(|p| p.high_watermark())
            .sum()
    };
    wait_for(Duration::from_secs(600), || async {
        total() >= args.records
    })
    .await
    .context("the generator did not produce its records")?;
    let (mut first, mut last, mut bytes) = (i64::MAX, i64::MIN, 0u64);
    for p in 0..PARTITIONS {
        let mut offset = 0;
        loop {
            let read = server
                .broker
                .fetch(
                    &topic,
                    p,
                    offset,
                    weir_broker::ReadLimits::default(),
                    Duration::ZERO,
                )
                .await?;
            if read.count == 0 {
                break;
            }
            for r in read.records() {
                first = first.min(r.timestamp_ms);
                last = last.max(r.timestamp_ms);
                bytes += r.value.map_or(0, |v| v.len() as u64);
            }
            offset = read.next_offset;
        }
    }
    Ok(Row {
        case: "generator source (poll + atomic append with cursor)",
        records: args.records,
        seconds: ((last - first).max(1) as f64) / 1e3,
        bytes,
        latency: None,
    })
}

/// Publish-to-delivery through the HTTP sink at a fixed rate.
async fn latency_case(
    args: &ConnectorArgs,
    server: &InProcess,
    receiver: &Receiver,
) -> anyhow::Result<Row> {
    let topic = server.broker.topic("bench-latency")?;
    receiver.latencies.lock().unwrap().clear();
    let n = (args.rate as f64 * args.seconds).ceil().max(1.0) as u64;
    let interval = Duration::from_secs_f64(1.0 / args.rate as f64);
    let started = Instant::now();
    for i in 0..n {
        let due = started + interval.mul_f64(i as f64);
        tokio::time::sleep_until(due.into()).await;
        let value = format!("{{\"sent_us\":{}}}", now_us());
        let record = weir_broker::NewRecord {
            value: Some(value.as_bytes().into()),
            value_is_json: true,
            ..Default::default()
        };
        server
            .broker
            .publish(&topic, &[record], weir_broker::Acks::All)
            .await?;
    }
    wait_for(Duration::from_secs(60), || async {
        receiver.latencies.lock().unwrap().len() as u64 >= n
    })
    .await
    .context("the HTTP sink did not deliver every latency record")?;
    let mut lat = receiver.latencies.lock().unwrap().clone();
    lat.sort_unstable();
    Ok(Row {
        case: "http-sink publish-to-delivery latency",
        records: n,
        seconds: started.elapsed().as_secs_f64(),
        bytes: n * 20,
        latency: Some((percentile_ms(&lat, 0.5), percentile_ms(&lat, 0.99))),
    })
}

/// Publishes `n` records of `value_bytes` in requests of 1000, straight to the broker
/// (the sink is what is measured). Returns the value bytes.
async fn publish(
    server: &InProcess,
    topic: &str,
    n: u64,
    value_bytes: usize,
) -> anyhow::Result<u64> {
    let topic = server.broker.topic(topic)?;
    let value = vec![b'x'; value_bytes];
    let mut sent = 0;
    while sent < n {
        let count = (n - sent).min(1000);
        let records: Vec<_> = (0..count)
            .map(|_| weir_broker::NewRecord {
                value: Some(value.as_slice().into()),
                ..Default::default()
            })
            .collect();
        server
            .broker
            .produce(&topic, &records, weir_broker::Acks::All)
            .await?;
        sent += count;
    }
    Ok(n * value_bytes as u64)
}

async fn wait_for<F, Fut>(limit: Duration, mut done: F) -> anyhow::Result<()>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + limit;
    while !done().await {
        ensure!(Instant::now() < deadline, "timed out after {limit:?}");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    Ok(())
}

fn now_us() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_micros() as u64)
}

/// A loopback receiver for the HTTP sink: counts events from the offset headers
/// (no parsing on the throughput path) and takes latencies from bodies that carry
/// `sent_us`.
struct Receiver {
    url: String,
    latencies: Arc<Mutex<Vec<Duration>>>,
}

impl Receiver {
    async fn start() -> anyhow::Result<Receiver> {
        let latencies = Arc::new(Mutex::new(Vec::new()));
        let events = Arc::new(AtomicU64::new(0));
        let state = (latencies.clone(), events);
        let app = axum::Router::new()
            .route("/ingest", axum::routing::post(ingest))
            .with_state(state);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let url = format!("http://{}", listener.local_addr()?);
        tokio::spawn(async move { axum::serve(listener, app).await });
        Ok(Receiver { url, latencies })
    }
}

type ReceiverState = (Arc<Mutex<Vec<Duration>>>, Arc<AtomicU64>);

async fn ingest(
    axum::extract::State((latencies, events)): axum::extract::State<ReceiverState>,
    headers: axum::http::HeaderMap,
    body: Bytes,
) -> axum::http::StatusCode {
    let offset = |name: &str| -> u64 {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok()?.parse().ok())
            .unwrap_or(0)
    };
    let n = offset("x-weir-last-offset") + 1 - offset("x-weir-first-offset");
    events.fetch_add(n, Ordering::Relaxed);
    if headers
        .get("x-weir-topic")
        .is_some_and(|t| t == "bench-latency")
    {
        let now = now_us();
        if let Ok(Value::Array(batch)) = serde_json::from_slice::<Value>(&body) {
            let mut l = latencies.lock().unwrap();
            for e in batch {
                if let Some(sent) = e["value"]["sent_us"].as_u64() {
                    l.push(Duration::from_micros(now.saturating_sub(sent)));
                }
            }
        }
    }
    axum::http::StatusCode::OK
}
