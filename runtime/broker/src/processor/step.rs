//! One exactly-once step of a processor on one input partition.
//!
//! A step reads the next records after the offset its consumer group
//! (`processor.<name>`) committed, splits windowed events into on-time ones (with the
//! windows still open for them) and late ones (to the late policy), hands the on-time
//! ones to the processor's [`Logic`], moves the watermark, closes the windows it
//! passed (the logic emits their results), and stores everything with one
//! [`Broker::produce_committing`]: outputs, late copies, state changes, the
//! watermark and open windows, and the consumed offset. A crash before that append
//! leaves the committed state as it was and the step runs again on the same records;
//! after it, nothing of the step is repeated. A failed step is undone in memory too.
//!
//! The watermark, the open windows and the timers live in the processor's state
//! under a system prefix (`proc-sys/`), so a restart resumes them by reading, with
//! the offset. Timers due by the broker's clock fire at a step too, with or without
//! records. A step commits only while its run's [`Lease`] is current (fencing).
//!
//! Windows are per record key (a record without one has the empty key). Outputs and
//! late copies are new records: their timestamps are their append times.

use std::sync::Arc;
use std::time::Duration;

use weir_storage::{ReadLimits, RecordView, Topic};

use super::keyed::Keyed;
use super::lease::Lease;
use super::state::PartitionState;
use super::windows::{OpenWindows, Sessions, Watermark, Window, WindowKind};
use crate::{Acks, Broker, BrokerError, Result};

/// Why a logic's call failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LogicError {
    /// It failed on this batch (its data or its code): retried, then the records
    /// it keeps failing on are dead-lettered.
    Failed(String),
    /// It cannot run now, whatever the batch (no loadable version, quarantined, a
    /// state layout it cannot read): retried, records kept.
    Blocked(String),
}

impl From<String> for LogicError {
    fn from(reason: String) -> Self {
        LogicError::Failed(reason)
    }
}

/// A failure of `close` or `fire`: whatever the step's records, it fails again, so no
/// record is to blame (none is dead-lettered); the processor waits until the plugin
/// is fixed.
fn not_the_input(e: LogicError, what: &str) -> LogicError {
    match e {
        LogicError::Failed(reason) | LogicError::Blocked(reason) => {
            LogicError::Blocked(format!("{what} failed: {reason}"))
        }
    }
}

/// What a logic's calls return.
pub type LogicResult<T> = std::result::Result<T, LogicError>;

/// What a processor does with its input: the plugin, as a step sees it.
pub trait Logic: Send {
    /// A step begins: a logic that can change between steps (a plugin's new
    /// version) settles here; an error fails the step before anything is read.
    fn begin(&mut self) -> LogicResult<()> {
        Ok(())
    }

    /// Each event's time, when the processor takes it from the value; `None` (the
    /// default) uses the record's timestamp.
    fn event_times(&mut self, events: &[RecordView<'_>]) -> LogicResult<Vec<Option<i64>>> {
        Ok(vec![None; events.len()])
    }

    /// On-time events of one partition, in offset order.
    fn process(
        &mut self,
        batch: &Batch<'_>,
        events: &[InputEvent<'_>],
        out: &mut Vec<Output>,
    ) -> LogicResult<()>;

    /// Windows that closed, with their keys, earliest end first: emit their results.
    fn close(
        &mut self,
        batch: &Batch<'_>,
        closed: &[(Vec<u8>, Window)],
        out: &mut Vec<Output>,
    ) -> LogicResult<()>;

    /// Timers that are due, by key (none by default).
    fn fire(
        &mut self,
        _batch: &Batch<'_>,
        _keys: &[Vec<u8>],
        _out: &mut Vec<Output>,
    ) -> LogicResult<()> {
        Ok(())
    }
}

/// What a logic's call works on: the input partition, the clock, the state.
#[derive(Debug)]
pub struct Batch<'a> {
    /// The input topic.
    pub topic: &'a Topic,
    /// The input partition.
    pub partition: u32,
    /// The broker's clock at the step's start (ms).
    pub now_ms: i64,
    /// The partition's state and timers.
    pub keyed: &'a Keyed,
}

/// An on-time event and the windows it counts in (none without windows).
#[derive(Debug)]
pub struct InputEvent<'a> {
    /// The record.
    pub record: RecordView<'a>,
    /// Its event time.
    pub time_ms: i64,
    /// Its windows still open.
    pub windows: Vec<Window>,
    /// Session windows of its key that this event joined into its one window: their
    /// state belongs to that window from now on.
    pub merged: Vec<Window>,
}

