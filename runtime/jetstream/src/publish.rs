//! Publishing a group of messages to the stream all together or not at all, exactly
//! once even when the publish is retried.
//!
//! Several messages go as a JetStream atomic batch (ADR-50: `Nats-Batch-Id`,
//! `Nats-Batch-Sequence`, `Nats-Batch-Commit`; the server stores all of them, with
//! consecutive sequences, or none). Every message carries a `Nats-Msg-Id` derived
//! from one append id, so a retry after a lost answer (a leader change, a dropped
//! connection) cannot store the group twice: the server refuses the duplicate batch,
//! and a plain publish of the first message's id to the probe subject returns where
//! the first attempt landed without storing anything.

use std::time::{Duration, Instant};

use async_nats::{Client, HeaderMap};
use bytes::Bytes;
use serde::Deserialize;
use weir_storage::StorageError;

/// JetStream error codes the publish path tells apart.
const WRONG_LAST_SEQUENCE: u64 = 10071;
const DUPLICATE_IN_BATCH: u64 = 10201;

/// Most messages in one atomic batch (a server limit).
pub(crate) const MAX_MESSAGES: usize = 1000;

/// One message to publish.
#[derive(Debug, Clone)]
pub(crate) struct OutMsg {
    pub(crate) subject: String,
    pub(crate) payload: Bytes,
    pub(crate) headers: Vec<(&'static str, String)>,
}

impl OutMsg {
    pub(crate) fn new(subject: String, payload: impl Into<Bytes>) -> Self {
        OutMsg {
            subject,
            payload: payload.into(),
            headers: Vec::new(),
        }
    }

    pub(crate) fn header(mut self, name: &'static str, value: impl ToString) -> Self {
        self.headers.push((name, value.to_string()));
        self
    }

    /// Stored only if `seq` is the sequence of the subject's last message (0: none).
    pub(crate) fn expect_last(self, seq: u64) -> Self {
        self.header("Nats-Expected-Last-Subject-Sequence", seq)
    }

    /// Replaces every earlier message of the subject (a key-value write).
    pub(crate) fn rollup(self) -> Self {
        self.header("Nats-Rollup", "sub")
    }
}

/// Why a publish did not land.
#[derive(Debug)]
pub(crate) enum PublishError {
    /// A compare-and-set expectation failed; nothing was stored.
    Conflict(String),
    /// Anything else, as the storage error to report.
    Storage(StorageError),
}

impl From<PublishError> for StorageError {
    fn from(e: PublishError) -> Self {
        match e {
            PublishError::Conflict(m) => {
                StorageError::Unavailable(format!("a concurrent change won, retry: {m}"))
            }
            PublishError::Storage(s) => s,
        }
    }
}

#[derive(Debug, Deserialize)]
struct Ack {
    #[serde(default)]
    seq: u64,
    #[serde(default)]
    count: Option<u64>,
    #[serde(default)]
    duplicate: bool,
    #[serde(default)]
    error: Option<ApiError>,
}

#[derive(Debug, Deserialize)]
struct ApiError {
    #[serde(default)]
    err_code: u64,
    #[serde(default)]
    description: String,
}

/// What one attempt came to.
enum Attempt {
    Stored(u64),
    AlreadyStored,
    Retry(String),
}

/// Publishes `messages` atomically; returns each message's stream sequence. Retries
/// transient failures until `deadline` (same message ids, so at most once).
pub(crate) async fn publish_atomic(
    client: &Client,
    probe: &str,
    messages: &[OutMsg],
    timeout: Duration,
    deadline: Duration,
) -> Result<Vec<u64>, PublishError> {
    let n = messages.len();
    if n == 0 {
        return Ok(Vec::new());
    }
    if n > MAX_MESSAGES {
        return Err(PublishError::Storage(StorageError::InvalidRecord(format!(
            "an append of {n} messages is more than one atomic batch holds ({MAX_MESSAGES}); \
             send fewer or smaller records per request"
        ))));
    }
    let append_id = nuid::next().to_string();
    let started = Instant::now();
    let mut backoff = Duration::from_millis(50);
    loop {
        let last_seq = match attempt(client, &append_id, messages, timeout).await? {
            Attempt::Stored(last) => last,
            Attempt::AlreadyStored => first_of_duplicate(client, probe, &append_id, timeout)
                .await?
                .map(|first| first + n as u64 - 1)
                .ok_or_else(|| {
                    PublishError::Storage(StorageError::Unavailable(
                        "a retried append was refused as a duplicate, but its first message \
                         is no longer in the duplicate window"
                            .into(),
                    ))
                })?,
            Attempt::Retry(why) => {
                if started.elapsed() + backoff > deadline {
                    return Err(PublishError::Storage(StorageError::Unavailable(format!(
                        "the cluster did not take the append within {deadline:?}: {why}"
                    ))));
                }
                tracing::debug!(why, "append not taken yet; retrying");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(1));
                continue;
            }
        };
        let first = last_seq + 1 - n as u64;
        return Ok((first..=last_seq).collect());
    }
}

