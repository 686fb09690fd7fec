//! In-memory state of topics and partitions: the offsets every reader and writer shares.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use tokio::sync::Notify;

use crate::config::TopicConfig;
use crate::error::{Result, StorageError};

/// A topic: its stable id (data keys use it, names can be reused after deletion), its
/// config and its partitions.
#[derive(Debug)]
pub struct Topic {
    pub(crate) id: u32,
    pub(crate) name: String,
    pub(crate) config: TopicConfig,
    pub(crate) partitions: Box<[Partition]>,
    /// Set by the writer thread when it deletes the topic, so appends that raced with
    /// the deletion fail instead of writing orphan data.
    pub(crate) deleted: AtomicBool,
}

impl Topic {
    /// A topic handle with empty partitions. For [`Log`](crate::Log) implementations:
    /// the broker only ever gets handles from its log.
    pub fn new(id: u32, name: String, config: TopicConfig) -> Self {
        let partitions = (0..config.partitions)
            .map(|_| Partition::default())
            .collect();
        Self {
            id,
            name,
            config,
            partitions,
            deleted: AtomicBool::new(false),
        }
    }

    /// The topic's stable id: never reused, so state keyed by it (group offsets) does
    /// not carry over to a new topic of the same name.
    pub fn id(&self) -> u32 {
        self.id
    }

    /// The topic's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The topic's configuration.
    pub fn config(&self) -> &TopicConfig {
        &self.config
    }

    /// Number of partitions.
    pub fn partition_count(&self) -> u32 {
        self.partitions.len() as u32
    }

    /// The partition with index `p`, or `partition_not_found`.
    pub fn partition(&self, p: u32) -> Result<&Partition> {
        self.partitions
            .get(p as usize)
            .ok_or_else(|| StorageError::PartitionNotFound {
                topic: self.name.clone(),
                partition: p,
                count: self.partition_count(),
            })
    }

    /// Whether the topic was deleted.
    pub fn is_deleted(&self) -> bool {
        self.deleted.load(Ordering::Acquire)
    }

    /// Marks the topic deleted, so appends holding its handle fail. For
    /// [`Log`](crate::Log) implementations.
    pub fn mark_deleted(&self) {
        self.deleted.store(true, Ordering::Release);
    }

    /// Offsets of every partition.
    pub fn offsets(&self) -> Vec<PartitionOffsets> {
        self.partitions
            .iter()
            .enumerate()
            .map(|(i, p)| PartitionOffsets {
                partition: i as u32,
                log_start_offset: p.log_start_offset(),
                high_watermark: p.high_watermark(),
                size_bytes: p.size_bytes(),
            })
            .collect()
    }
}

/// A snapshot of one partition's offsets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PartitionOffsets {
    /// Partition index.
    pub partition: u32,
    /// First offset still stored.
    pub log_start_offset: u64,
    /// One past the last durable, readable offset.
    pub high_watermark: u64,
    /// Bytes stored.
    pub size_bytes: u64,
}

/// One partition's offsets.
///
/// `log_end` runs ahead of `high_watermark` between a write and the flush that covers
/// it: readers only ever see offsets below the high watermark, so a consumer never sees
/// a record that a crash could still take away.
#[derive(Debug, Default)]
pub struct Partition {
    /// Next offset the writer assigns. Written only by the writer thread.
    pub(crate) log_end: AtomicU64,
    /// One past the last durable offset. Advanced by the flusher after each flush.
    pub(crate) high_watermark: AtomicU64,
    /// First offset still stored. Advanced by retention.
    pub(crate) log_start: AtomicU64,
    /// Bytes of stored chunks, for size retention and reporting.
    pub(crate) size_bytes: AtomicU64,
    /// Woken when the high watermark moves, for long-polling readers.
    pub(crate) advanced: Notify,
    /// Compaction state, touched only by the cleaner thread.
    pub(crate) compaction: parking_lot::Mutex<CompactionState>,
}

/// When compaction has nothing to do: the log has not grown since the last pass and
/// no kept tombstone has expired yet.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct CompactionState {
    /// High watermark the last pass covered.
    pub compacted_to: u64,
    /// Earliest time (ms) a tombstone kept by the last pass expires.
    pub next_expiry_ms: Option<i64>,
}

impl CompactionState {
    pub(crate) fn is_clean(&self, hw: u64, now: i64) -> bool {
        hw == self.compacted_to && self.next_expiry_ms.is_none_or(|t| now < t)
    }
}

impl Partition {
    /// One past the last readable offset.
    pub fn high_watermark(&self) -> u64 {
        self.high_watermark.load(Ordering::Acquire)
    }

    /// First offset still stored.
    pub fn log_start_offset(&self) -> u64 {
        self.log_start.load(Ordering::Acquire)
    }

    /// `(log start, high watermark)` now, if a read may start at `offset`; else
    /// `OffsetOutOfRange`.
    pub fn readable_from(&self, offset: u64) -> Result<(u64, u64)> {
        let high_watermark = self.high_watermark();
        let log_start_offset = self.log_start_offset();
        if offset < log_start_offset || offset > high_watermark {
            return Err(StorageError::OffsetOutOfRange {
                offset,
                log_start_offset,
                high_watermark,
            });
        }
        Ok((log_start_offset, high_watermark))
    }

    /// Bytes stored.
    pub fn size_bytes(&self) -> u64 {
        self.size_bytes.load(Ordering::Relaxed)
    }

    /// Sets the first stored offset (retention moved it) and the stored bytes. For
    /// [`Log`](crate::Log) implementations.
    pub fn set_extent(&self, log_start: u64, size_bytes: u64) {
        self.log_start.fetch_max(log_start, Ordering::AcqRel);
        self.size_bytes.store(size_bytes, Ordering::Relaxed);
    }

    /// Waits until the high watermark passes `offset`, or `timeout` elapses.
    /// Returns whether data is available. Woken by the flusher, not by polling.
    pub async fn wait_beyond(&self, offset: u64, timeout: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let notified = self.advanced.notified();
            tokio::pin!(notified);
            // Register before checking, so an advance between the check and the
            // await is not missed.
            notified.as_mut().enable();
            if self.high_watermark() > offset {
                return true;
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                return self.high_watermark() > offset;
            }
        }
    }

    /// Moves the high watermark to `end` (never back) and wakes waiting readers. For
    /// [`Log`](crate::Log) implementations, once everything below `end` is durable.
    pub fn advance_to(&self, end: u64) {
        let prev = self.high_watermark.fetch_max(end, Ordering::AcqRel);
        if end > prev {
            self.advanced.notify_waiters();
        }
    }
}

/// A topic as persisted in the metadata tree: its id and config.
#[derive(Debug, serde::Serialize, serde::Deserialize)]
pub(crate) struct TopicRecord {
    pub(crate) id: u32,
    pub(crate) config: TopicConfig,
}
