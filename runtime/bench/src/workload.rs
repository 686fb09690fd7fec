//! The workloads, written once against [`System`]: closed-loop publishing, reading a
//! stream from its start, and open-loop publish-to-receive latency.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use crate::report::{Row, Workload};
use crate::system::{System, micros_now, stamped};

/// Records per publish when filling a stream for the consume workload.
const PRELOAD_BATCH: usize = 1000;
/// Concurrent publishers filling it.
const PRELOAD_CONCURRENCY: usize = 4;

pub(crate) fn row<S: System>(sys: &S, workload: Workload) -> Row {
    Row {
        workload,
        system: sys.label(),
        durability: Some(sys.durability()),
        reference: sys.is_reference(),
        records: 0,
        bytes: 0,
        secs: 0.0,
        p50: None,
        p99: None,
    }
}

/// A stream name every system accepts (NATS stream names allow no dots).
pub(crate) fn stream_name(parts: &[&dyn std::fmt::Display]) -> String {
    let mut name = String::from("bench");
    for p in parts {
        name.push('_');
        name.push_str(&p.to_string());
    }
    name
}

/// `concurrency` publishers, each publishing `batch` records of `value_bytes` and
/// waiting for the acknowledgement before the next, for `duration`. Latency is per
/// publish (request to ack).
pub async fn publish<S: System>(
    sys: &S,
    value_bytes: usize,
    batch: usize,
    concurrency: usize,
    duration: Duration,
) -> anyhow::Result<Row> {
    let stream = stream_name(&[&"pub", &value_bytes, &batch, &concurrency]);
    sys.delete(&stream).await?;
    sys.create(&stream).await?;
    let value = stamped(value_bytes, 0);
    let records = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let deadline = started + duration;
    // A JoinSet: on the first error the other publishers are aborted, not left running.
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..concurrency {
        let (sys, stream, value, records) =
            (sys.clone(), stream.clone(), value.clone(), records.clone());
        tasks.spawn(async move {
            let mut latencies = Vec::new();
            while Instant::now() < deadline {
                let t = Instant::now();
                sys.publish(&stream, &value, batch).await?;
                latencies.push(t.elapsed());
                records.fetch_add(batch as u64, Ordering::Relaxed);
            }
            Ok::<_, anyhow::Error>(latencies)
        });
    }
    let mut latencies = Vec::new();
    while let Some(done) = tasks.join_next().await {
        latencies.extend(done??);
    }
    let secs = started.elapsed().as_secs_f64();
    sys.delete(&stream).await?;
    let records = records.load(Ordering::Relaxed);
    let workload = Workload::Publish {
        value_bytes,
        batch,
        concurrency,
    };
    Ok(Row {
        records,
        bytes: records * value_bytes as u64,
        secs,
        ..row(sys, workload)
    }
    .with_percentiles(latencies))
}

/// Makes `stream` afresh and fills it with `records` records of `value_bytes`, in
/// batches from a few publishers (untimed: what a consume cell then reads).
pub async fn preload<S: System>(
    sys: &S,
    stream: &str,
    value_bytes: usize,
    records: u64,
) -> anyhow::Result<()> {
    sys.delete(stream).await?;
    sys.create(stream).await?;
    let value = stamped(value_bytes, 0);
    let batches = records.div_ceil(PRELOAD_BATCH as u64);
    let next = Arc::new(AtomicU64::new(0));
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..PRELOAD_CONCURRENCY {
        let (sys, stream, value, next) =
            (sys.clone(), stream.to_string(), value.clone(), next.clone());
        tasks.spawn(async move {
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= batches {
                    return Ok::<_, anyhow::Error>(());
                }
                let n = (records - i * PRELOAD_BATCH as u64).min(PRELOAD_BATCH as u64);
                sys.publish(&stream, &value, n as usize).await?;
            }
        });
    }
    while let Some(done) = tasks.join_next().await {
        done??;
    }
    Ok(())
}

/// Fills a stream with `records` records of `value_bytes` (untimed), then times
/// reading all of them from the start.
pub async fn consume<S: System>(sys: &S, value_bytes: usize, records: u64) -> anyhow::Result<Row> {
    let stream = stream_name(&[&"consume", &value_bytes]);
    preload(sys, &stream, value_bytes, records).await?;
    let started = Instant::now();
    let bytes = sys.consume(&stream, records).await?;
    let secs = started.elapsed().as_secs_f64();
    sys.delete(&stream).await?;
    Ok(Row {
        durability: None,
        records,
        bytes,
        secs,
        ..row(
            sys,
            Workload::Consume {
                value_bytes,
                records,
            },
        )
    })
}

/// Publishes at `rate` records/s for `duration`, open loop (each tick's publish is
/// its own task, so a slow ack never lowers the offered rate), to a fresh stream that
/// one subscriber follows; every record carries its send time. Rates from 1,000/s
/// publish `rate / 1000` records every millisecond, lower rates one record per tick.
pub async fn latency<S: System>(
    sys: &S,
    rate: u64,
    value_bytes: usize,
    duration: Duration,
) -> anyhow::Result<Row> {
    let stream = stream_name(&[&"latency", &rate]);
    sys.delete(&stream).await?;
    sys.create(&stream).await?;
    let mut follower = sys.follow(&stream).await?;
    let (tick, per_tick) = if rate >= 1000 {
        (Duration::from_millis(1), (rate / 1000) as usize)
    } else {
        (Duration::from_micros(1_000_000 / rate.max(1)), 1)
    };
    let started = Instant::now();
    let deadline = started + duration;
    let mut ticker = tokio::time::interval(tick);
    let mut inflight = tokio::task::JoinSet::new();
    let (mut sent, mut late) = (0u64, Duration::ZERO);
    while Instant::now() < deadline {
        // Stamped when the tick fires, not when it was due: tokio's timer has a 1 ms
        // grain, and its wake-up lag is no system's latency. A generator falling
        // behind (which stamping at send time would hide) is reported instead.
        let due = ticker.tick().await.into_std();
        late = late.max(due.elapsed());
        let stamp = micros_now();
        let (sys, stream) = (sys.clone(), stream.clone());
        inflight.spawn(async move {
            let value = stamped(value_bytes, stamp);
            sys.publish(&stream, &value, per_tick).await
        });
        sent += per_tick as u64;
    }
    if late > Duration::from_millis(10) {
        eprintln!(
            "  warning: {}: the load generator fell {late:?} behind its schedule at {rate}/s",
            sys.label()
        );
    }
    while let Some(done) = inflight.join_next().await {
        done??;
    }
    let mut latencies = Vec::with_capacity(sent as usize);
    let quiet = Duration::from_secs(5);
    while (latencies.len() as u64) < sent {
        match tokio::time::timeout(quiet, follower.latencies.recv()).await {
            Ok(Some(micros)) => latencies.push(Duration::from_micros(micros)),
            _ => anyhow::bail!(
                "{}: published {sent} records but received {} (none for {quiet:?})",
                sys.label(),
                latencies.len()
            ),
        }
    }
    // Records/s over the offered window (draining the last acks is not part of it).
    let secs = duration.as_secs_f64();
    drop(follower);
    sys.delete(&stream).await?;
    Ok(Row {
        records: sent,
        bytes: sent * value_bytes as u64,
        secs,
        ..row(sys, Workload::Latency { rate })
    }
    .with_percentiles(latencies))
}
