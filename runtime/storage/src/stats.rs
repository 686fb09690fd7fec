//! Counters of the write path, read by metrics and benchmarks.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use parking_lot::Mutex;

/// Write-path counters. Cheap to update (relaxed atomics) from the writer and flusher.
#[derive(Debug, Default)]
pub struct Stats {
    writes: AtomicU64,
    write_nanos: AtomicU64,
    records_written: AtomicU64,
    flushes: AtomicU64,
    flush_nanos: AtomicU64,
    requests_flushed: AtomicU64,
    failed: std::sync::atomic::AtomicBool,
    failure: Mutex<Option<String>>,
}

/// A snapshot of [`Stats`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StatsSnapshot {
    /// Rounds written with one `apply_batch` each.
    pub writes: u64,
    /// Time spent in `apply_batch`.
    pub write_nanos: u64,
    /// Records written.
    pub records_written: u64,
    /// Flushes (fsyncs) done.
    pub flushes: u64,
    /// Time spent flushing.
    pub flush_nanos: u64,
    /// `acks=all` requests answered by those flushes.
    pub requests_flushed: u64,
}

impl Stats {
    pub(crate) fn record_write(&self, took: Duration, records: u64) {
        self.writes.fetch_add(1, Ordering::Relaxed);
        self.write_nanos
            .fetch_add(took.as_nanos() as u64, Ordering::Relaxed);
        self.records_written.fetch_add(records, Ordering::Relaxed);
    }

    pub(crate) fn record_flush(&self, took: Duration, requests: u64) {
        self.flushes.fetch_add(1, Ordering::Relaxed);
        self.flush_nanos
            .fetch_add(took.as_nanos() as u64, Ordering::Relaxed);
        self.requests_flushed.fetch_add(requests, Ordering::Relaxed);
    }

    pub(crate) fn set_failure(&self, msg: String) {
        self.failure.lock().get_or_insert(msg);
        self.failed.store(true, Ordering::Release);
    }

    /// The error that made the store refuse writes, if any.
    pub fn failure(&self) -> Option<String> {
        if !self.failed.load(Ordering::Acquire) {
            return None;
        }
        self.failure.lock().clone()
    }

    /// Reads all counters.
    pub fn snapshot(&self) -> StatsSnapshot {
        StatsSnapshot {
            writes: self.writes.load(Ordering::Relaxed),
            write_nanos: self.write_nanos.load(Ordering::Relaxed),
            records_written: self.records_written.load(Ordering::Relaxed),
            flushes: self.flushes.load(Ordering::Relaxed),
            flush_nanos: self.flush_nanos.load(Ordering::Relaxed),
            requests_flushed: self.requests_flushed.load(Ordering::Relaxed),
        }
    }
}