fn headers_of(m: &OutMsg, append_id: &str, i: usize) -> HeaderMap {
    let mut h = HeaderMap::new();
    h.insert("Nats-Msg-Id", format!("{append_id}.{i}").as_str());
    for (name, value) in &m.headers {
        h.insert(*name, value.as_str());
    }
    h
}

async fn attempt(
    client: &Client,
    append_id: &str,
    messages: &[OutMsg],
    timeout: Duration,
) -> Result<Attempt, PublishError> {
    let n = messages.len();
    let batch_id = nuid::next().to_string();
    let mut reply = None;
    for (i, m) in messages.iter().enumerate() {
        let mut h = headers_of(m, append_id, i);
        if n > 1 {
            h.insert("Nats-Batch-Id", batch_id.as_str());
            h.insert("Nats-Batch-Sequence", (i + 1).to_string().as_str());
        }
        if i + 1 < n {
            if let Err(e) = client
                .publish_with_headers(m.subject.clone(), h, m.payload.clone())
                .await
            {
                return Ok(Attempt::Retry(e.to_string()));
            }
            continue;
        }
        if n > 1 {
            h.insert("Nats-Batch-Commit", "1");
        }
        let request = client.request_with_headers(m.subject.clone(), h, m.payload.clone());
        reply = Some(match tokio::time::timeout(timeout, request).await {
            Ok(Ok(r)) => r,
            Ok(Err(e)) => return Ok(Attempt::Retry(e.to_string())),
            Err(_) => return Ok(Attempt::Retry(format!("no answer within {timeout:?}"))),
        });
    }
    let reply = reply.expect("the last message is sent as a request");
    let ack: Ack = serde_json::from_slice(&reply.payload).map_err(|e| {
        PublishError::Storage(StorageError::Unavailable(format!(
            "unreadable answer to a publish: {e}"
        )))
    })?;
    match ack.error {
        None if n > 1 && ack.count != Some(n as u64) => {
            Err(PublishError::Storage(StorageError::Unavailable(format!(
                "a batch of {n} messages was acknowledged with count {:?}",
                ack.count
            ))))
        }
        // A single message retried is answered as a duplicate with its first sequence.
        None => Ok(Attempt::Stored(ack.seq)),
        Some(e) if e.err_code == WRONG_LAST_SEQUENCE => Err(PublishError::Conflict(e.description)),
        Some(e) if e.err_code == DUPLICATE_IN_BATCH => Ok(Attempt::AlreadyStored),
        // A leader change, no quorum, a stream catching up: retry.
        Some(e) => Ok(Attempt::Retry(format!(
            "{} ({})",
            e.description, e.err_code
        ))),
    }
}

/// Where the first message of append `append_id` landed, asked by publishing its id
/// to the probe subject (a duplicate is answered with the original sequence and not
/// stored). `None` when the id is no longer known.
async fn first_of_duplicate(
    client: &Client,
    probe: &str,
    append_id: &str,
    timeout: Duration,
) -> Result<Option<u64>, PublishError> {
    let mut h = HeaderMap::new();
    h.insert("Nats-Msg-Id", format!("{append_id}.0").as_str());
    let request = client.request_with_headers(probe.to_string(), h, Bytes::new());
    let reply = match tokio::time::timeout(timeout, request).await {
        Ok(Ok(r)) => r,
        Ok(Err(e)) => {
            return Err(PublishError::Storage(StorageError::Unavailable(
                e.to_string(),
            )));
        }
        Err(_) => {
            return Err(PublishError::Storage(StorageError::Unavailable(
                "no answer to a duplicate check".into(),
            )));
        }
    };
    let ack: Ack = serde_json::from_slice(&reply.payload)
        .map_err(|e| PublishError::Storage(StorageError::Unavailable(e.to_string())))?;
    Ok((ack.error.is_none() && ack.duplicate).then_some(ack.seq))
}
