//! Publish-to-receive latency over Server-Sent Events.

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::json;
use weir_bench::system::micros_now;

use super::{Client, Row, cluster};

/// Publish-to-receive latency: one SSE subscriber at the end of a 1-partition topic,
/// a producer publishing at `rate` records/s (acks=all), each record carrying its send
/// time; latency is receive time minus send time, both from this process's clock.
pub(super) async fn sse_latency(client: &Client, rate: u64, seconds: f64) -> anyhow::Result<Row> {
    sse_latency_across(client, client, rate, seconds).await
}

/// [`sse_latency`] with the subscriber on `subscriber` and the producer on `client`
/// (two cluster nodes).
pub(super) async fn sse_latency_across(
    subscriber: &Client,
    client: &Client,
    rate: u64,
    seconds: f64,
) -> anyhow::Result<Row> {
    let topic = format!("bench-latency-{rate}");
    client
        .put(&format!("/v1/topics/{topic}"), &json!({ "partitions": 1 }))
        .await?;
    cluster::wait_for_topic(subscriber, &topic).await?;
    let mut resp = subscriber
        .http()
        .get(client.url(&format!("/v1/topics/{topic}/events?from=latest")))
        .send()
        .await?;
    anyhow::ensure!(
        resp.status().is_success(),
        "subscribing failed: {}",
        resp.status()
    );
    // Ticks of 1 ms carry rate/1000 records each; slower rates tick less often.
    let (tick, per_tick) = if rate >= 1000 {
        (Duration::from_millis(1), (rate / 1000) as usize)
    } else {
        (Duration::from_micros(1_000_000 / rate.max(1)), 1)
    };
    let url = client.url(&format!("/v1/topics/{topic}/records"));
    let http = client.http().clone();
    let deadline = Instant::now() + Duration::from_secs_f64(seconds);
    // Open loop: every tick's publish is its own task, so a slow answer never lowers
    // the offered rate, up to 128 in flight (one client address may hold 256
    // connections; a stalled server slows the producer rather than refusing it).
    let producer = tokio::spawn(async move {
        let mut ticker = tokio::time::interval(tick);
        let mut inflight = Vec::new();
        let slots = Arc::new(tokio::sync::Semaphore::new(128));
        while Instant::now() < deadline {
            ticker.tick().await;
            let (http, url) = (http.clone(), url.clone());
            let slot = slots.clone().acquire_owned().await?;
            inflight.push(tokio::spawn(async move {
                let _slot = slot;
                let now = micros_now();
                let records: Vec<_> = (0..per_tick).map(|_| json!({ "value": now })).collect();
                let resp = http
                    .post(&url)
                    .header("content-type", "application/json")
                    .body(json!({ "records": records }).to_string())
                    .send()
                    .await?;
                let status = resp.status();
                if !status.is_success() {
                    let why = resp.text().await.unwrap_or_default();
                    anyhow::bail!("publish failed: {status} {why}");
                }
                Ok::<_, anyhow::Error>(per_tick as u64)
            }));
        }
        let mut sent = 0;
        for t in inflight {
            sent += t.await??;
        }
        Ok::<_, anyhow::Error>(sent)
    });
    let mut latencies = Vec::new();
    let mut buf = String::new();
    let started = Instant::now();
    let stop = deadline + Duration::from_secs(5);
    loop {
        // Once the producer is done, stop after a short quiet spell.
        let until = if producer.is_finished() {
            Instant::now() + Duration::from_millis(300)
        } else {
            stop
        };
        let chunk = match tokio::time::timeout_at(until.into(), resp.chunk()).await {
            Ok(Ok(Some(c))) => c,
            _ => break,
        };
        let received = micros_now();
        buf.push_str(&String::from_utf8_lossy(&chunk));
        while let Some(end) = buf.find('\n') {
            let line: String = buf.drain(..=end).collect();
            if let Some(data) = line.strip_prefix("data:") {
                let v: serde_json::Value = serde_json::from_str(data.trim())?;
                if let Some(sent) = v["value"].as_u64() {
                    latencies.push(Duration::from_micros(received.saturating_sub(sent)));
                }
            }
        }
    }
    let sent = producer.await??;
    anyhow::ensure!(
        latencies.len() as u64 == sent,
        "published {sent} records but received {}",
        latencies.len()
    );
    Ok(Row {
        name: format!("publish->SSE receive at {rate}/s"),
        records: sent,
        bytes: 0,
        secs: started.elapsed().as_secs_f64(),
        latencies,
    })
}
