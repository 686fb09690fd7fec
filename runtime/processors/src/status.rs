//! What a processor is doing and has done, as the API, the CLI and `/metrics` show
//! it: its run state, counters, last error, and each input partition's progress.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};

use parking_lot::Mutex;
use weir_connect::control::Desired;
use weir_connect::{LastFailure, RunState};

/// Monotonic counters of one processor (kept across restarts of its tasks, not of
/// the broker).
#[derive(Debug, Default)]
pub struct Counters {
    /// Input records consumed.
    pub records: AtomicU64,
    /// Steps that stored something.
    pub batches: AtomicU64,
    /// Records emitted (late copies included).
    pub emitted: AtomicU64,
    /// Input records too late for their windows.
    pub late: AtomicU64,
    /// Windows closed.
    pub windows_closed: AtomicU64,
    /// Timers fired.
    pub timers_fired: AtomicU64,
    /// Failed steps.
    pub errors: AtomicU64,
    /// Input records moved to the dead-letter topic after failing every retry.
    pub dead_lettered: AtomicU64,
    /// Input records removed by retention before they were processed.
    pub skipped: AtomicU64,
}

/// Where one input partition is.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PartitionProgress {
    /// Input topic.
    pub topic: String,
    /// Partition.
    pub partition: u32,
    /// The next offset to process (everything before it is done).
    pub next_offset: u64,
    /// The highest event time seen (ms), if any.
    pub watermark_ms: Option<i64>,
    /// Windows open.
    pub windows_open: usize,
    /// Timers set.
    pub timers: usize,
}

/// A processor's live status, shared by its tasks and the readers.
#[derive(Debug)]
pub struct Tracker {
    state: Mutex<RunState>,
    last_error: Mutex<Option<(i64, String)>>,
    last_success_ms: AtomicU64,
    generation: AtomicU64,
    partitions: Mutex<BTreeMap<(String, u32), PartitionProgress>>,
    /// Counters.
    pub counters: Counters,
}

impl Default for Tracker {
    fn default() -> Self {
        Tracker {
            state: Mutex::new(RunState::Starting),
            last_error: Mutex::new(None),
            last_success_ms: AtomicU64::new(0),
            generation: AtomicU64::new(0),
            partitions: Mutex::new(BTreeMap::new()),
            counters: Counters::default(),
        }
    }
}

impl Tracker {
    pub(crate) fn set(&self, state: RunState) {
        *self.state.lock() = state;
    }

    /// The current state.
    pub fn state(&self) -> RunState {
        *self.state.lock()
    }

    pub(crate) fn failed(&self, message: String) {
        self.counters.errors.fetch_add(1, Ordering::Relaxed);
        *self.last_error.lock() = Some((weir_broker::now_ms(), message));
    }

    pub(crate) fn blocked(&self, message: String) {
        self.set(RunState::Failed);
        let mut last = self.last_error.lock();
        // The same reason again is no news (the reconcile loop re-checks often).
        if last.as_ref().is_none_or(|(_, m)| *m != message) {
            *last = Some((weir_broker::now_ms(), message));
        }
    }

    pub(crate) fn clear_error(&self) {
        *self.last_error.lock() = None;
    }

    pub(crate) fn succeeded(&self) {
        self.last_success_ms
            .store(weir_broker::now_ms().max(0) as u64, Ordering::Relaxed);
    }

    pub(crate) fn started(&self, generation: u64, partitions: Vec<PartitionProgress>) {
        self.generation.store(generation, Ordering::Relaxed);
        *self.partitions.lock() = partitions
            .into_iter()
            .map(|p| ((p.topic.clone(), p.partition), p))
            .collect();
    }

    pub(crate) fn progress(&self, p: PartitionProgress) {
        self.partitions
            .lock()
            .insert((p.topic.clone(), p.partition), p);
    }

    /// Each input partition's progress, by topic and partition.
    pub fn partitions(&self) -> Vec<PartitionProgress> {
        self.partitions.lock().values().cloned().collect()
    }

    /// The generation of its running tasks (0: never started).
    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::Relaxed)
    }

    /// Its last error and when.
    pub fn last_error(&self) -> Option<LastFailure> {
        self.last_error
            .lock()
            .clone()
            .map(|(at_ms, message)| LastFailure { at_ms, message })
    }

    /// Its last successful step (ms since the epoch).
    pub fn last_success_ms(&self) -> Option<u64> {
        Some(self.last_success_ms.load(Ordering::Relaxed)).filter(|t| *t > 0)
    }
}

/// One processor as `GET /v1/processors/{name}` shows it.
#[derive(Debug, Clone)]
pub struct ProcessorStatus {
    /// Plugin name.
    pub name: String,
    /// What it is doing.
    pub state: RunState,
    /// What an operator asked for.
    pub desired: Desired,
    /// The serving version (`name@hash`), if one is loaded.
    pub version: Option<String>,
    /// The generation its tasks commit under.
    pub generation: u64,
    /// The state layout the serving version declares.
    pub state_version: u32,
    /// Topics it consumes.
    pub inputs: Vec<String>,
    /// Topics it may emit to.
    pub outputs: Vec<String>,
    /// Its consumer group (`processor.<name>`).
    pub group: String,
    /// Records not processed yet, over every input partition.
    pub lag_records: Option<u64>,
    /// The lowest watermark over its input partitions (ms): every window ending
    /// before it (and its lateness) is closed.
    pub watermark_ms: Option<i64>,
    /// Windows open, over every input partition.
    pub windows_open: usize,
    /// Timers set, over every input partition.
    pub timers: usize,
    /// Each input partition.
    pub partitions: Vec<PartitionProgress>,
    /// Counters: records, batches, emitted, late, windows closed, timers fired,
    /// errors, dead-lettered, skipped.
    pub counters: BTreeMap<&'static str, u64>,
    /// Last successful step (ms since the epoch).
    pub last_success_ms: Option<u64>,
    /// Last failure and when.
    pub last_error: Option<LastFailure>,
}

impl Counters {
    /// The counters by name.
    pub fn snapshot(&self) -> BTreeMap<&'static str, u64> {
        let c = |a: &AtomicU64| a.load(Ordering::Relaxed);
        BTreeMap::from([
            ("records", c(&self.records)),
            ("batches", c(&self.batches)),
            ("emitted", c(&self.emitted)),
            ("late", c(&self.late)),
            ("windows_closed", c(&self.windows_closed)),
            ("timers_fired", c(&self.timers_fired)),
            ("errors", c(&self.errors)),
            ("dead_lettered", c(&self.dead_lettered)),
            ("skipped", c(&self.skipped)),
        ])
    }
}
