//! Building a node's [`View`] from the stream at start, then following the stream.
//!
//! At start, three ordered consumers read what the view needs without reading every
//! record: the last message of every topic and key-value subject, and the headers
//! (not the payloads) of every record message. Then one ordered consumer follows the
//! whole stream from the next sequence on, payloads included, so new records are
//! cached as they arrive. Ordered consumers are ephemeral and re-created by the
//! client after a leader change, so a node holds no durable state in the cluster.

use std::sync::Arc;
use std::time::Duration;

use async_nats::jetstream::consumer::{DeliverPolicy, pull};
use async_nats::jetstream::{self, stream::Stream};
use futures_util::StreamExt;
use weir_storage::StorageError;

use crate::subjects::Subjects;
use crate::unavailable;
use crate::view::{Applied, View};

/// How long the start-up load waits for the next message before it gives up.
const IDLE: Duration = Duration::from_secs(15);

/// Loads the view as of the stream's current end; returns that sequence.
pub(crate) async fn load(
    stream: &mut Stream,
    subjects: &Subjects,
    view: &View,
) -> Result<u64, StorageError> {
    let last = stream
        .info()
        .await
        .map_err(unavailable("reading the stream's state"))?
        .state
        .last_sequence;
    for (filter, policy, headers_only) in [
        (subjects.all_meta(), DeliverPolicy::LastPerSubject, false),
        (subjects.all_kv(), DeliverPolicy::LastPerSubject, false),
        (subjects.all_records(), DeliverPolicy::All, true),
    ] {
        drain(stream, filter, policy, headers_only, view, last).await?;
    }
    view.mark_applied(last);
    Ok(last)
}

async fn drain(
    stream: &Stream,
    filter: String,
    deliver_policy: DeliverPolicy,
    headers_only: bool,
    view: &View,
    last: u64,
) -> Result<(), StorageError> {
    let what = format!("loading {filter}");
    let consumer = stream
        .create_consumer(pull::OrderedConfig {
            filter_subject: filter,
            deliver_policy,
            headers_only,
            ..Default::default()
        })
        .await
        .map_err(unavailable(&what))?;
    if consumer.cached_info().num_pending == 0 {
        return Ok(());
    }
    let mut messages = consumer.messages().await.map_err(unavailable(&what))?;
    // Up to `last` only: the follower applies everything after it. A stream whose
    // pending tail vanishes (purged meanwhile) must not hang the start either.
    loop {
        let next = tokio::time::timeout(IDLE, messages.next()).await;
        let Ok(Some(m)) = next else {
            return Err(StorageError::Unavailable(format!(
                "{what}: the stream stopped sending before the load was complete"
            )));
        };
        let m = m.map_err(unavailable(&what))?;
        let pending = apply(view, &m)?;
        let seq = m.info().map_or(0, |i| i.stream_sequence);
        if pending == 0 || seq >= last {
            return Ok(());
        }
    }
}

/// Applies one consumed message; returns how many more the consumer has pending.
fn apply(view: &View, m: &jetstream::Message) -> Result<u64, StorageError> {
    let info = m
        .info()
        .map_err(|e| StorageError::Unavailable(format!("a message without its info: {e}")))?;
    let header = |name: &str| {
        m.headers
            .as_ref()
            .and_then(|h| h.get(name))
            .map(|v| v.as_str().to_string())
    };
    let headers_only = header("Nats-Msg-Size");
    let payload_len = headers_only
        .as_deref()
        .and_then(|s| s.parse().ok())
        .unwrap_or(m.payload.len());
    view.apply(&Applied {
        seq: info.stream_sequence,
        subject: m.subject.as_str(),
        time_ms: (info.published.unix_timestamp_nanos() / 1_000_000) as i64,
        header: &header,
        payload: headers_only.is_none().then_some(&m.payload[..]),
        payload_len,
    })?;
    Ok(info.pending)
}

/// Follows the stream after the view's applied sequence until `stop` is set.
pub(crate) fn follow(
    stream: Stream,
    subjects: Subjects,
    view: Arc<View>,
    mut stop: tokio::sync::watch::Receiver<bool>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        loop {
            let start = view.applied() + 1;
            let consumer = stream
                .create_consumer(pull::OrderedConfig {
                    filter_subject: subjects.all(),
                    deliver_policy: DeliverPolicy::ByStartSequence {
                        start_sequence: start,
                    },
                    ..Default::default()
                })
                .await;
            let messages = match consumer {
                Ok(c) => c.messages().await,
                Err(e) => {
                    tracing::warn!(error = %e, start, "cannot follow the stream; retrying");
                    if pause(&mut stop).await {
                        return;
                    }
                    continue;
                }
            };
            let mut messages = match messages {
                Ok(m) => m,
                Err(e) => {
                    tracing::warn!(error = %e, start, "cannot follow the stream; retrying");
                    if pause(&mut stop).await {
                        return;
                    }
                    continue;
                }
            };
            loop {
                tokio::select! {
                    _ = stop.changed() => return,
                    next = messages.next() => match next {
                        Some(Ok(m)) => {
                            let seq = m.info().map(|i| i.stream_sequence).ok();
                            if let Err(e) = apply(&view, &m) {
                                tracing::error!(error = %e, subject = %m.subject, "a message of the stream does not apply");
                            }
                            if let Some(seq) = seq {
                                view.mark_applied(seq);
                            }
                        }
                        Some(Err(e)) => {
                            tracing::warn!(error = %e, "following the stream: retrying");
                            break;
                        }
                        None => break,
                    },
                }
            }
            if pause(&mut stop).await {
                return;
            }
        }
    })
}

/// Waits a moment before a retry; true when stopped meanwhile.
async fn pause(stop: &mut tokio::sync::watch::Receiver<bool>) -> bool {
    tokio::select! {
        _ = stop.changed() => true,
        _ = tokio::time::sleep(Duration::from_millis(200)) => *stop.borrow(),
    }
}
