//! Weir, two ways: through its HTTP API (what applications use) and through its broker
//! in-process (the storage path without HTTP), so the cost of HTTP is visible.

use std::borrow::Cow;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use bytes::Bytes;
use futures_util::StreamExt;
use serde::Deserialize;
use weir_broker::{Acks, Broker, NewRecord, ReadLimits, TopicConfig};

use crate::system::{Durability, Follower, System, latency_of};

/// The Weir broker being measured: its HTTP address and its in-process handle.
#[derive(Debug, Clone)]
pub struct WeirUnderTest {
    /// Base URL, e.g. `http://127.0.0.1:43123`.
    pub url: String,
    /// Its Kafka listener (`host:port`), when it has one.
    pub kafka: Option<String>,
    pub broker: Broker,
}

/// Records per fetch when reading a topic from its start (Weir's default ceiling).
const FETCH_RECORDS: usize = 10_000;
/// In-process reads: as many records as an HTTP fetch asks for.
const READ_LIMITS: ReadLimits = ReadLimits {
    max_records: FETCH_RECORDS,
    max_bytes: 64 << 20,
};

fn durability(acks: Acks) -> Durability {
    match acks {
        Acks::All => Durability::FsyncPerAck,
        Acks::None => Durability::Periodic,
    }
}

fn acks_name(acks: Acks) -> &'static str {
    match acks {
        Acks::All => "all",
        Acks::None => "none",
    }
}

/// Weir through its HTTP API with reqwest: JSON publish bodies, JSON fetches, SSE.
#[derive(Debug, Clone)]
pub struct WeirHttp {
    url: Arc<str>,
    http: reqwest::Client,
    acks: Acks,
    /// HTTP/2 with prior knowledge: every request a stream of one connection.
    http2: bool,
}

impl WeirHttp {
    pub fn new(url: &str, acks: Acks) -> anyhow::Result<WeirHttp> {
        Self::build(url, acks, false)
    }

    /// The high watermark of partition 0 of `stream`.
    pub async fn high_watermark(&self, stream: &str) -> anyhow::Result<u64> {
        let body = self
            .http
            .get(format!("{}/v1/topics/{stream}", self.url))
            .send()
            .await?
            .error_for_status()?
            .bytes()
            .await?;
        let topic: serde_json::Value = serde_json::from_slice(&body)?;
        topic["partitions"][0]["high_watermark"]
            .as_u64()
            .ok_or_else(|| anyhow::anyhow!("topic {stream} has no high watermark: {topic}"))
    }

    /// Over HTTP/2 (h2c, prior knowledge): concurrent publishes share one connection.
    pub fn new_http2(url: &str, acks: Acks) -> anyhow::Result<WeirHttp> {
        Self::build(url, acks, true)
    }

    fn build(url: &str, acks: Acks, http2: bool) -> anyhow::Result<WeirHttp> {
        let mut builder = reqwest::Client::builder()
            .pool_max_idle_per_host(256)
            // Below Weir's header_read_timeout_ms, which closes idle connections.
            .pool_idle_timeout(std::time::Duration::from_secs(5))
            .tcp_nodelay(true);
        if http2 {
            builder = builder.http2_prior_knowledge();
        }
        Ok(WeirHttp {
            url: url.trim_end_matches('/').into(),
            http: builder.build()?,
            acks,
            http2,
        })
    }

    fn records_url(&self, stream: &str) -> String {
        format!(
            "{}/v1/topics/{stream}/records?acks={}",
            self.url,
            acks_name(self.acks)
        )
    }
}

/// `{"records":[{"value":"<value>"},...]}` with `count` copies; the value is ASCII
/// without quotes or backslashes (see [`crate::system::stamped`]), so it is written
/// as a JSON string as is.
fn publish_body(value: &[u8], count: usize) -> Vec<u8> {
    debug_assert!(value.iter().all(|b| b.is_ascii_alphanumeric()));
    let mut out = Vec::with_capacity(count * (value.len() + 14) + 14);
    out.extend_from_slice(b"{\"records\":[");
    for i in 0..count {
        if i > 0 {
            out.push(b',');
        }
        out.extend_from_slice(b"{\"value\":\"");
        out.extend_from_slice(value);
        out.extend_from_slice(b"\"}");
    }
    out.extend_from_slice(b"]}");
    out
}

/// The parts of a fetch answer the reader uses, borrowed from the body.
#[derive(Deserialize)]
struct Fetched<'a> {
    #[serde(borrow)]
    records: Vec<FetchedRecord<'a>>,
    next_offset: u64,
}

#[derive(Deserialize)]
struct FetchedRecord<'a> {
    #[serde(borrow)]
    value: Cow<'a, str>,
}

impl System for WeirHttp {
    fn label(&self) -> String {
        let http = if self.http2 { "HTTP/2" } else { "HTTP" };
        format!("Weir {http} (acks={})", acks_name(self.acks))
    }

    fn durability(&self) -> Durability {
        durability(self.acks)
    }

    fn is_reference(&self) -> bool {
        !self.http2
    }

