//! Counters of the write path, read by metrics and benchmarks.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use parking_lot::Mutex;

/// A histogram with fixed bucket bounds, updated with relaxed atomics (no locks on
/// the flusher's path). Values are integers in the histogram's unit.
#[derive(Debug)]
pub struct AtomicHistogram {
    bounds: &'static [u64],
    /// One count per bound, then one for values above the last bound.
    counts: Vec<AtomicU64>,
    sum: AtomicU64,
}

/// A histogram read out: cumulative counts per upper bound (Prometheus style).
#[derive(Debug, Clone, PartialEq)]
pub struct HistogramSnapshot {
    /// `(upper bound, observations at or below it)`, ascending; the last is +Inf.
    pub buckets: Vec<(f64, u64)>,
    /// Sum of the observations.
    pub sum: f64,
    /// Number of observations.
    pub count: u64,
}

impl AtomicHistogram {
    fn new(bounds: &'static [u64]) -> Self {
        Self {
            bounds,
            counts: (0..=bounds.len()).map(|_| AtomicU64::new(0)).collect(),
            sum: AtomicU64::new(0),
        }
    }

    fn observe(&self, value: u64) {
        let i = self.bounds.partition_point(|b| *b < value);
        self.counts[i].fetch_add(1, Ordering::Relaxed);
        self.sum.fetch_add(value, Ordering::Relaxed);
    }

    /// The histogram with bounds and sum multiplied by `scale` (e.g. 1e-9 for
    /// nanoseconds to seconds).
    pub fn snapshot(&self, scale: f64) -> HistogramSnapshot {
        let mut cumulative = 0;
        let mut buckets = Vec::with_capacity(self.counts.len());
        for (i, c) in self.counts.iter().enumerate() {
            cumulative += c.load(Ordering::Relaxed);
            let bound = self
                .bounds
                .get(i)
                .map_or(f64::INFINITY, |b| *b as f64 * scale);
            buckets.push((bound, cumulative));
        }
        HistogramSnapshot {
            buckets,
            sum: self.sum.load(Ordering::Relaxed) as f64 * scale,
            count: cumulative,
        }
    }
}

/// Flush duration buckets, in nanoseconds (100 µs to 1 s).
const FLUSH_NANOS: &[u64] = &[
    100_000,
    250_000,
    500_000,
    1_000_000,
    2_500_000,
    5_000_000,
    10_000_000,
    25_000_000,
    50_000_000,
    100_000_000,
    250_000_000,
    1_000_000_000,
];
/// Records-per-flush buckets.
const FLUSH_RECORDS: &[u64] = &[1, 10, 100, 1_000, 10_000, 100_000];

/// Write-path counters. Cheap to update (relaxed atomics) from the writer and flusher.
#[derive(Debug)]
pub struct Stats {
    /// How long each flush (sled flush + fsync) took, in nanoseconds.
    pub flush_duration: AtomicHistogram,
    /// How many records each flush made durable.
    pub flush_records: AtomicHistogram,
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

impl Default for Stats {
    fn default() -> Self {
        Self {
            flush_duration: AtomicHistogram::new(FLUSH_NANOS),
            flush_records: AtomicHistogram::new(FLUSH_RECORDS),
            writes: AtomicU64::default(),
            write_nanos: AtomicU64::default(),
            records_written: AtomicU64::default(),
            flushes: AtomicU64::default(),
            flush_nanos: AtomicU64::default(),
            requests_flushed: AtomicU64::default(),
            failed: std::sync::atomic::AtomicBool::default(),
            failure: Mutex::default(),
        }
    }
}

impl Stats {
    /// Counts one write of `records` records that took `took` (a log's write step).
    pub fn record_write(&self, took: Duration, records: u64) {
        self.writes.fetch_add(1, Ordering::Relaxed);
        self.write_nanos
            .fetch_add(took.as_nanos() as u64, Ordering::Relaxed);
        self.records_written.fetch_add(records, Ordering::Relaxed);
    }

    /// Counts one flush (the step that makes writes durable) covering `requests`
    /// appends of `records` records.
    pub fn record_flush(&self, took: Duration, requests: u64, records: u64) {
        self.flush_duration.observe(took.as_nanos() as u64);
        if records > 0 {
            self.flush_records.observe(records);
        }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histograms_are_cumulative_and_scaled() {
        let h = AtomicHistogram::new(&[10, 100]);
        for v in [1, 10, 11, 500] {
            h.observe(v);
        }
        let s = h.snapshot(0.5);
        assert_eq!(s.buckets, vec![(5.0, 2), (50.0, 3), (f64::INFINITY, 4)]);
        assert_eq!((s.sum, s.count), (261.0, 4));
    }
}
