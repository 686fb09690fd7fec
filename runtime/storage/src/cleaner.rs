//! The background cleaner: retention (`delete` topics) and compaction (`compact`
//! topics).
//!
//! Retention deletes whole chunks from the front of a partition while they are older
//! than `retention_ms` or the partition is larger than `retention_bytes`, and persists
//! the new log start offset in the same atomic batch, so offsets are never reused even
//! when every chunk is gone.
//!
//! Compaction keeps, per key, only the record with the highest offset. A tombstone (a
//! null value) is kept until it is older than `retention_ms` (default one day), so
//! consumers that lag get to see the delete. Compaction rewrites chunks in place with
//! compare-and-swap; records keep their offsets, leaving gaps that readers skip.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use dashmap::DashMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::batch::{self, BatchBuilder};
use crate::config::CleanupPolicy;
use crate::error::{Result, StorageError};
use crate::keys;
use crate::topic::Topic;
use crate::writer::WriteContext;

/// How long tombstones stay on a compacted topic without `retention_ms`.
pub const DEFAULT_TOMBSTONE_RETENTION_MS: u64 = 24 * 60 * 60 * 1000;

/// What one cleaning pass did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct CleanReport {
    /// Chunks deleted by retention.
    pub chunks_deleted: u64,
    /// Records removed by compaction.
    pub records_compacted: u64,
}

/// What the cleaner works on: the store's trees and its topics (shared with the
/// store, so topics created or deleted meanwhile are seen on the next pass).
#[derive(Debug)]
pub(crate) struct Cleaner {
    ctx: Arc<WriteContext>,
    topics: Arc<DashMap<String, Arc<Topic>>>,
}

impl Cleaner {
    pub(crate) fn new(ctx: Arc<WriteContext>, topics: Arc<DashMap<String, Arc<Topic>>>) -> Self {
        Self { ctx, topics }
    }

    /// Cleans every `interval` until `stop` fires or is dropped.
    pub(crate) fn run(&self, interval: Duration, stop: std::sync::mpsc::Receiver<()>) {
        loop {
            match stop.recv_timeout(interval) {
                Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {}
                _ => return,
            }
            // A panic in sled on damaged data must not end retention for good (the
            // disk would then fill up): report it and try again next pass.
            if let Err(e) = crate::engine::catch_engine_panic(|| self.clean_all()) {
                tracing::warn!(error = %e, "cleaning pass failed; will retry");
            }
        }
    }

    fn ctx(&self) -> &WriteContext {
        &self.ctx
    }

    fn topics(&self) -> Vec<Arc<Topic>> {
        self.topics.iter().map(|t| t.clone()).collect()
    }
}

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

impl Cleaner {
    /// Applies retention and compaction to every topic once.
    pub(crate) fn clean_all(&self) -> Result<CleanReport> {
        let mut total = CleanReport::default();
        for topic in self.topics() {
            for p in 0..topic.partition_count() {
                if topic.is_deleted() {
                    break;
                }
                let report = self.clean_partition(&topic, p, now_ms())?;
                total.chunks_deleted += report.chunks_deleted;
                total.records_compacted += report.records_compacted;
            }
        }
        Ok(total)
    }

    fn clean_partition(&self, topic: &Topic, p: u32, now: i64) -> Result<CleanReport> {
        match topic.config.cleanup_policy {
            CleanupPolicy::Delete => self.apply_retention(topic, p, now),
            CleanupPolicy::Compact => self.compact(topic, p, now),
        }
    }

    fn apply_retention(&self, topic: &Topic, p: u32, now: i64) -> Result<CleanReport> {
        let cfg = &topic.config;
        if cfg.retention_ms.is_none() && cfg.retention_bytes.is_none() {
            return Ok(CleanReport::default());
        }
        let part = topic.partition(p)?;
        let hw = part.high_watermark();
        let mut size = part.size_bytes();
        let cutoff = cfg.retention_ms.map(|ms| now - ms as i64);
        let ctx = self.ctx();
        let mut batch = sled::Batch::default();
        let mut new_start = None;
        let mut deleted = 0;
        for item in ctx.data.scan_prefix(keys::partition_prefix(topic.id, p)) {
            let (key, chunk) = item?;
            let (end, max_ts) = chunk_extent(&chunk)?;
            if end > hw {
                break; // not yet durable: never touched
            }
            let too_old = cutoff.is_some_and(|c| max_ts < c);
            let too_big = cfg.retention_bytes.is_some_and(|limit| size > limit);
            if !too_old && !too_big {
                break;
            }
            batch.remove(key);
            size -= chunk.len() as u64;
            new_start = Some(end);
            deleted += 1;
        }
        let Some(start) = new_start else {
            return Ok(CleanReport::default());
        };
        // Readers check the log start first, so move it before the data goes.
        part.log_start.fetch_max(start, Ordering::AcqRel);
        let mut meta = sled::Batch::default();
        meta.insert(keys::log_start(topic.id, p), &start.to_be_bytes());
        ctx.meta.apply_batch(meta)?;
        ctx.data.apply_batch(batch)?;
        part.size_bytes.store(size, Ordering::Release);
        tracing::debug!(
            topic = topic.name,
            partition = p,
            log_start_offset = start,
            chunks = deleted,
            "retention applied"
        );
        Ok(CleanReport {
            chunks_deleted: deleted,
            records_compacted: 0,
        })
    }