/// A record a processor emits.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Output {
    /// The topic it goes to.
    pub topic: String,
    /// Its key.
    pub key: Option<Vec<u8>>,
    /// Its value.
    pub value: Option<Vec<u8>>,
    /// The value is JSON text.
    pub value_is_json: bool,
    /// Its headers.
    pub headers: Vec<(String, Vec<u8>)>,
    /// The window whose result it is: stamped as `weir-window-start` and
    /// `weir-window-end` headers (ms).
    pub window: Option<Window>,
}

/// Where events too late for every window of theirs go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LatePolicy {
    /// Counted and dropped.
    Drop,
    /// Copied to this topic with a `weir-late: true` header (a side output or a
    /// dead-letter topic).
    Topic(String),
}

/// How a processor groups its input in time.
#[derive(Debug, Clone)]
pub struct Timing {
    /// Its windows; `None` for a processor without windows.
    pub windows: Option<WindowKind>,
    /// How long after a window's end its events are still accepted.
    pub allowed_lateness_ms: i64,
    /// What happens to later events.
    pub late: LatePolicy,
}

impl Timing {
    /// The timing `[processor]` declares for input `input` of processor `name`.
    pub fn of(settings: &weir_host::ProcessorSettings, name: &str, input: &str) -> Timing {
        Timing {
            windows: settings.windows.map(WindowKind::from),
            allowed_lateness_ms: settings.allowed_lateness_ms,
            late: match settings.late_topic_of(name, input) {
                Some(topic) => LatePolicy::Topic(topic),
                None => LatePolicy::Drop,
            },
        }
    }
}

/// What one step did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct StepReport {
    /// Records read (and consumed).
    pub records: usize,
    /// Of those, late ones.
    pub late: usize,
    /// Windows closed.
    pub closed: usize,
    /// Timers fired.
    pub fired: usize,
    /// Records emitted (late copies included).
    pub emitted: usize,
    /// Records retention removed before they were processed.
    pub skipped: u64,
}

/// A processor's run on one input partition.
#[derive(Debug)]
pub struct PartitionRun {
    name: String,
    group: String,
    topic: Arc<Topic>,
    partition: u32,
    timing: Timing,
    keyed: Keyed,
    system: PartitionState,
    lease: Lease,
    watermark: Watermark,
    open: OpenWindows<Vec<u8>>,
    next: u64,
    /// A step started and did not finish (its future was dropped): the memory may
    /// differ from what is stored, so the run must be restored.
    interrupted: bool,
}

const WATERMARK: &[u8] = b"m";
/// Most timers fired by one step.
const TIMERS_PER_STEP: usize = 10_000;
const WINDOW: &[u8] = b"w/";

fn window_key(key: &[u8], w: Window) -> Vec<u8> {
    let mut k = WINDOW.to_vec();
    k.extend_from_slice(&w.end_ms.to_be_bytes());
    k.extend_from_slice(&w.start_ms.to_be_bytes());
    k.extend_from_slice(key);
    k
}

impl PartitionRun {
    /// Resumes processor `name` on `partition` of `topic` from what was committed,
    /// with the partition number's `keyed` state (shared by the processor's inputs);
    /// its steps commit under `lease`.
    pub fn restore(
        broker: &Broker,
        name: &str,
        (topic, partition): (Arc<Topic>, u32),
        keyed: Keyed,
        timing: Timing,
        lease: Lease,
    ) -> Result<Self> {
        let group = format!("processor.{name}");
        let part = topic.partition(partition)?;
        let next = match broker.groups().committed(&group, &topic, partition)? {
            Some((offset, _)) => offset.max(part.log_start_offset()),
            None => part.log_start_offset(),
        };
        let mut system = PartitionState::system(broker.log().clone(), name, &topic, partition);
        let mut watermark = Watermark::new(timing.allowed_lateness_ms);
        if let Some(bytes) = system.get(WATERMARK)? {
            let max = bytes.try_into().map(i64::from_be_bytes).map_err(|_| {
                BrokerError::Internal(format!("processor '{name}': a damaged watermark"))
            })?;
            watermark.observe(max);
        }
        let mut open = OpenWindows::new();
        for (k, _) in system.scan(WINDOW, None, usize::MAX)? {
            let Some(rest) = k.get(WINDOW.len()..).filter(|r| r.len() >= 16) else {
                continue;
            };
            let end = i64::from_be_bytes(rest[..8].try_into().expect("8 bytes"));
            let start = i64::from_be_bytes(rest[8..16].try_into().expect("8 bytes"));
            open.open(
                rest[16..].to_vec(),
                Window {
                    start_ms: start,
                    end_ms: end,
                },
            );
        }
        Ok(PartitionRun {
            name: name.to_string(),
            group,
            topic,
            partition,
            timing,
            keyed,
            system,
            lease,
            watermark,
            open,
            next,
            interrupted: false,
        })
    }

