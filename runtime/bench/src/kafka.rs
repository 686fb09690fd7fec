//! Weir over its Kafka listener, driven by kcat (librdkafka's command line, from
//! Debian): the async producer workload Kafka clients run (librdkafka batching
//! records for up to `linger.ms`, acks=all), beside the same workload over HTTP in
//! the same run, and reading a topic from its start.
//!
//! The HTTP side of the async workload sends what librdkafka sends when it is
//! saturated: full batches (`batch.size` 1 MB, at most `batch.num.messages`
//! 10,000 records) with [`IN_FLIGHT`] requests outstanding (librdkafka's
//! `max.in.flight` for an idempotent producer).

use std::io::{BufRead, Read, Write};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::Context;

use crate::report::{Row, Workload};
use crate::system::{Durability, System, stamped};
use crate::weir::WeirHttp;
use crate::workload::{self, stream_name};

/// kcat's linger, as the workload asks.
pub const LINGER_MS: u64 = 5;
/// Requests outstanding on the HTTP side.
pub const IN_FLIGHT: usize = 5;

/// Records per HTTP request in the async workload: a full librdkafka batch.
pub fn http_batch(value_bytes: usize) -> usize {
    (1_000_000 / value_bytes.max(1)).clamp(1, 10_000)
}

/// kcat against one Weir's Kafka listener.
#[derive(Debug, Clone)]
pub struct KafkaCells {
    kcat: PathBuf,
    bootstrap: String,
}

impl KafkaCells {
    pub fn new(kcat: PathBuf, bootstrap: String) -> Self {
        Self { kcat, bootstrap }
    }

    /// kcat's version line, for the table's heading.
    pub fn version(&self) -> String {
        Command::new(&self.kcat)
            .arg("-V")
            .output()
            .ok()
            .and_then(|o| {
                // "Version 1.7.1 (JSON, ..., librdkafka 2.0.2 builtin.features=...)"
                let text = String::from_utf8_lossy(&o.stdout).into_owned();
                let line = text.lines().find(|l| l.starts_with("Version"))?;
                let kcat = line.split_whitespace().nth(1)?;
                let librdkafka = line
                    .split("librdkafka ")
                    .nth(1)?
                    .split_whitespace()
                    .next()?;
                Some(format!("kcat {kcat} (librdkafka {librdkafka})"))
            })
            .unwrap_or_else(|| "kcat".into())
    }

    /// kcat produces `value_bytes` records for `duration` (records are written to
    /// its stdin as fast as it takes them), then flushes: the rate counts every
    /// record until kcat has its last acknowledgement. `http` makes and checks the
    /// topic.
    pub async fn produce(
        &self,
        http: &WeirHttp,
        value_bytes: usize,
        duration: Duration,
    ) -> anyhow::Result<Row> {
        let stream = stream_name(&[&"kafka", &value_bytes]);
        http.delete(&stream).await?;
        http.create(&stream).await?;
        let (kcat, bootstrap) = (self.kcat.clone(), self.bootstrap.clone());
        let topic = stream.clone();
        let (records, secs) = tokio::task::spawn_blocking(move || {
            let mut child = Command::new(&kcat)
                .args(["-P", "-b", &bootstrap, "-t", &topic, "-p", "0", "-q"])
                .args(["-X", "acks=all", "-X", &format!("linger.ms={LINGER_MS}")])
                .stdin(Stdio::piped())
                .stdout(Stdio::null())
                .stderr(Stdio::piped())
                .spawn()
                .context("starting kcat")?;
            let mut line = stamped(value_bytes, 0).to_vec();
            line.push(b'\n');
            let chunk: Vec<u8> = line.repeat(1000);
            let started = Instant::now();
            let deadline = started + duration;
            let mut stdin = std::io::BufWriter::with_capacity(1 << 20, child.stdin.take().unwrap());
            let mut records = 0u64;
            while Instant::now() < deadline {
                stdin.write_all(&chunk)?;
                records += 1000;
            }
            drop(stdin);
            let status = child.wait()?;
            let secs = started.elapsed().as_secs_f64();
            let mut err = String::new();
            child.stderr.take().unwrap().read_to_string(&mut err)?;
            anyhow::ensure!(status.success(), "kcat -P failed: {err}");
            Ok::<_, anyhow::Error>((records, secs))
        })
        .await??;
        // Every record kcat was given is stored: none dropped on the way.
        let stored = http.high_watermark(&stream).await?;
        anyhow::ensure!(
            stored == records,
            "kcat was given {records} records and Weir stored {stored}"
        );
        http.delete(&stream).await?;
        Ok(Row {
            workload: Workload::Async { value_bytes },
            system: format!("Weir Kafka (kcat, acks=all, linger {LINGER_MS} ms)"),
            durability: Some(Durability::FsyncPerAck),
            reference: false,
            records,
            bytes: records * value_bytes as u64,
            secs,
            p50: None,
            p99: None,
        })
    }

    /// The same workload over HTTP: full batches, [`IN_FLIGHT`] at a time.
    pub async fn produce_http(
        http: &WeirHttp,
        value_bytes: usize,
        duration: Duration,
    ) -> anyhow::Result<Row> {
        let batch = http_batch(value_bytes);
        let row = workload::publish(http, value_bytes, batch, IN_FLIGHT, duration).await?;
        Ok(Row {
            workload: Workload::Async { value_bytes },
            ..row
        })
    }

    /// kcat reads `records` records of 100 B from the start of a topic filled over
    /// HTTP (untimed).
    pub async fn consume(&self, http: &WeirHttp, records: u64) -> anyhow::Result<Row> {
        let value_bytes = 100;
        let stream = stream_name(&[&"kafka_consume", &value_bytes]);
        workload::preload(http, &stream, value_bytes, records).await?;
        let (kcat, bootstrap) = (self.kcat.clone(), self.bootstrap.clone());
        let topic = stream.clone();
        let (received, bytes, secs) = tokio::task::spawn_blocking(move || {
            let started = Instant::now();
            let mut child = Command::new(&kcat)
                .args([
                    "-C",
                    "-b",
                    &bootstrap,
                    "-t",
                    &topic,
                    "-p",
                    "0",
                    "-o",
                    "beginning",
                ])
                .args(["-c", &records.to_string(), "-e", "-q", "-f", "%s\n"])
                .stdout(Stdio::piped())
                .stderr(Stdio::null())
                .spawn()
                .context("starting kcat")?;
            let reader = std::io::BufReader::with_capacity(1 << 20, child.stdout.take().unwrap());
            let (mut received, mut bytes) = (0u64, 0u64);
            for line in reader.split(b'\n') {
                bytes += line?.len() as u64;
                received += 1;
            }
            child.wait()?;
            Ok::<_, anyhow::Error>((received, bytes, started.elapsed().as_secs_f64()))
        })
        .await??;
        anyhow::ensure!(
            received == records,
            "kcat read {received} of {records} records"
        );
        http.delete(&stream).await?;
        Ok(Row {
            workload: Workload::Consume {
                value_bytes,
                records,
            },
            system: "Weir Kafka (kcat)".into(),
            durability: None,
            reference: false,
            records,
            bytes,
            secs,
            p50: None,
            p99: None,
        })
    }
}
