//! `weir produce <topic>`: publish stdin, one value per line, in batches.
//!
//! A line that is valid JSON is sent as that JSON value; any other line is sent as a
//! JSON string. Lines are batched up to `--batch` or until stdin pauses for `--linger-ms`.

use std::io::{BufRead, IsTerminal, Write};
use std::time::{Duration, Instant};

use anyhow::Context;
use bytes::Bytes;
use serde_json::value::RawValue;

use super::Remote;

#[derive(Debug, clap::Args)]
pub struct ProduceArgs {
    /// Topic to publish to.
    topic: String,
    /// Key for every record (decides the partition).
    #[arg(long)]
    key: Option<String>,
    /// Explicit partition for every record.
    #[arg(long)]
    partition: Option<u32>,
    /// Most records per request.
    #[arg(long, default_value_t = 1000)]
    batch: usize,
    /// How long to wait for more lines before sending a partial batch.
    #[arg(long, default_value_t = 5)]
    linger_ms: u64,
    /// `all` (durable before the ack) or `none`.
    #[arg(long, default_value = "all")]
    acks: String,
    #[command(flatten)]
    remote: Remote,
}

pub async fn run(args: ProduceArgs) -> anyhow::Result<()> {
    let client = args.remote.client()?;
    let (tx, mut rx) = tokio::sync::mpsc::channel::<String>(args.batch.max(1) * 4);
    // stdin is blocking: read it on its own thread.
    std::thread::spawn(move || {
        for line in std::io::stdin().lock().lines() {
            match line {
                Ok(l) => {
                    if tx.blocking_send(l).is_err() {
                        break;
                    }
                }
                Err(e) => {
                    eprintln!("error reading stdin: {e}");
                    break;
                }
            }
        }
    });
    let path = format!("/v1/topics/{}/records?acks={}", args.topic, args.acks);
    let progress = std::io::stderr().is_terminal();
    let started = Instant::now();
    let mut last_progress = Instant::now();
    let mut latencies = Vec::new();
    let mut sent = 0u64;
    let linger = Duration::from_millis(args.linger_ms);
    while let Some(first) = rx.recv().await {
        let mut lines = vec![first];
        while lines.len() < args.batch.max(1) {
            match tokio::time::timeout(linger, rx.recv()).await {
                Ok(Some(l)) => lines.push(l),
                _ => break,
            }
        }
        let body = encode_batch(&lines, args.key.as_deref(), args.partition)?;
        let t = Instant::now();
        client
            .post(&path, "application/json", body)
            .await
            .with_context(|| format!("publishing to '{}'", args.topic))?;
        latencies.push(t.elapsed());
        sent += lines.len() as u64;
        if progress && last_progress.elapsed() > Duration::from_millis(250) {
            last_progress = Instant::now();
            eprint!(
                "\r{sent} records, {:.0} records/s   ",
                sent as f64 / started.elapsed().as_secs_f64()
            );
            let _ = std::io::stderr().flush();
        }
    }
    if progress {
        eprintln!();
    }
    let secs = started.elapsed().as_secs_f64();
    latencies.sort();
    eprintln!(
        "produced {sent} records to '{}' in {secs:.2} s ({:.0} records/s); ack latency p50 {:.2} ms, p99 {:.2} ms",
        args.topic,
        sent as f64 / secs.max(1e-9),
        percentile_ms(&latencies, 0.50),
        percentile_ms(&latencies, 0.99),
    );
    Ok(())
}

fn encode_batch(
    lines: &[String],
    key: Option<&str>,
    partition: Option<u32>,
) -> anyhow::Result<Bytes> {
    let mut out = Vec::with_capacity(lines.iter().map(|l| l.len() + 32).sum::<usize>() + 16);
    out.extend_from_slice(b"{\"records\":[");
    for (i, line) in lines.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        out.extend_from_slice(b"{\"value\":");
        match serde_json::from_str::<&RawValue>(line) {
            Ok(raw) => out.extend_from_slice(raw.get().as_bytes()),
            Err(_) => serde_json::to_writer(&mut out, line)?,
        }
        if let Some(k) = key {
            out.extend_from_slice(b",\"key\":");
            serde_json::to_writer(&mut out, k)?;
        }
        if let Some(p) = partition {
            write!(out, ",\"partition\":{p}")?;
        }
        out.push(b'}');
    }
    out.extend_from_slice(b"]}");
    Ok(Bytes::from(out))
}

/// The `q` quantile of sorted durations, in milliseconds.
pub fn percentile_ms(sorted: &[Duration], q: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((sorted.len() as f64 - 1.0) * q).round() as usize;
    sorted[i.min(sorted.len() - 1)].as_secs_f64() * 1000.0
}
