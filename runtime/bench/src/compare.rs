//! The comparison run: start the peers, measure every workload on every system one
//! system at a time (the others idle), stop the peers, render one table.

use std::time::Duration;

use weir_broker::Acks;

use crate::kafka::KafkaCells;
use crate::peers::nats::JetStream;
use crate::peers::redis::{AppendFsync, RedisStreams};
use crate::peers::{self, Server};
use crate::report::{self, Row};
use crate::system::System;
use crate::weir::{WeirHttp, WeirInProcess, WeirUnderTest};
use crate::workload;

/// A peer system to compare with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Peer {
    Nats,
    Redis,
}

impl std::str::FromStr for Peer {
    type Err = String;

    fn from_str(s: &str) -> Result<Peer, String> {
        match s {
            "nats" => Ok(Peer::Nats),
            "redis" => Ok(Peer::Redis),
            other => Err(format!("unknown peer {other:?} (nats, redis)")),
        }
    }
}

/// What to run.
#[derive(Debug, Clone)]
pub struct Options {
    /// Time per publish and latency cell.
    pub duration: Duration,
    /// Value sizes of the publish cells.
    pub value_bytes: Vec<usize>,
    /// One-by-one publisher counts.
    pub concurrency: Vec<usize>,
    /// Batch sizes (one publisher).
    pub batches: Vec<usize>,
    /// Records read in the consume cell (100-byte values).
    pub consume_records: u64,
    /// Offered rates of the latency cells.
    pub latency_rates: Vec<u64>,
    /// Peers to start.
    pub peers: Vec<Peer>,
    /// Pause after each cell, so what one cell leaves behind (a deleted stream's
    /// space being reclaimed) does not land in the next one's figures.
    pub settle: Duration,
}

impl Options {
    /// The workloads at full length.
    pub fn full() -> Options {
        Options {
            duration: Duration::from_secs(3),
            value_bytes: vec![100, 1024],
            concurrency: vec![1, 64],
            batches: vec![100, 1000],
            consume_records: 1_000_000,
            latency_rates: vec![1000, 10_000],
            peers: vec![Peer::Nats, Peer::Redis],
            settle: Duration::from_secs(1),
        }
    }

    /// Every workload, briefly: keeps the command working in a smoke test.
    pub fn quick() -> Options {
        Options {
            duration: Duration::from_millis(200),
            consume_records: 20_000,
            settle: Duration::ZERO,
            ..Options::full()
        }
    }
}

/// The outcome: the rows, and what was compared (for the table's heading).
#[derive(Debug)]
pub struct Report {
    pub rows: Vec<Row>,
    pub versions: Vec<String>,
}

impl Report {
    pub fn markdown(&self) -> String {
        let mut out = String::new();
        out.push_str(&format!("Systems: {}.\n\n", self.versions.join("; ")));
        out.push_str(&report::markdown(&self.rows));
        out.push_str(
            "\nratio to Weir: records/s over Weir HTTP's in the same workload and \
             durability class (consume: over Weir HTTP's); latency rows: p99 over \
             Weir HTTP's (above 1 is slower).\n",
        );
        out
    }
}

/// The workloads in the order they run, each on every system before the next:
/// latency on quiet systems first, bulk reads last, so the background work that
/// bulk writes and deletes leave behind (sled reclaiming segments, Redis freeing
/// memory) lands in no other system's latency cells.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Latency,
    Publish,
    Consume,
}

/// Runs every workload on Weir (HTTP and in-process) and on the peers asked for.
/// Progress goes to stderr as rows complete.
pub async fn run(options: &Options, weir: &WeirUnderTest) -> anyhow::Result<Report> {
    let mut servers: Vec<Server> = Vec::new();
    let mut versions = vec![format!("Weir {}", env!("CARGO_PKG_VERSION"))];
    let mut rows = Vec::new();
    let result = async {
        let http_all = WeirHttp::new(&weir.url, Acks::All)?;
        let http_none = WeirHttp::new(&weir.url, Acks::None)?;
        let http2_all = WeirHttp::new_http2(&weir.url, Acks::All)?;
        let inproc_all = WeirInProcess::new(weir.broker.clone(), Acks::All);
        let inproc_none = WeirInProcess::new(weir.broker.clone(), Acks::None);
        let mut redis = Vec::new();
        if options.peers.contains(&Peer::Redis) {
            let program = peers::ensure_installed("redis-server", "redis-server")?;
            versions.push(version(&program, "--version"));
            for fsync in [AppendFsync::Always, AppendFsync::EverySec] {
                let server = peers::redis::start(&program, fsync).await?;
                redis.push(RedisStreams::connect(server.port, fsync).await?);
                servers.push(server);
            }
        }
        let kafka = match &weir.kafka {
            Some(bootstrap) => {
                let cells =
                    KafkaCells::new(peers::ensure_installed("kcat", "kcat")?, bootstrap.clone());
                versions.push(cells.version());
                Some(cells)
            }
            None => None,
        };
        let mut nats = None;
        if options.peers.contains(&Peer::Nats) {
            let program = peers::ensure_installed("nats-server", "nats-server")?;
            versions.push(version(&program, "--version"));
            let server = peers::nats::start(&program).await?;
            nats = Some(JetStream::connect(server.port).await?);
            servers.push(server);
        }
        for phase in [Phase::Latency, Phase::Publish, Phase::Consume] {
            // Reads do not depend on the fsync setting: one consume row per system.
            measure(&http_all, options, phase, true, &mut rows).await?;
            if phase == Phase::Publish {
                measure(&http2_all, options, phase, false, &mut rows).await?;
            }
            measure(&inproc_all, options, phase, true, &mut rows).await?;
            measure(&http_none, options, phase, false, &mut rows).await?;
            measure(&inproc_none, options, phase, false, &mut rows).await?;
            for (i, r) in redis.iter().enumerate() {
                measure(r, options, phase, i == 0, &mut rows).await?;
            }
            if let Some(js) = &nats {
                measure(js, options, phase, true, &mut rows).await?;
            }
            if let Some(k) = &kafka {
                measure_kafka(k, &http_all, options, phase, &mut rows).await?;
            }
        }
        Ok::<_, anyhow::Error>(())
    }
    .await;
    for server in servers {
        server.stop().await;
    }
    result?;
    Ok(Report { rows, versions })
}

