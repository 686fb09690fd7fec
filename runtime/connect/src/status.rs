//! What a connector is doing and has done: its state, counters and last error, as
//! the API, the CLI and `/metrics` show them.

use std::sync::atomic::{AtomicU64, Ordering};

use parking_lot::Mutex;

use crate::control::Desired;

/// What a connector is doing now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RunState {
    /// Waiting for its first call.
    Starting,
    /// Working.
    Running,
    /// Paused by an operator.
    Paused,
    /// Stopped by an operator.
    Stopped,
    /// Waiting before retrying a failed batch or poll.
    Backoff,
    /// Stopped by a failure (`on_failure = "pause"`, or its plugin did not load);
    /// `resume` retries.
    Failed,
}

impl RunState {
    /// The name used in metrics and tables.
    pub fn as_str(self) -> &'static str {
        match self {
            RunState::Starting => "starting",
            RunState::Running => "running",
            RunState::Paused => "paused",
            RunState::Stopped => "stopped",
            RunState::Backoff => "backoff",
            RunState::Failed => "failed",
        }
    }

    /// The state [`as_str`](Self::as_str) named (as another node reports it).
    pub fn parse(s: &str) -> Option<RunState> {
        [
            RunState::Starting,
            RunState::Running,
            RunState::Paused,
            RunState::Stopped,
            RunState::Backoff,
            RunState::Failed,
        ]
        .into_iter()
        .find(|r| r.as_str() == s)
    }
}

/// Monotonic counters of one connector (kept across restarts of its task, not of
/// the broker).
#[derive(Debug, Default)]
pub struct Counters {
    /// Events published (sources) or delivered (sinks).
    pub records: AtomicU64,
    /// Polls that returned events, or writes that succeeded.
    pub batches: AtomicU64,
    /// Failed polls or writes.
    pub errors: AtomicU64,
    /// Attempts after a failure.
    pub retries: AtomicU64,
    /// Events sent to the dead-letter topic.
    pub dead_lettered: AtomicU64,
}

/// A connector's live status, shared by its task and the readers.
#[derive(Debug)]
pub struct Tracker {
    pub(crate) state: Mutex<RunState>,
    pub(crate) last_error: Mutex<Option<(i64, String)>>,
    pub(crate) last_success_ms: AtomicU64,
    /// Counters.
    pub counters: Counters,
}

impl Default for Tracker {
    fn default() -> Self {
        Self {
            state: Mutex::new(RunState::Starting),
            last_error: Mutex::new(None),
            last_success_ms: AtomicU64::new(0),
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

    pub(crate) fn succeeded(&self, records: usize) {
        self.counters
            .records
            .fetch_add(records as u64, Ordering::Relaxed);
        self.counters.batches.fetch_add(1, Ordering::Relaxed);
        self.last_success_ms
            .store(weir_broker::now_ms().max(0) as u64, Ordering::Relaxed);
    }
}

/// One connector as `GET /v1/connectors/{name}` shows it.
#[derive(Debug, Clone)]
pub struct ConnectorStatus {
    /// Plugin name.
    pub name: String,
    /// In cluster mode, the node it runs on (`None`: no live node holds it).
    pub node: Option<String>,
    /// `source` or `sink`.
    pub kind: &'static str,
    /// What it is doing.
    pub state: RunState,
    /// What an operator asked for.
    pub desired: Desired,
    /// The serving version (`name@hash`), if one is loaded.
    pub version: Option<String>,
    /// Topics it reads (sink) or publishes to (source).
    pub topics: Vec<String>,
    /// A sink's consumer group.
    pub group: Option<String>,
    /// A sink's lag: records not yet delivered, over all partitions.
    pub lag_records: Option<u64>,
    /// Events published or delivered.
    pub records: u64,
    /// Successful polls with events, or writes.
    pub batches: u64,
    /// Failed polls or writes.
    pub errors: u64,
    /// Attempts after a failure.
    pub retries: u64,
    /// Events sent to the dead-letter topic.
    pub dead_lettered: u64,
    /// Calls refused because they were outside the grants.
    pub capability_refusals: u64,
    /// Last success (ms since the epoch).
    pub last_success_ms: Option<u64>,
    /// Last failure and when (ms since the epoch).
    pub last_error: Option<LastFailure>,
    /// How it runs (`[connector]` with defaults filled in).
    pub settings: weir_broker::plugins::ConnectorSettings,
}

/// A failure as shown in a status.
#[derive(Debug, Clone)]
pub struct LastFailure {
    /// When (ms since the epoch).
    pub at_ms: i64,
    /// What happened.
    pub message: String,
}