    fn compact(&self, topic: &Topic, p: u32, now: i64) -> Result<CleanReport> {
        let part = topic.partition(p)?;
        let hw = part.high_watermark();
        if part.compaction.lock().is_clean(hw, now) {
            return Ok(CleanReport::default());
        }
        let tombstone_ms = topic
            .config
            .retention_ms
            .unwrap_or(DEFAULT_TOMBSTONE_RETENTION_MS) as i64;
        let tombstone_cutoff = now - tombstone_ms;
        let ctx = self.ctx();
        let prefix = keys::partition_prefix(topic.id, p);

        // Pass 1: the latest offset of every key, among durable records.
        let mut latest: HashMap<Vec<u8>, u64> = HashMap::new();
        for item in ctx.data.scan_prefix(prefix) {
            let (_, chunk) = item?;
            for b in batch::batches(&chunk) {
                for r in b?.records() {
                    let r = r?;
                    if r.offset >= hw {
                        break;
                    }
                    if let Some(key) = r.key {
                        match latest.get_mut(key) {
                            Some(o) => *o = r.offset,
                            None => {
                                latest.insert(key.to_vec(), r.offset);
                            }
                        }
                    }
                }
            }
        }

        // Pass 2: rewrite chunks that hold superseded records or expired tombstones.
        let next_expiry = std::cell::Cell::new(None::<i64>);
        let mut removed_total = 0;
        let mut size_delta: i64 = 0;
        // The last chunk below the high watermark keeps the log end readable even when
        // compaction empties it, so it is never deleted. (Chunks past the high watermark
        // are not durable yet and do not count: a reader must reach its high watermark.)
        let mut last_key = None;
        for item in ctx.data.scan_prefix(prefix).rev() {
            let (key, chunk) = item?;
            if chunk_extent(&chunk)?.0 <= hw {
                last_key = Some(key);
                break;
            }
        }
        for item in ctx.data.scan_prefix(prefix) {
            let (key, chunk) = item?;
            let (end, _) = chunk_extent(&chunk)?;
            if end > hw {
                break;
            }
            let keep = |r: &batch::RecordView<'_>| {
                let Some(k) = r.key else { return true };
                if latest.get(k) != Some(&r.offset) {
                    return false;
                }
                if r.value.is_some() {
                    return true;
                }
                let kept = r.timestamp_ms >= tombstone_cutoff;
                if kept {
                    let expiry = r.timestamp_ms + tombstone_ms;
                    next_expiry.set(Some(next_expiry.get().map_or(expiry, |e| e.min(expiry))));
                }
                kept
            };
            let (rewritten, removed) = rewrite_chunk(&chunk, keep)?;
            if removed == 0 {
                continue;
            }
            let is_last = last_key.as_ref() == Some(&key);
            let empty = all_batches_empty(&rewritten);
            let new = if empty && !is_last {
                None
            } else {
                Some(rewritten)
            };
            let new_len = new.as_ref().map_or(0, Vec::len) as i64;
            // Compare-and-swap: a concurrent topic deletion wins.
            match ctx.data.compare_and_swap(&key, Some(&chunk), new)? {
                Ok(()) => {
                    removed_total += removed;
                    size_delta += new_len - chunk.len() as i64;
                }
                Err(_) => return Ok(CleanReport::default()),
            }
        }
        *part.compaction.lock() = crate::topic::CompactionState {
            compacted_to: hw,
            next_expiry_ms: next_expiry.get(),
        };
        if size_delta != 0 {
            let size = (part.size_bytes() as i64 + size_delta).max(0) as u64;
            part.size_bytes.store(size, Ordering::Release);
        }
        if removed_total > 0 {
            tracing::debug!(
                topic = topic.name,
                partition = p,
                removed = removed_total,
                "compacted"
            );
        }
        Ok(CleanReport {
            chunks_deleted: 0,
            records_compacted: removed_total,
        })
    }
}

/// End offset and newest timestamp of a chunk, from its batch headers.
fn chunk_extent(chunk: &[u8]) -> Result<(u64, i64)> {
    let mut end = 0;
    let mut max_ts = i64::MIN;
    for b in batch::batches(chunk) {
        let h = b?.header;
        end = end.max(h.end_offset());
        if h.record_count > 0 {
            max_ts = max_ts.max(h.max_timestamp_ms);
        }
    }
    if end == 0 {
        return Err(StorageError::corrupt("empty chunk"));
    }
    Ok((end, max_ts))
}

fn all_batches_empty(chunk: &[u8]) -> bool {
    batch::batches(chunk).all(|b| b.is_ok_and(|b| b.header.record_count == 0))
}

/// Rebuilds every batch of `chunk` with only the records `keep` accepts, preserving
/// offsets and each batch's span. Returns the new chunk and how many records went.
fn rewrite_chunk(
    chunk: &[u8],
    keep: impl Fn(&batch::RecordView<'_>) -> bool,
) -> Result<(Vec<u8>, u64)> {
    let mut out = Vec::with_capacity(chunk.len());
    let mut removed = 0;
    for b in batch::batches(chunk) {
        let b = b?;
        let mut builder = BatchBuilder::with_capacity(b.header.len);
        for r in b.records() {
            let r = r?;
            if !keep(&r) {
                removed += 1;
                continue;
            }
            builder.push_with_delta(
                (r.offset - b.header.base_offset) as u32,
                r.timestamp_ms,
                r.attributes,
                r.key,
                r.value,
                r.headers(),
            )?;
        }
        builder
            .finish_with_last_delta(b.header.last_offset_delta)
            .seal_into(b.header.base_offset, &mut out);
    }
    Ok((out, removed))
}
