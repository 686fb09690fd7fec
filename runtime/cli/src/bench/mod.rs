//! `weir bench`: produce and fetch throughput and ack latency over HTTP, beside the
//! physical limit of this disk (a plain append-and-fsync file writer).
//!
//! Without `--url` it starts a broker in-process on a loopback port with a temporary
//! data directory, so `weir bench` needs nothing else running.

use std::io::Write as _;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context;
use bytes::Bytes;
use serde_json::json;

use super::Client;
use super::produce::percentile_ms;
use latency::sse_latency;

mod child;
mod cluster;
mod cluster_plugins;
mod compare;
mod connectors;
mod languages;
mod latency;
mod pipeline;
mod processors;
mod reload;
mod rollout;

#[derive(Debug, clap::Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct BenchArgs {
    /// A focused benchmark instead of the produce/fetch table.
    #[command(subcommand)]
    command: Option<BenchCommand>,
    /// Server to measure; default: start one in-process with a temporary data dir.
    #[arg(long)]
    url: Option<String>,
    /// API token for a server with auth on.
    #[arg(long, env = "WEIR_TOKEN", hide_env_values = true)]
    token: Option<String>,
    /// Seconds per produce cell.
    #[arg(long, default_value_t = 3.0)]
    seconds: f64,
    /// Run every cell briefly (for smoke tests).
    #[arg(long)]
    quick: bool,
    /// Batch sizes to measure.
    #[arg(long, value_delimiter = ',', default_value = "1,100,1000")]
    batch: Vec<usize>,
    /// Value sizes (bytes) to measure.
    #[arg(long, value_delimiter = ',', default_value = "100,1024")]
    value_bytes: Vec<usize>,
    /// Concurrent producers to measure.
    #[arg(long, value_delimiter = ',', default_value = "1,8,64")]
    concurrency: Vec<usize>,
    /// Partitions of the benchmark topics.
    #[arg(long, default_value_t = 4)]
    partitions: u32,
    /// Publish rates (records/s) at which to measure publish-to-receive latency.
    #[arg(long, value_delimiter = ',', default_value = "1000,10000")]
    latency_rate: Vec<u64>,
    /// Where the first-party plugins' sources are, for the pipeline cases (built
    /// with the WASM toolchain before the run). Default: this repository's
    /// `plugins/`. The pipeline cases need the in-process broker.
    #[arg(long)]
    plugins_src: Option<std::path::PathBuf>,
    /// Skip the pipeline cases.
    #[arg(long)]
    no_pipelines: bool,
    /// Concurrent producers in the pipeline cases.
    #[arg(long, value_delimiter = ',', default_value = "1,8")]
    pipeline_concurrency: Vec<usize>,
    /// Speak HTTP/2 (cleartext, prior knowledge): every request a stream on one
    /// connection, instead of HTTP/1.1 connections.
    #[arg(long)]
    http2: bool,
    /// `acks` of the produce cells: `all` (after fsync) or `none`.
    #[arg(long, default_value = "all", value_parser = ["all", "none"])]
    acks: String,
    /// Send a fresh `Idempotency-Key` with every produce request (the cost of
    /// idempotency).
    #[arg(long)]
    idempotency_keys: bool,
}