    /// The offset the next step reads from.
    pub fn next_offset(&self) -> u64 {
        self.next
    }

    /// The partition's watermark and how many windows are open.
    pub fn progress(&self) -> (Watermark, usize) {
        (self.watermark, self.open.len())
    }

    /// The partition's state and timers.
    pub fn keyed(&self) -> &Keyed {
        &self.keyed
    }

    /// The input topic.
    pub fn topic(&self) -> &Arc<Topic> {
        &self.topic
    }

    /// The input partition.
    pub fn partition(&self) -> u32 {
        self.partition
    }

    /// When the next step is due for a timer, if one is set.
    pub fn next_timer(&self) -> Option<i64> {
        self.keyed.next_timer()
    }

    /// Runs one step: waits up to `wait` for records, then processes and stores up
    /// to `limits` of them. Nothing read: an empty report.
    pub async fn step(
        &mut self,
        broker: &Broker,
        logic: &mut dyn Logic,
        limits: ReadLimits,
        wait: Duration,
    ) -> Result<StepReport> {
        if self.interrupted {
            return Err(BrokerError::Internal(
                "a step of this processor was interrupted; restore the run".into(),
            ));
        }
        // Retention may have removed records not processed yet: go on from the start.
        let start = self.topic.partition(self.partition)?.log_start_offset();
        let skipped = start.saturating_sub(self.next);
        self.next = self.next.max(start);
        // Wait no longer than until the next timer is due.
        let now = crate::now_ms();
        let wait = match self.next_timer() {
            Some(at) => wait.min(Duration::from_millis(at.saturating_sub(now).max(0) as u64)),
            None => wait,
        };
        let read = broker
            .fetch(&self.topic, self.partition, self.next, limits, wait)
            .await?;
        if read.count == 0 && self.next_timer().is_none_or(|at| at > crate::now_ms()) {
            return Ok(StepReport {
                skipped,
                ..StepReport::default()
            });
        }
        let watermark = self.watermark;
        self.open.mark();
        self.interrupted = true;
        let result = self.run(broker, logic, &read).await;
        self.interrupted = false;
        match &result {
            Ok(_) => {
                self.keyed.kept();
                self.system.kept();
                if read.count > 0 {
                    self.next = read.next_offset;
                }
            }
            Err(_) => {
                self.keyed.discard();
                self.system.discard();
                self.watermark = watermark;
                self.open.rollback();
            }
        }
        result.map(|report| StepReport { skipped, ..report })
    }

