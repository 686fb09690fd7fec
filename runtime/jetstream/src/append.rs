//! Appends (records of any partitions of any topics, with key-value commits, in one
//! atomic batch) and the offset lookup by time.

use std::collections::HashMap;
use std::time::Instant;

use weir_storage::{Acks, KvOp, StorageError, Topic, TopicBatch};

use crate::JetStreamLog;
use crate::chunk::{Chunk, base_of};
use crate::publish::{OutMsg, PublishError};
use crate::view::{DELETED, RECORDS, SPAN};

/// An append as messages: record chunks, then key-value writes.
struct Encoded {
    messages: Vec<OutMsg>,
    /// Per batch: its chunk's index and its position in the chunk.
    placed: Vec<(usize, u64)>,
    records: u64,
}

impl Encoded {
    fn push_kv(
        &mut self,
        subjects: &crate::subjects::Subjects,
        ops: impl IntoIterator<Item = KvOp>,
    ) {
        for (key, value) in ops {
            let subject = subjects.kv(&key);
            self.messages.push(match value {
                Some(v) => OutMsg::new(subject, v).rollup(),
                None => OutMsg::new(subject, Vec::new()).header(DELETED, 1).rollup(),
            });
        }
    }
}

impl JetStreamLog {
    /// See [`Log::append`](weir_storage::Log::append). `Acks::None` waits for the
    /// cluster too: the offsets come from its answer.
    pub(crate) async fn append_all(
        &self,
        batches: Vec<TopicBatch>,
        commit: Vec<KvOp>,
        _acks: Acks,
    ) -> Result<Vec<u64>, StorageError> {
        let inner = &self.inner;
        let started = Instant::now();
        let mut encoded = self.encode(&batches)?;
        let plugin_state = std::mem::take(&mut *inner.pending_kv.lock());
        let restore = plugin_state.clone();
        encoded.push_kv(&inner.subjects, plugin_state.into_iter().chain(commit));
        let published = match self.oversized(&encoded.messages) {
            Some(e) => Err(e),
            None => inner.committer.append(encoded.messages).await,
        };
        let seqs = match published {
            Ok(seqs) => seqs,
            Err(e) => {
                // Plugin state set meanwhile goes out with the next write instead.
                let mut pending = inner.pending_kv.lock();
                let later = std::mem::replace(&mut *pending, restore);
                pending.extend(later);
                return Err(match e {
                    PublishError::Conflict(m) => StorageError::Unavailable(m),
                    PublishError::Storage(s) => s,
                });
            }
        };
        self.appended(started, encoded.records, encoded.placed, &seqs)
            .await
    }

    /// See [`SharedKv::append_if`](weir_storage::SharedKv::append_if): published as
    /// its own atomic batch (not shared with other appends, whose fate must not hang
    /// on this guard), the first message carrying the check.
    pub(crate) async fn append_guarded(
        &self,
        guard_subject: String,
        version: u64,
        batches: Vec<TopicBatch>,
        commit: Vec<KvOp>,
    ) -> Result<Vec<u64>, StorageError> {
        let started = Instant::now();
        let mut encoded = self.encode(&batches)?;
        encoded.push_kv(&self.inner.subjects, commit);
        if let Some(e) = self.oversized(&encoded.messages) {
            return Err(e.into());
        }
        let Some(first) = encoded.messages.first_mut() else {
            return Ok(Vec::new());
        };
        let checked = std::mem::replace(first, OutMsg::new(String::new(), Vec::new()));
        *first = checked
            .expect_last(version)
            .header(crate::shared::EXPECTED_SUBJECT, guard_subject);
        let seqs = match self.publish(&encoded.messages).await {
            Ok(seqs) => seqs,
            Err(PublishError::Conflict(why)) => {
                self.catch_up().await?;
                return Err(StorageError::VersionConflict(why));
            }
            Err(PublishError::Storage(e)) => return Err(e),
        };
        self.appended(started, encoded.records, encoded.placed, &seqs)
            .await
    }