    async fn create(&self, stream: &str) -> anyhow::Result<()> {
        let resp = self
            .http
            .put(format!("{}/v1/topics/{stream}", self.url))
            .header("content-type", "application/json")
            .body(r#"{"partitions":1}"#)
            .send()
            .await?;
        anyhow::ensure!(
            resp.status().is_success(),
            "creating topic {stream}: {}",
            resp.status()
        );
        Ok(())
    }

    async fn delete(&self, stream: &str) -> anyhow::Result<()> {
        let resp = self
            .http
            .delete(format!("{}/v1/topics/{stream}", self.url))
            .send()
            .await?;
        anyhow::ensure!(
            resp.status().is_success() || resp.status() == 404,
            "deleting topic {stream}: {}",
            resp.status()
        );
        Ok(())
    }

    async fn publish(&self, stream: &str, value: &Bytes, count: usize) -> anyhow::Result<()> {
        let resp = self
            .http
            .post(self.records_url(stream))
            .header("content-type", "application/json")
            .body(publish_body(value, count))
            .send()
            .await?;
        let status = resp.status();
        let body = resp.bytes().await?;
        anyhow::ensure!(
            status.is_success(),
            "publish: {status}: {}",
            String::from_utf8_lossy(&body)
        );
        Ok(())
    }

    async fn consume(&self, stream: &str, count: u64) -> anyhow::Result<u64> {
        let (mut offset, mut received, mut bytes) = (0u64, 0u64, 0u64);
        while received < count {
            let body = self
                .http
                .get(format!(
                    "{}/v1/topics/{stream}/partitions/0/records?offset={offset}&max_records={FETCH_RECORDS}&max_bytes=67108864&timeout_ms=1000",
                    self.url
                ))
                .send()
                .await?
                .error_for_status()?
                .bytes()
                .await?;
            let fetched: Fetched<'_> =
                serde_json::from_slice(&body).context("parsing a fetch answer")?;
            anyhow::ensure!(
                !fetched.records.is_empty(),
                "{stream} ended at {received} of {count} records"
            );
            received += fetched.records.len() as u64;
            bytes += fetched
                .records
                .iter()
                .map(|r| r.value.len() as u64)
                .sum::<u64>();
            offset = fetched.next_offset;
        }
        Ok(bytes)
    }

    async fn follow(&self, stream: &str) -> anyhow::Result<Follower> {
        let resp = self
            .http
            .get(format!(
                "{}/v1/topics/{stream}/events?from=earliest",
                self.url
            ))
            .send()
            .await?
            .error_for_status()?;
        Ok(Follower::spawn(move |tx| async move {
            let mut chunks = resp.bytes_stream();
            let mut buf = Vec::new();
            while let Some(Ok(chunk)) = chunks.next().await {
                buf.extend_from_slice(&chunk);
                while let Some(end) = buf.iter().position(|&b| b == b'\n') {
                    let line = &buf[..end];
                    if let Some(data) = line.strip_prefix(b"data:")
                        && let Ok(r) =
                            serde_json::from_slice::<FetchedRecord<'_>>(data.trim_ascii())
                        && let Some(lat) = latency_of(r.value.as_bytes())
                        && tx.send(lat).is_err()
                    {
                        return;
                    }
                    buf.drain(..=end);
                }
            }
        }))
    }
}

/// Weir's broker called in-process: the same produce and fetch paths the HTTP
/// handlers call, without HTTP, JSON or a socket.
#[derive(Debug, Clone)]
pub struct WeirInProcess {
    broker: Broker,
    acks: Acks,
}

impl WeirInProcess {
    pub fn new(broker: Broker, acks: Acks) -> WeirInProcess {
        WeirInProcess { broker, acks }
    }
}

impl System for WeirInProcess {
    fn label(&self) -> String {
        format!("Weir in-process (acks={})", acks_name(self.acks))
    }

    fn durability(&self) -> Durability {
        durability(self.acks)
    }

    async fn create(&self, stream: &str) -> anyhow::Result<()> {
        self.broker
            .create_topic(stream, TopicConfig::with_partitions(1))
            .await?;
        Ok(())
    }

    async fn delete(&self, stream: &str) -> anyhow::Result<()> {
        if self.broker.topic(stream).is_ok() {
            self.broker.delete_topic(stream).await?;
        }
        Ok(())
    }

    async fn publish(&self, stream: &str, value: &Bytes, count: usize) -> anyhow::Result<()> {
        let topic = self.broker.topic(stream)?;
        let records: Vec<NewRecord<'_>> = (0..count)
            .map(|_| NewRecord {
                value: Some(Cow::Borrowed(&value[..])),
                ..NewRecord::default()
            })
            .collect();
        self.broker.produce(&topic, &records, self.acks).await?;
        Ok(())
    }

    async fn consume(&self, stream: &str, count: u64) -> anyhow::Result<u64> {
        let topic = self.broker.topic(stream)?;
        let limits = READ_LIMITS;
        let (mut offset, mut received, mut bytes) = (0u64, 0u64, 0u64);
        while received < count {
            let r = self
                .broker
                .fetch(&topic, 0, offset, limits, Duration::from_secs(1))
                .await?;
            anyhow::ensure!(r.count > 0, "{stream} ended at {received} of {count}");
            received += r.count as u64;
            bytes += r
                .records()
                .map(|v| v.value.map_or(0, <[u8]>::len) as u64)
                .sum::<u64>();
            offset = r.next_offset;
        }
        Ok(bytes)
    }

    async fn follow(&self, stream: &str) -> anyhow::Result<Follower> {
        let (broker, topic) = (self.broker.clone(), self.broker.topic(stream)?);
        Ok(Follower::spawn(move |tx| async move {
            let (mut offset, limits) = (0, READ_LIMITS);
            while let Ok(r) = broker
                .fetch(&topic, 0, offset, limits, Duration::from_secs(1))
                .await
            {
                for rec in r.records() {
                    if let Some(lat) = rec.value.and_then(latency_of)
                        && tx.send(lat).is_err()
                    {
                        return;
                    }
                }
                offset = r.next_offset;
            }
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn publish_bodies_are_json_with_every_copy() {
        let body = publish_body(b"0042xx", 3);
        let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
        let records = v["records"].as_array().unwrap();
        assert_eq!(records.len(), 3);
        assert!(records.iter().all(|r| r["value"] == "0042xx"));
    }
}