#[derive(Debug, clap::Subcommand)]
enum BenchCommand {
    /// Hot reload: time from a plugin file write to the new version serving, and
    /// back-to-back reloads under publish load with an exactly-once check.
    #[command(after_help = "Examples:\n  weir bench reload\n  weir bench reload --quick")]
    Reload(reload::ReloadArgs),
    /// Connectors: sink and source throughput, and publish-to-delivery latency
    /// through the HTTP sink, with the first-party connectors built from source.
    #[command(
        after_help = "Examples:\n  weir bench connectors\n  weir bench connectors --records 300000 --value-bytes 1024 --rate 1000"
    )]
    Connectors(connectors::ConnectorArgs),
    /// Weir beside NATS JetStream and Redis Streams (installed from Debian's packages
    /// if missing), same machine, same run, same workloads: publish one by one and in
    /// batches, consume from the start, publish-to-receive latency. Prints one
    /// Markdown table and writes it to --out.
    #[command(
        after_help = "Examples:\n  weir bench compare\n  weir bench compare --quick --out /tmp/compare.md\n  weir bench compare --peers redis --seconds 5"
    )]
    Compare(compare::CompareArgs),
    /// Cluster mode beside the embedded store, same run: publish in batches with 1
    /// and 8 producers on one and two Weir nodes, single records at concurrency 64,
    /// consume, publish-to-SSE latency across nodes, and the time to resume after
    /// the stream leader is killed. Starts a local 3-node NATS cluster (R3, fsync
    /// before every ack) with the pinned server (`tests/cluster/nats.sh install`).
    #[command(after_help = "Examples:\n  weir bench cluster\n  weir bench cluster --quick")]
    Cluster(cluster::ClusterArgs),
    /// The same substring filter in Rust, Python and JavaScript, built from
    /// `examples/`: component size, cold and cached loads, instance start, cost per
    /// event at batch 1000, memory per pooled instance.
    #[command(
        after_help = "Examples:\n  weir bench languages\n  weir bench languages --seconds 1 --batch 100"
    )]
    Languages(languages::LanguageArgs),
    /// Stream processors: records/s through the window-count example (100 B, 10 K
    /// keys, batch 1000), the time from a window's close to its result being
    /// readable, and the restore time after a restart with 1 M open windows.
    #[command(after_help = "Examples:\n  weir bench processors\n  weir bench processors --quick")]
    Processors(processors::ProcessorArgs),
    /// Safe rollout's costs: publishes through json-filter + redact without a
    /// shadow, with a shadow comparing every batch and 10 % of them, then replays of
    /// the stored topic through each plugin.
    #[command(after_help = "Examples:\n  weir bench rollout\n  weir bench rollout --quick")]
    Rollout(rollout::RolloutArgs),
}

/// One line of the results table.
struct Row {
    name: String,
    records: u64,
    bytes: u64,
    secs: f64,
    latencies: Vec<Duration>,
}

impl Row {
    /// The table's header, before the first row.
    fn print_header() {
        println!(
            "| {:<40} | {:>12} | {:>8} | {:>9} | {:>9} |",
            "workload", "records/s", "MB/s", "p50 ms", "p99 ms"
        );
        println!(
            "|{:-<42}|{:->14}|{:->10}|{:->11}|{:->11}|",
            "", "", "", "", ""
        );
    }

    fn print(&self) {
        let mut lat = self.latencies.clone();
        lat.sort();
        let (p50, p99) = if lat.is_empty() {
            ("-".to_string(), "-".to_string())
        } else {
            (
                format!("{:.2}", percentile_ms(&lat, 0.5)),
                format!("{:.2}", percentile_ms(&lat, 0.99)),
            )
        };
        println!(
            "| {:<40} | {:>12.0} | {:>8.1} | {:>9} | {:>9} |",
            self.name,
            self.records as f64 / self.secs,
            self.bytes as f64 / self.secs / 1e6,
            p50,
            p99
        );
        let _ = std::io::stdout().flush();
    }
}

