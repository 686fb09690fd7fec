//! Rebuilding every topic's offsets from the metadata and the chunks at open.
//!
//! A `delete` topic's chunks must follow each other without a gap (reads treat a gap
//! as damage). A write that fails half way can leave one: sled does not keep a batch
//! atomic when its log write fails for lack of space, so after a restart part of a
//! round that was never acknowledged may be there, with holes. Like Kafka's log
//! recovery, which truncates at the first invalid batch past its recovery point, the
//! log ends where it stops being contiguous; what lies beyond ([`Orphans`]) is removed
//! once the checkpoint has confirmed that no acknowledged offset is past the gap (the
//! caller checks the shortfall first, so damage to acknowledged data still refuses to
//! open). `compact` topics have legitimate gaps (compaction drops emptied chunks) and
//! are taken as stored.

use std::sync::atomic::Ordering;

use crate::config::CleanupPolicy;
use crate::error::{Result, StorageError};
use crate::topic::{Topic, TopicRecord};
use crate::writer::WriteContext;
use crate::{batch, keys};

/// Chunks of a partition that lie past a gap: never acknowledged, to be removed.
#[derive(Debug)]
pub(super) struct Orphans {
    pub(super) topic: String,
    pub(super) partition: u32,
    /// Where the contiguous log ends (the first missing offset).
    pub(super) gap_at: u64,
    pub(super) keys: Vec<sled::IVec>,
    pub(super) bytes: u64,
}

impl Orphans {
    /// Removes the chunks in one batch and makes that durable before any new write
    /// can reuse their offsets.
    pub(super) fn remove(&self, ctx: &WriteContext) -> Result<()> {
        let mut batch = sled::Batch::default();
        for key in &self.keys {
            batch.remove(key.clone());
        }
        ctx.data.apply_batch(batch)?;
        ctx.db.flush()?;
        tracing::warn!(
            topic = %self.topic,
            partition = self.partition,
            gap_at = self.gap_at,
            chunks = self.keys.len(),
            bytes = self.bytes,
            "removed unacknowledged chunks past a gap in the log (a write that failed \
             before the restart); the log continues at the gap"
        );
        Ok(())
    }
}

/// What a partition's chunks say: where its log ends, its size, and any orphans.
struct Scanned {
    end: u64,
    size: u64,
    orphans: Option<Orphans>,
}

pub(super) fn recover_topics(ctx: &WriteContext) -> Result<(Vec<Topic>, Vec<Orphans>)> {
    let mut topics = Vec::new();
    let mut all_orphans = Vec::new();
    for item in ctx.meta.scan_prefix(keys::TOPIC_META_PREFIX) {
        let (key, value) = item?;
        let name = String::from_utf8_lossy(&key[keys::TOPIC_META_PREFIX.len()..]).into_owned();
        let record: TopicRecord = serde_json::from_slice(&value)
            .map_err(|e| StorageError::corrupt(format!("topic '{name}' metadata: {e}")))?;
        let topic = Topic::new(record.id, name, record.config);
        for (p, part) in topic.partitions.iter().enumerate() {
            let p = p as u32;
            let start = match ctx.meta.get(keys::log_start(topic.id, p))? {
                Some(v) => u64::from_be_bytes(
                    v.as_ref()
                        .try_into()
                        .map_err(|_| StorageError::corrupt("bad log start offset"))?,
                ),
                None => 0,
            };
            let scanned = scan_partition(ctx, &topic, p, start)?;
            part.log_start.store(start, Ordering::Release);
            part.log_end.store(scanned.end, Ordering::Release);
            part.high_watermark.store(scanned.end, Ordering::Release);
            part.size_bytes.store(scanned.size, Ordering::Release);
            all_orphans.extend(scanned.orphans);
        }
        topics.push(topic);
    }
    Ok((topics, all_orphans))
}

fn scan_partition(ctx: &WriteContext, topic: &Topic, p: u32, start: u64) -> Result<Scanned> {
    let gap_free = topic.config.cleanup_policy == CleanupPolicy::Delete;
    let corrupt = |base: u64, e: StorageError| {
        StorageError::corrupt(format!(
            "topic '{}' partition {p} chunk at offset {base}: {e}",
            topic.name
        ))
    };
    let mut scanned = Scanned {
        end: start,
        size: 0,
        orphans: None,
    };
    // Where the next chunk must start, once the first live chunk is seen.
    let mut expect: Option<u64> = None;
    let mut last = None;
    for chunk in ctx.data.scan_prefix(keys::partition_prefix(topic.id, p)) {
        let (key, value) = chunk?;
        let base = keys::base_offset_of(&key);
        if let Some(orphans) = &mut scanned.orphans {
            orphans.bytes += value.len() as u64;
            orphans.keys.push(key);
            continue;
        }
        if gap_free {
            let end = chunk_end(&value).map_err(|e| corrupt(base, e))?;
            // Chunks wholly below the log start are retention's leftovers.
            if end > start {
                if expect.is_some_and(|e| base != e) {
                    scanned.orphans = Some(Orphans {
                        topic: topic.name.clone(),
                        partition: p,
                        gap_at: expect.unwrap_or(base),
                        bytes: value.len() as u64,
                        keys: vec![key],
                    });
                    continue;
                }
                expect = Some(end);
            }
        }
        scanned.size += value.len() as u64;
        last = Some((key, value));
    }
    if let Some((key, value)) = last {
        for b in batch::batches(&value) {
            let b = b.map_err(|e| corrupt(keys::base_offset_of(&key), e))?;
            scanned.end = scanned.end.max(b.header.end_offset());
        }
    }
    Ok(scanned)
}

/// One past the last offset a chunk covers, from its batch headers alone.
fn chunk_end(mut chunk: &[u8]) -> Result<u64> {
    let mut end = None;
    while !chunk.is_empty() {
        let header = batch::peek_header(chunk)?;
        end = Some(header.end_offset());
        chunk = &chunk[header.len..];
    }
    end.ok_or_else(|| StorageError::corrupt("empty chunk"))
}