    /// Record batches as messages: batches of one partition go into as few messages
    /// as fit.
    fn encode(&self, batches: &[TopicBatch]) -> Result<Encoded, StorageError> {
        let inner = &self.inner;
        let mut chunks: Vec<(String, Chunk)> = Vec::new();
        let mut open: HashMap<(u32, u32), usize> = HashMap::new();
        let mut placed = Vec::with_capacity(batches.len());
        let mut records = 0u64;
        for b in batches {
            let current = inner.view.topic(b.topic.name())?;
            if b.topic.is_deleted() || current.id() != b.topic.id() {
                return Err(StorageError::TopicNotFound(b.topic.name().to_string()));
            }
            b.topic.partition(b.partition)?;
            let key = (b.topic.id(), b.partition);
            let i = match open.get(&key) {
                Some(&i) if chunks[i].1.fits(&b.batch, inner.options.max_message_bytes) => i,
                _ => {
                    let subject = inner.subjects.records(key.0, key.1);
                    chunks.push((subject, Chunk::default()));
                    open.insert(key, chunks.len() - 1);
                    chunks.len() - 1
                }
            };
            placed.push((i, chunks[i].1.push(&b.batch)?));
            records += u64::from(b.batch.record_count());
        }
        let messages = chunks
            .into_iter()
            .map(|(subject, c)| {
                OutMsg::new(subject, c.bytes)
                    .header(SPAN, c.span)
                    .header(RECORDS, c.records)
            })
            .collect();
        Ok(Encoded {
            messages,
            placed,
            records,
        })
    }

    /// The refusal of a message larger than one cluster message holds.
    fn oversized(&self, messages: &[OutMsg]) -> Option<PublishError> {
        let limit = self.inner.options.max_message_bytes;
        messages.iter().find(|m| m.payload.len() > limit).map(|m| {
            PublishError::Storage(StorageError::InvalidRecord(format!(
                "{} bytes for one partition or key is more than one cluster message holds \
                 ({limit} bytes, below the servers' max_payload); send smaller records",
                m.payload.len()
            )))
        })
    }

    /// Waits until this node's view shows the stored messages, counts the write and
    /// returns each batch's base offset.
    async fn appended(
        &self,
        started: Instant,
        records: u64,
        placed: Vec<(usize, u64)>,
        seqs: &[u64],
    ) -> Result<Vec<u64>, StorageError> {
        if let Some(last) = seqs.last() {
            self.visible(*last).await;
        }
        self.inner.stats.record_write(started.elapsed(), records);
        Ok(placed
            .into_iter()
            .map(|(i, at)| base_of(seqs[i]) + at)
            .collect())
    }

    /// See [`Log::offset_for_timestamp`](weir_storage::Log::offset_for_timestamp):
    /// the message whose stream time is the first at or after `timestamp_ms`, then
    /// the first record in it (or a later one) stamped at or after it.
    pub(crate) async fn offset_at(
        &self,
        topic: &Topic,
        partition: u32,
        timestamp_ms: i64,
    ) -> Result<u64, StorageError> {
        let part = topic.partition(partition)?;
        let hw = part.high_watermark();
        let mut from = {
            let index = self.inner.view.index(topic.id(), partition);
            let index = index.lock();
            let i = index.entries.partition_point(|e| e.time_ms < timestamp_ms);
            match index.entries.get(i) {
                Some(e) => base_of(e.seq),
                None => return Ok(hw),
            }
        };
        // Records are stamped before their message is stored: look inside.
        while from < hw {
            let limits = weir_storage::ReadLimits {
                max_records: usize::MAX,
                max_bytes: 1 << 20,
            };
            let read = weir_storage::Log::read(self, topic, partition, from, limits).await?;
            if let Some(r) = read.records().find(|r| r.timestamp_ms >= timestamp_ms) {
                return Ok(r.offset);
            }
            if read.next_offset <= from {
                break;
            }
            from = read.next_offset;
        }
        Ok(hw)
    }
}