    async fn run(
        &mut self,
        broker: &Broker,
        logic: &mut dyn Logic,
        read: &weir_storage::ReadResult,
    ) -> Result<StepReport> {
        let name = self.name.clone();
        let plugin_failed = |e: LogicError| match e {
            LogicError::Failed(reason) => BrokerError::ProcessorFailed {
                processor: name.clone(),
                reason,
            },
            LogicError::Blocked(reason) => BrokerError::ProcessorBlocked {
                processor: name.clone(),
                reason,
            },
        };
        logic.begin().map_err(plugin_failed)?;
        let records: Vec<RecordView<'_>> = read.records().collect();
        let times = if records.is_empty() {
            Vec::new()
        } else {
            logic.event_times(&records).map_err(plugin_failed)?
        };
        if times.len() != records.len() {
            return Err(plugin_failed(LogicError::Failed(format!(
                "{} event times for {} events",
                times.len(),
                records.len()
            ))));
        }
        let mut report = StepReport {
            records: records.len(),
            ..StepReport::default()
        };
        let (mut events, mut late, mut out) = (Vec::new(), Vec::new(), Vec::new());
        for (record, time) in records.into_iter().zip(times) {
            let time_ms = time.unwrap_or(record.timestamp_ms);
            let key = record.key.unwrap_or_default().to_vec();
            let (windows, merged) = match self.timing.windows {
                None => (Vec::new(), Vec::new()),
                Some(WindowKind::Session { gap_ms }) => {
                    // Only sessions still open: one the watermark passed is emitted
                    // (or will be at this step's end, whatever the batch's bounds).
                    let candidates: Vec<Window> = self
                        .open
                        .of_key(&key)
                        .into_iter()
                        .filter(|w| !self.watermark.closes(*w))
                        .collect();
                    let merge = Sessions { gap_ms }.add(time_ms, &candidates);
                    if self.watermark.closes(merge.into) {
                        late.push(record);
                        continue;
                    }
                    for absorbed in &merge.absorbed {
                        self.open.forget(&key, *absorbed);
                        self.system.delete(&window_key(&key, *absorbed));
                    }
                    self.open_window(&key, merge.into);
                    let merged = merge
                        .absorbed
                        .into_iter()
                        .filter(|w| *w != merge.into)
                        .collect();
                    (vec![merge.into], merged)
                }
                Some(kind) => {
                    let open = self.watermark.still_open(&kind.windows_of(time_ms));
                    if open.is_empty() {
                        late.push(record);
                        continue;
                    }
                    for w in &open {
                        self.open_window(&key, *w);
                    }
                    (open, Vec::new())
                }
            };
            self.watermark.observe(time_ms);
            events.push(InputEvent {
                record,
                time_ms,
                windows,
                merged,
            });
        }
        report.late = late.len();
        let batch = Batch {
            topic: &self.topic,
            partition: self.partition,
            now_ms: crate::now_ms(),
            keyed: &self.keyed,
        };
        if !events.is_empty() {
            logic
                .process(&batch, &events, &mut out)
                .map_err(plugin_failed)?;
        }
        if self.keyed.overflowed() {
            return Err(plugin_failed(LogicError::Failed(format!(
                "the batch wrote more than {} MiB of state; lower batch_max",
                super::keyed::MAX_STAGED_BYTES >> 20
            ))));
        }
        let closed = self.open.close(&self.watermark);
        if !closed.is_empty() {
            for (key, w) in &closed {
                self.system.delete(&window_key(key, *w));
            }
            logic
                .close(&batch, &closed, &mut out)
                .map_err(|e| plugin_failed(not_the_input(e, "closing windows")))?;
        }
        report.closed = closed.len();
        let due = self.keyed.take_due(batch.now_ms, TIMERS_PER_STEP);
        if !due.is_empty() {
            logic
                .fire(&batch, &due, &mut out)
                .map_err(|e| plugin_failed(not_the_input(e, "firing timers")))?;
        }
        report.fired = due.len();
        if self.keyed.overflowed() {
            return Err(plugin_failed(LogicError::Blocked(format!(
                "closing windows or firing timers wrote more than {} MiB of state",
                super::keyed::MAX_STAGED_BYTES >> 20
            ))));
        }
        if let Some(max) = self.watermark.max_ms {
            self.system.put(WATERMARK, &max.to_be_bytes());
        }
        let mut commit = self.keyed.staged_ops();
        commit.extend(self.system.staged_ops());
        if read.count > 0 {
            commit.extend(broker.groups().commit_ops(
                &self.group,
                &[(
                    self.topic.name().to_string(),
                    self.partition,
                    read.next_offset,
                )],
            )?);
        }
        let outputs = self.outputs(broker, &out, &late)?;
        report.emitted = outputs.iter().map(|(_, r)| r.len()).sum();
        let _lease = self.lease.hold().await?;
        broker
            .produce_committing(&outputs, commit, Acks::All, None)
            .await?;
        Ok(report)
    }

    fn open_window(&mut self, key: &[u8], w: Window) {
        self.open.open(key.to_vec(), w);
        self.system.put(&window_key(key, w), b"");
    }
}

mod outputs;
mod poison;
#[cfg(test)]
mod tests;
