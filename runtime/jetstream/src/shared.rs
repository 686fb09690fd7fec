//! State that several Weir nodes change at once (a consumer group's members),
//! written with compare-and-set on the key's last stream sequence, and the record
//! counts that lag needs (offsets have gaps in this mode).

use weir_storage::{KvOp, LogFuture, SharedKv, StorageError, Topic, TopicBatch};

use crate::JetStreamLog;
use crate::chunk::base_of;
use crate::publish::{OutMsg, PublishError};
use crate::view::DELETED;

/// Makes a message's compare-and-set check another subject than its own.
pub(crate) const EXPECTED_SUBJECT: &str = "Nats-Expected-Last-Subject-Sequence-Subject";

impl SharedKv for JetStreamLog {
    fn get_versioned(&self, key: &[u8]) -> (Option<Vec<u8>>, u64) {
        self.inner.view.kv_get_versioned(key)
    }

    fn write_if<'a>(&'a self, guard: &'a [u8], version: u64, ops: Vec<KvOp>) -> LogFuture<'a, u64> {
        Box::pin(async move {
            let inner = &self.inner;
            let guard_subject = inner.subjects.kv(guard);
            let mut messages: Vec<OutMsg> = ops
                .into_iter()
                .map(|(key, value)| {
                    let subject = inner.subjects.kv(&key);
                    let m = match value {
                        Some(v) => OutMsg::new(subject, v),
                        None => OutMsg::new(subject, Vec::new()).header(DELETED, 1),
                    };
                    let m = if key == guard {
                        m.expect_last(version)
                    } else {
                        m
                    };
                    m.rollup()
                })
                .collect();
            if !messages.iter().any(|m| m.subject == guard_subject) {
                let Some(first) = messages.first_mut() else {
                    return Ok(version);
                };
                let checked = std::mem::replace(first, OutMsg::new(String::new(), Vec::new()));
                *first = checked
                    .expect_last(version)
                    .header(EXPECTED_SUBJECT, guard_subject);
            }
            let result = match self.publish(&messages).await {
                Ok(seqs) => {
                    let last = *seqs.last().expect("a non-empty batch has sequences");
                    self.visible(last).await;
                    Ok(last)
                }
                Err(PublishError::Conflict(why)) => {
                    self.catch_up().await?;
                    Err(StorageError::VersionConflict(why))
                }
                Err(PublishError::Storage(e)) => Err(e),
            };
            self.note(&result);
            result
        })
    }

    fn append_if<'a>(
        &'a self,
        guard: &'a [u8],
        version: u64,
        batches: Vec<TopicBatch>,
        commit: Vec<KvOp>,
    ) -> LogFuture<'a, Vec<u64>> {
        Box::pin(async move {
            let guard_subject = self.inner.subjects.kv(guard);
            let result = self
                .append_guarded(guard_subject, version, batches, commit)
                .await;
            self.note(&result);
            result
        })
    }
}

impl JetStreamLog {
    /// Records of the partition's messages that lie in `[from, to)`; a message that
    /// straddles `from` counts in full (a committed offset inside a message is rare:
    /// consumers commit what a fetch returned, which ends at a message's end).
    pub(crate) fn count_records(&self, topic: &Topic, partition: u32, from: u64, to: u64) -> u64 {
        let index = self.inner.view.index(topic.id(), partition);
        let index = index.lock();
        let first = index.position(from);
        index
            .entries
            .iter()
            .skip(first)
            .take_while(|e| base_of(e.seq) < to)
            .map(|e| e.records)
            .sum()
    }
}