/// One phase's workloads on one system (`consume`: whether this system reads).
async fn measure<S: System>(
    sys: &S,
    options: &Options,
    phase: Phase,
    consume: bool,
    rows: &mut Vec<Row>,
) -> anyhow::Result<()> {
    let d = options.duration;
    match phase {
        Phase::Latency => {
            for &rate in &options.latency_rates {
                let row = bounded(d, workload::latency(sys, rate, 100, d)).await?;
                record(rows, row, options).await;
            }
        }
        Phase::Publish => {
            for &value_bytes in &options.value_bytes {
                for &concurrency in &options.concurrency {
                    let cell = workload::publish(sys, value_bytes, 1, concurrency, d);
                    let row = bounded(d, cell).await?;
                    record(rows, row, options).await;
                }
                for &batch in &options.batches {
                    let row = bounded(d, workload::publish(sys, value_bytes, batch, 1, d)).await?;
                    record(rows, row, options).await;
                }
            }
        }
        Phase::Consume if consume => {
            let cell = workload::consume(sys, 100, options.consume_records);
            let row = bounded(d, cell).await?;
            record(rows, row, options).await;
        }
        Phase::Consume => {}
    }
    Ok(())
}

/// The Kafka cells of one phase: the async producer workload over Kafka and over
/// HTTP, and kcat's read.
async fn measure_kafka(
    kafka: &KafkaCells,
    http: &WeirHttp,
    options: &Options,
    phase: Phase,
    rows: &mut Vec<Row>,
) -> anyhow::Result<()> {
    let d = options.duration;
    match phase {
        Phase::Latency => {}
        Phase::Publish => {
            for &value_bytes in &options.value_bytes {
                let row = bounded(d, KafkaCells::produce_http(http, value_bytes, d)).await?;
                record(rows, row, options).await;
                let row = bounded(d, kafka.produce(http, value_bytes, d)).await?;
                record(rows, row, options).await;
            }
        }
        Phase::Consume => {
            let row = bounded(d, kafka.consume(http, options.consume_records)).await?;
            record(rows, row, options).await;
        }
    }
    Ok(())
}

/// Keeps a finished row, says so on stderr, and lets the system settle.
/// A cell that has not finished two minutes after its run time is stuck (a lost
/// ack, a read that never ends): an error, not a hang.
async fn bounded(
    duration: Duration,
    cell: impl std::future::Future<Output = anyhow::Result<Row>>,
) -> anyhow::Result<Row> {
    let limit = duration + Duration::from_secs(120);
    tokio::time::timeout(limit, cell)
        .await
        .map_err(|_| anyhow::anyhow!("a cell did not finish within {limit:?}"))?
}

async fn record(rows: &mut Vec<Row>, row: Row, options: &Options) {
    eprintln!(
        "  {:<38} {:<46} {:>12} rec/s",
        row.system,
        row.workload.to_string(),
        report::thousands(row.records_per_sec())
    );
    // A cell that wrote much leaves much to reclaim once its stream is deleted (sled
    // frees segments, Redis memory): the pause grows with what it wrote, at 200 MB/s,
    // so the next cell (often a one-by-one one, the most sensitive) does not pay it.
    let reclaim = if options.settle.is_zero() {
        Duration::ZERO
    } else {
        Duration::from_secs_f64(row.bytes as f64 / 200e6)
    };
    rows.push(row);
    tokio::time::sleep(options.settle + reclaim).await;
}

/// The first line `program flag` prints, for the table's heading.
fn version(program: &std::path::Path, flag: &str) -> String {
    std::process::Command::new(program)
        .arg(flag)
        .output()
        .ok()
        .and_then(|o| {
            String::from_utf8_lossy(&o.stdout)
                .lines()
                .next()
                .map(str::to_string)
        })
        .unwrap_or_else(|| program.display().to_string())
}