pub async fn run(args: BenchArgs) -> anyhow::Result<()> {
    match args.command {
        Some(BenchCommand::Reload(a)) => return reload::run(a).await,
        Some(BenchCommand::Connectors(a)) => return connectors::run(a).await,
        Some(BenchCommand::Compare(a)) => return compare::run(a).await,
        Some(BenchCommand::Cluster(a)) => return cluster::run(a).await,
        Some(BenchCommand::Languages(a)) => return languages::run(a).await,
        Some(BenchCommand::Processors(a)) => return processors::run(a).await,
        Some(BenchCommand::Rollout(a)) => return rollout::run(a).await,
        None => {}
    }
    let seconds = if args.quick { 0.2 } else { args.seconds };
    let mut server = None::<InProcess>;
    let plugin_dir = tempfile::tempdir()?;
    let pipelines = if args.url.is_none() && !args.no_pipelines {
        pipeline::build_plugins(args.plugins_src.as_deref(), plugin_dir.path())?
    } else {
        false
    };
    let (url, data_dir) = match &args.url {
        Some(url) => (url.clone(), std::env::temp_dir()),
        None => {
            let started = InProcess::start(plugin_dir.path()).await?;
            let url = started.url.clone();
            let dir = started.dir.path().to_path_buf();
            server = Some(started);
            (url, dir)
        }
    };
    let client = if args.http2 {
        Client::http2(&url, args.token.as_deref())?
    } else {
        Client::with_token(&url, args.token.as_deref())?
    };
    let http = if args.http2 {
        "HTTP/2 (h2c)"
    } else {
        "HTTP/1.1"
    };
    let how = How {
        acks: if args.acks == "none" { "none" } else { "all" },
        idempotency_keys: args.idempotency_keys,
    };
    println!(
        "weir bench against {url} over {http}, {seconds} s per cell, acks={}{}\n",
        how.acks,
        if how.idempotency_keys {
            ", an Idempotency-Key per request"
        } else {
            ""
        }
    );
    Row::print_header();
    for v in &args.value_bytes {
        fsync_limit(&data_dir, *v, 1000, seconds)?.print();
        fsync_limit(&data_dir, *v, 1, seconds)?.print();
    }
    let mut fetch_topic = None;
    for &value_bytes in &args.value_bytes {
        for &batch in &args.batch {
            for &concurrency in &args.concurrency {
                let topic = format!("bench-v{value_bytes}-b{batch}-c{concurrency}");
                let (status, _) = client
                    .put(
                        &format!("/v1/topics/{topic}"),
                        &json!({ "partitions": args.partitions }),
                    )
                    .await?;
                anyhow::ensure!(status == 201 || status == 200, "creating {topic} failed");
                let before = server.as_ref().map(|s| s.broker.write_stats());
                let row = produce_cell(
                    &client,
                    &topic,
                    value_bytes,
                    batch,
                    concurrency,
                    seconds,
                    how,
                )
                .await?;
                row.print();
                if let (Some(s), Some(before)) = (&server, before) {
                    print_write_path(before, s.broker.write_stats());
                }
                if fetch_topic.is_none() && batch == *args.batch.iter().max().unwrap_or(&1) {
                    fetch_topic = Some((topic, value_bytes));
                }
            }
        }
    }
    if let Some((topic, value_bytes)) = fetch_topic {
        fetch_all(&client, &topic, value_bytes, args.partitions)
            .await?
            .print();
    }
    if let (true, Some(s)) = (pipelines, &server) {
        for &value_bytes in &args.value_bytes {
            for &batch in &args.batch {
                for &concurrency in &args.pipeline_concurrency {
                    pipeline::cells(
                        "",
                        &client,
                        value_bytes,
                        batch,
                        concurrency,
                        args.partitions,
                        seconds,
                        &s.broker,
                    )
                    .await?;
                }
            }
        }
    }
    for &rate in &args.latency_rate {
        sse_latency(&client, rate, seconds.max(1.0)).await?.print();
    }
    if let Some(server) = server {
        server.stop().await;
    }
    Ok(())
}

/// With an in-process server: what the write path did during the cell, as a
/// table row of its own so the table stays valid Markdown.
pub(super) fn print_write_path(
    before: weir_broker::StatsSnapshot,
    after: weir_broker::StatsSnapshot,
) {
    let flushes = (after.flushes - before.flushes).max(1);
    let writes = (after.writes - before.writes).max(1);
    let records = after.records_written - before.records_written;
    println!(
        "| {:<40} | {:>12} | {:>8} | {:>9} | {:>9} |",
        format!(
            "  server: {:.0} rec/flush, {:.1} req/flush",
            records as f64 / flushes as f64,
            (after.requests_flushed - before.requests_flushed) as f64 / flushes as f64
        ),
        "",
        "",
        format!(
            "w {:.2}",
            (after.write_nanos - before.write_nanos) as f64 / writes as f64 / 1e6
        ),
        format!(
            "f {:.2}",
            (after.flush_nanos - before.flush_nanos) as f64 / flushes as f64 / 1e6
        ),
    );
}

