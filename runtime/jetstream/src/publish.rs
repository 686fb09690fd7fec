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

use async_nats::client::RequestErrorKind;
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

    /// Records it carries (its `Weir-Records` header; 0 for other messages).
    pub(crate) fn records(&self) -> u64 {
        self.headers
            .iter()
            .find(|(name, _)| *name == crate::view::RECORDS)
            .and_then(|(_, v)| v.parse().ok())
            .unwrap_or(0)
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
    /// Not taken; `sent` when the commit went out, so it may have landed unheard.
    Retry {
        why: String,
        sent: bool,
    },
}

/// What a duplicate probe learned.
enum Probe {
    /// The append's first message is at this sequence.
    Found(u64),
    /// The append is not stored, and now never will be (the probe took its id).
    Absent,
    /// The server could not say yet (the append is in flight, or no answer).
    Pending,
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
    // Whether an attempt may have landed without our hearing of it.
    let mut maybe_landed = false;
    loop {
        let attempt = attempt(client, &append_id, messages, timeout).await?;
        let first = match attempt {
            Attempt::Stored(last) => last + 1 - n as u64,
            Attempt::AlreadyStored => {
                match settle(client, probe, &append_id, timeout, started + deadline).await? {
                    Probe::Found(first) => first,
                    _ => {
                        return Err(PublishError::Storage(StorageError::Unavailable(
                            "a retried append was refused as a duplicate, but where the first \
                             attempt landed could not be learned"
                                .into(),
                        )));
                    }
                }
            }
            Attempt::Retry { why, sent } => {
                maybe_landed |= sent;
                if started.elapsed() + backoff <= deadline {
                    tracing::debug!(why, "append not taken yet; retrying");
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(Duration::from_secs(1));
                    continue;
                }
                // Out of time. An answer may have been lost: ask once more where the
                // append went. A probe that finds nothing claims the id, so the append
                // can no longer land later.
                let outcome = if maybe_landed {
                    let until = Instant::now() + timeout;
                    settle(client, probe, &append_id, timeout, until).await?
                } else {
                    Probe::Absent
                };
                match outcome {
                    Probe::Found(first) => first,
                    Probe::Absent => {
                        return Err(PublishError::Storage(StorageError::Unavailable(format!(
                            "the cluster did not take the append within {deadline:?}, and \
                             nothing of it was stored: {why}"
                        ))));
                    }
                    Probe::Pending => {
                        return Err(PublishError::Storage(StorageError::Unavailable(format!(
                            "the cluster did not answer within {deadline:?}, and whether the \
                             append was stored is unknown: {why}"
                        ))));
                    }
                }
            }
        };
        return Ok((first..first + n as u64).collect());
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
                return Ok(Attempt::Retry {
                    why: e.to_string(),
                    sent: false,
                });
            }
            continue;
        }
        if n > 1 {
            h.insert("Nats-Batch-Commit", "1");
        }
        let request = client.request_with_headers(m.subject.clone(), h, m.payload.clone());
        reply = Some(match tokio::time::timeout(timeout, request).await {
            Ok(Ok(r)) => r,
            Ok(Err(e))
                if matches!(
                    e.kind(),
                    RequestErrorKind::MaxPayloadExceeded | RequestErrorKind::InvalidSubject
                ) =>
            {
                // The client refused to send it: final.
                return Err(PublishError::Storage(StorageError::InvalidRecord(format!(
                    "the cluster refused the append: {e}"
                ))));
            }
            Ok(Err(e)) => {
                return Ok(Attempt::Retry {
                    why: e.to_string(),
                    sent: true,
                });
            }
            Err(_) => {
                return Ok(Attempt::Retry {
                    why: format!("no answer within {timeout:?}"),
                    sent: true,
                });
            }
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
        // A leader change, no quorum, a stream catching up: retry. (An error answer
        // means this attempt was not stored.)
        Some(e) => Ok(Attempt::Retry {
            why: format!("{} ({})", e.description, e.err_code),
            sent: false,
        }),
    }
}

/// Probes until it learns where append `append_id` went, or `until` passes.
async fn settle(
    client: &Client,
    probe_subject: &str,
    append_id: &str,
    timeout: Duration,
    until: Instant,
) -> Result<Probe, PublishError> {
    let mut backoff = Duration::from_millis(50);
    loop {
        match probe(client, probe_subject, append_id, timeout).await {
            Probe::Pending if Instant::now() + backoff < until => {
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(1));
            }
            outcome => return Ok(outcome),
        }
    }
}

/// Asks where the first message of append `append_id` landed, by publishing its id
/// to the probe subject: a known id is answered as a duplicate with the original
/// sequence and not stored; an unknown one is stored (rolled up: the probe subject
/// keeps one message), which takes the id so the append cannot land after.
async fn probe(client: &Client, probe_subject: &str, append_id: &str, timeout: Duration) -> Probe {
    let mut h = HeaderMap::new();
    h.insert("Nats-Msg-Id", format!("{append_id}.0").as_str());
    h.insert("Nats-Rollup", "sub");
    let request = client.request_with_headers(probe_subject.to_string(), h, Bytes::new());
    let reply = match tokio::time::timeout(timeout, request).await {
        Ok(Ok(r)) => r,
        _ => return Probe::Pending,
    };
    match serde_json::from_slice::<Ack>(&reply.payload) {
        Ok(ack) if ack.error.is_none() && ack.duplicate => Probe::Found(ack.seq),
        Ok(ack) if ack.error.is_none() => Probe::Absent,
        // 10158: the id is being stored right now; anything else: ask again.
        _ => Probe::Pending,
    }
}
