//! Appends (records of any partitions of any topics, with key-value commits, in one
//! atomic batch) and the offset lookup by time.

use std::collections::HashMap;
use std::time::Instant;

use weir_storage::{Acks, KvOp, StorageError, Topic, TopicBatch};

use crate::JetStreamLog;
use crate::chunk::{Chunk, base_of};
use crate::publish::{OutMsg, PublishError};
use crate::view::{DELETED, RECORDS, SPAN};

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
        // Batches of one partition go into as few messages as fit.
        let mut chunks: Vec<(String, Chunk)> = Vec::new();
        let mut open: HashMap<(u32, u32), usize> = HashMap::new();
        let mut placed = Vec::with_capacity(batches.len());
        let mut records = 0u64;
        for b in &batches {
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
        let mut messages: Vec<OutMsg> = chunks
            .into_iter()
            .map(|(subject, c)| {
                OutMsg::new(subject, c.bytes)
                    .header(SPAN, c.span)
                    .header(RECORDS, c.records)
            })
            .collect();
        let plugin_state = std::mem::take(&mut *inner.pending_kv.lock());
        let restore = plugin_state.clone();
        for (key, value) in plugin_state.into_iter().chain(commit) {
            let subject = inner.subjects.kv(&key);
            messages.push(match value {
                Some(v) => OutMsg::new(subject, v).rollup(),
                None => OutMsg::new(subject, Vec::new()).header(DELETED, 1).rollup(),
            });
        }
        let limit = inner.options.max_message_bytes;
        let published = match messages.iter().find(|m| m.payload.len() > limit) {
            Some(m) => Err(PublishError::Storage(StorageError::InvalidRecord(format!(
                "{} bytes for one partition or key is more than one cluster message holds \
                 ({limit} bytes, below the servers' max_payload); send smaller records",
                m.payload.len()
            )))),
            None => inner.committer.append(messages).await,
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
        if let Some(last) = seqs.last() {
            self.visible(*last).await;
        }
        let took = started.elapsed();
        inner.stats.record_write(took, records);
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