/// The physical limit: append `batch` records of `value_bytes` to a file and fsync.
fn fsync_limit(
    dir: &std::path::Path,
    value_bytes: usize,
    batch: usize,
    seconds: f64,
) -> anyhow::Result<Row> {
    let path = dir.join(format!("weir-bench-fsync-{}", std::process::id()));
    let mut file = std::fs::File::create(&path).context("creating the fsync probe file")?;
    let chunk = vec![b'x'; value_bytes * batch];
    let started = Instant::now();
    let mut records = 0u64;
    let mut latencies = Vec::new();
    while started.elapsed().as_secs_f64() < seconds {
        let t = Instant::now();
        file.write_all(&chunk)?;
        file.sync_data()?;
        latencies.push(t.elapsed());
        records += batch as u64;
    }
    let secs = started.elapsed().as_secs_f64();
    drop(file);
    let _ = std::fs::remove_file(&path);
    Ok(Row {
        name: format!("file append+fsync, {value_bytes} B x {batch}/fsync"),
        records,
        bytes: records * value_bytes as u64,
        secs,
        latencies,
    })
}

async fn produce_cell(
    client: &Client,
    topic: &str,
    value_bytes: usize,
    batch: usize,
    concurrency: usize,
    seconds: f64,
    how: How,
) -> anyhow::Result<Row> {
    let body = Bytes::from(batch_body(value_bytes, batch));
    let clients = std::slice::from_ref(client);
    let mut row = publish_cell(clients, topic, body, batch, concurrency, seconds, how).await?;
    row.name = format!("produce {value_bytes} B x {batch}/req, {concurrency} conc");
    row.bytes = row.records * value_bytes as u64;
    Ok(row)
}

/// How the produce cells publish.
#[derive(Debug, Clone, Copy)]
pub(super) struct How {
    acks: &'static str,
    idempotency_keys: bool,
}

impl Default for How {
    fn default() -> Self {
        Self {
            acks: "all",
            idempotency_keys: false,
        }
    }
}

/// Publishes `body` (holding `batch` records) to `topic` from `concurrency` tasks for
/// `seconds`, each waiting for its answer before sending again; the tasks are dealt
/// over `clients` (one server, or several cluster nodes).
async fn publish_cell(
    clients: &[Client],
    topic: &str,
    body: Bytes,
    batch: usize,
    concurrency: usize,
    seconds: f64,
    how: How,
) -> anyhow::Result<Row> {
    let records = Arc::new(AtomicU64::new(0));
    // Keys unique to this run, so a second run against the same broker stores again.
    let run = format!(
        "{}-{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis())
    );
    let deadline = Instant::now() + Duration::from_secs_f64(seconds);
    let started = Instant::now();
    let mut tasks = Vec::new();
    for i in 0..concurrency {
        let client = clients[i % clients.len()].fork()?;
        let (http, url, body, records, run) = (
            client.http().clone(),
            client.url(&format!("/v1/topics/{topic}/records?acks={}", how.acks)),
            body.clone(),
            records.clone(),
            run.clone(),
        );
        tasks.push(tokio::spawn(async move {
            let mut latencies = Vec::new();
            let mut sent = 0u64;
            while Instant::now() < deadline {
                let t = Instant::now();
                let mut req = http
                    .post(&url)
                    .header("content-type", "application/json")
                    .body(body.clone());
                if how.idempotency_keys {
                    sent += 1;
                    req = req.header("idempotency-key", format!("bench-{run}-{i}-{sent}"));
                }
                let resp = req.send().await?;
                let status = resp.status();
                let _ = resp.bytes().await?;
                anyhow::ensure!(status.is_success(), "produce failed with {status}");
                latencies.push(t.elapsed());
                records.fetch_add(batch as u64, Ordering::Relaxed);
            }
            Ok::<_, anyhow::Error>(latencies)
        }));
    }
    let mut latencies = Vec::new();
    for t in tasks {
        latencies.extend(t.await??);
    }
    let secs = started.elapsed().as_secs_f64();
    let records = records.load(Ordering::Relaxed);
    Ok(Row {
        name: String::new(),
        records,
        bytes: 0,
        secs,
        latencies,
    })
}

/// A JSON produce body of `batch` string values, each stored as `value_bytes` bytes.
fn batch_body(value_bytes: usize, batch: usize) -> Vec<u8> {
    let text = "x".repeat(value_bytes.saturating_sub(2));
    let mut out = Vec::with_capacity(batch * (value_bytes + 16) + 16);
    out.extend_from_slice(b"{\"records\":[");
    for i in 0..batch {
        if i > 0 {
            out.push(b',');
        }
        out.extend_from_slice(b"{\"value\":\"");
        out.extend_from_slice(text.as_bytes());
        out.extend_from_slice(b"\"}");
    }
    out.extend_from_slice(b"]}");
    out
}

/// Reads every partition of `topic` from the start, 10,000 records per fetch.
async fn fetch_all(
    client: &Client,
    topic: &str,
    value_bytes: usize,
    partitions: u32,
) -> anyhow::Result<Row> {
    let started = Instant::now();
    let mut records = 0u64;
    let mut latencies = Vec::new();
    for p in 0..partitions {
        let mut offset = 0u64;
        loop {
            let t = Instant::now();
            let resp = client
                .http()
                .get(client.url(&format!("/v1/topics/{topic}/partitions/{p}/records?offset={offset}&max_records=10000&max_bytes=16777216")))
                .send()
                .await?
                .bytes()
                .await?;
            latencies.push(t.elapsed());
            let v: serde_json::Value = serde_json::from_slice(&resp)?;
            let n = v["records"].as_array().map_or(0, Vec::len) as u64;
            records += n;
            let next = v["next_offset"].as_u64().unwrap_or(offset);
            if n == 0 || next >= v["high_watermark"].as_u64().unwrap_or(0) {
                break;
            }
            offset = next;
        }
    }
    Ok(Row {
        name: format!("fetch {value_bytes} B, 10000/req, parse incl."),
        records,
        bytes: records * value_bytes as u64,
        secs: started.elapsed().as_secs_f64(),
        latencies,
    })
}

/// A broker started inside the bench process.
struct InProcess {
    url: String,
    broker: weir_broker::Broker,
    dir: tempfile::TempDir,
    stop: tokio::sync::oneshot::Sender<()>,
    task: tokio::task::JoinHandle<anyhow::Result<()>>,
}

impl InProcess {
    async fn start(plugin_dir: &std::path::Path) -> anyhow::Result<InProcess> {
        Self::start_with(plugin_dir, weir_server::config::ConnectorsConfig::default()).await
    }

    /// [`InProcess::start`] with what connectors may be granted.
    async fn start_with(
        plugin_dir: &std::path::Path,
        connectors: weir_server::config::ConnectorsConfig,
    ) -> anyhow::Result<InProcess> {
        Self::start_configured(weir_server::Config {
            plugin_dir: plugin_dir.to_path_buf(),
            connectors,
            ..weir_server::Config::default()
        })
        .await
    }

    /// A broker with `config`, its data dir a temporary one.
    async fn start_configured(mut config: weir_server::Config) -> anyhow::Result<InProcess> {
        let dir = tempfile::tempdir()?;
        config.data_dir = dir.path().join("data");
        let opened = weir_server::open_broker(&config).await?;
        let broker = opened.broker.clone();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let url = format!("http://{}", listener.local_addr()?);
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let serving = opened;
        let task = tokio::spawn(async move {
            weir_server::run(listener, serving, &config, async {
                let _ = stopped.await;
            })
            .await
        });
        Ok(InProcess {
            url,
            broker,
            dir,
            stop,
            task,
        })
    }

    async fn stop(self) {
        let _ = self.stop.send(());
        let _ = self.task.await;
    }
}
