//! Replays: a stored range of a topic run through a chosen version of a filter or
//! transform, into another topic or into a diff report against another version,
//! beside the serving path.
//!
//! A replay reads the source partitions with plain reads (no consumer group, no
//! committed offsets: the source and its groups are untouched), calls the version
//! directly (not through its slot: the serving version's counters, breaker and
//! probation see nothing of it), and publishes what it keeps or produces to the
//! target topic with `acks=all`, each output stamped `weir-replay: name@hash`. A
//! batch the version fails on is retried one event at a time; the events that still
//! fail are counted and left out. The rate can be capped, so a replay does not crowd
//! out live traffic.
//!
//! A diff replay writes nothing: each batch goes through both versions (the chosen
//! one and, usually, the serving one, pinned when the replay starts) and each event's
//! outputs are compared as a shadow compares them: identical, different, only in the
//! old or only in the new version, errors of each, cost per event, samples.

use std::borrow::Cow;
use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use weir_host::packed::{self, Event, FLAG_VALUE_JSON, Writer};
use weir_host::registry::shadow::{ShadowReport, compare_versions};
use weir_host::{BatchInfo, Kind, Plugin};
use weir_storage::batch::ATTR_VALUE_JSON;
use weir_storage::{ReadLimits, Topic};

use crate::{Acks, Broker, BrokerError, NewRecord, Result};

/// Where a replay starts or ends in each source partition.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Position {
    /// The first offset still stored.
    Earliest,
    /// The end (the high watermark when the replay starts).
    Latest,
    /// This offset, in every partition (clamped to what is stored).
    Offset(u64),
    /// The first record appended at or after this time (ms since the epoch).
    Time(i64),
}

/// What to replay.
#[derive(Debug, Clone)]
pub struct ReplaySpec {
    /// The topic read.
    pub source: Arc<Topic>,
    /// From (inclusive).
    pub from: Position,
    /// To (exclusive).
    pub to: Position,
    /// Where the outputs go.
    pub target: Target,
    /// Most records read per second (`None`: as fast as it goes).
    pub max_rate: Option<u64>,
}

/// Where a replay's outputs go.
#[derive(Debug, Clone)]
pub enum Target {
    /// Published to this topic.
    Topic(Arc<Topic>),
    /// Compared with what this version makes of the same events; nothing written.
    Diff(Arc<Plugin>),
}

/// A replay's progress, shared with whoever watches it.
#[derive(Debug, Default)]
pub struct ReplayProgress {
    /// Records in the range.
    pub total: AtomicU64,
    /// Records read so far.
    pub read: AtomicU64,
    /// Records written to the target.
    pub written: AtomicU64,
    /// Records the version failed on (left out).
    pub failed: AtomicU64,
    /// Finished (successfully or not).
    pub done: AtomicBool,
    /// Why it stopped early, or the first event failure.
    pub error: Mutex<Option<String>>,
    /// Asked to stop.
    pub cancelled: AtomicBool,
}

/// Records per read and per call.
const BATCH: usize = 1000;

/// Each source partition's `[from, to)`.
type Ranges = Vec<(u32, u64, u64)>;

/// Runs `plugin` (a filter or transform version) over `ranges` of `spec`'s source;
/// progress goes to `progress` as it runs.
async fn run(
    broker: &Broker,
    plugin: Arc<Plugin>,
    spec: &ReplaySpec,
    ranges: Ranges,
    progress: &ReplayProgress,
    diff: Option<&Arc<ShadowReport>>,
) -> Result<()> {
    let tag = plugin.version_tag();
    let info = BatchInfo {
        topic: spec.source.name().to_string(),
        partitions: spec.source.partition_count(),
    };
    let started = Instant::now();
    for (partition, from, to) in ranges {
        let mut next = from;
        while next < to {
            if progress.cancelled.load(Ordering::Relaxed) {
                return Err(BrokerError::InvalidRequest(
                    "the replay was cancelled".into(),
                ));
            }
            let limits = ReadLimits {
                max_records: BATCH.min((to - next) as usize),
                max_bytes: 8 << 20,
            };
            let read = broker
                .fetch(&spec.source, partition, next, limits, Duration::ZERO)
                .await?;
            if read.count == 0 {
                break;
            }
            let records: Vec<_> = read.records().filter(|r| r.offset < to).collect();
            let mut w = Writer::with_capacity(records.len() * 128);
            for r in &records {
                let flags = if r.attributes & ATTR_VALUE_JSON != 0 {
                    FLAG_VALUE_JSON
                } else {
                    0
                };
                w.push(r.timestamp_ms, flags, r.key, r.value, r.headers());
            }
            let buf = w.finish();
            match (&spec.target, diff) {
                (Target::Diff(old), Some(report)) => {
                    let (old, new, info) = (old.clone(), plugin.clone(), info.clone());
                    let (count, report) = (records.len(), report.clone());
                    // Both versions run here: off the async workers.
                    tokio::task::spawn_blocking(move || {
                        compare_versions(&old, &new, &info, &buf, count, &report)
                    })
                    .await
                    .map_err(|e| BrokerError::Internal(format!("a diff batch panicked: {e}")))?;
                }
                (Target::Topic(into), _) => {
                    let (out, failed) = call_isolating(&plugin, &info, &buf, progress);
                    progress.failed.fetch_add(failed, Ordering::Relaxed);
                    if !out.is_empty() {
                        let events = packed::decode(&out).map_err(|e| {
                            BrokerError::Internal(format!(
                                "a checked plugin output did not decode: {e}"
                            ))
                        })?;
                        let batch: Vec<NewRecord<'_>> =
                            events.iter().map(|e| stamped(e, &tag)).collect();
                        broker.produce(into, &batch, Acks::All).await?;
                        progress
                            .written
                            .fetch_add(batch.len() as u64, Ordering::Relaxed);
                    }
                }
                (Target::Diff(_), None) => unreachable!("a diff replay has its report"),
            }
            let done = progress
                .read
                .fetch_add(records.len() as u64, Ordering::Relaxed)
                + records.len() as u64;
            next = read.next_offset.min(to);
            if let Some(rate) = spec.max_rate.filter(|r| *r > 0) {
                let due = Duration::from_secs_f64(done as f64 / rate as f64);
                if let Some(wait) = due.checked_sub(started.elapsed()) {
                    tokio::time::sleep(wait).await;
                }
            }
        }
    }
    Ok(())
}

/// Each source partition's `[from, to)`, resolved once at the start.
async fn ranges(broker: &Broker, spec: &ReplaySpec) -> Result<Ranges> {
    let mut out = Vec::new();
    for p in 0..spec.source.partition_count() {
        let part = spec.source.partition(p)?;
        let (start, end) = (part.log_start_offset(), part.high_watermark());
        let at = |pos: Position| async move {
            Ok::<u64, BrokerError>(match pos {
                Position::Earliest => start,
                Position::Latest => end,
                Position::Offset(o) => o.clamp(start, end),
                Position::Time(t) => broker.offset_for_timestamp(&spec.source, p, t).await?,
            })
        };
        let (from, to) = (at(spec.from).await?, at(spec.to).await?);
        if from < to {
            out.push((p, from, to));
        }
    }
    Ok(out)
}

/// The version's output for a packed batch: kept events (a filter) or produced ones
/// (a transform), packed, and how many input events it failed on. A failed batch is
/// called again one event at a time.
fn call_isolating(
    plugin: &Plugin,
    info: &BatchInfo,
    buf: &[u8],
    progress: &ReplayProgress,
) -> (Vec<u8>, u64) {
    let Ok(events) = packed::decode(buf) else {
        return (Vec::new(), 0);
    };
    match call(plugin, info, buf, &events) {
        Ok(out) => (out, 0),
        Err(_) if events.len() > 1 => {
            let mut w = Writer::with_capacity(buf.len());
            let mut failed = 0;
            for e in &events {
                let mut one = Writer::with_capacity(256);
                one.push_event(e);
                let one = one.finish();
                let single = packed::decode(&one).unwrap_or_default();
                match call(plugin, info, &one, &single) {
                    Ok(out) => {
                        for e in packed::decode(&out).unwrap_or_default() {
                            w.push_event(&e);
                        }
                    }
                    Err(reason) => {
                        failed += 1;
                        progress.error.lock().get_or_insert(reason);
                    }
                }
            }
            (w.finish(), failed)
        }
        Err(reason) => {
            progress.error.lock().get_or_insert(reason);
            (Vec::new(), events.len() as u64)
        }
    }
}

fn call(
    plugin: &Plugin,
    info: &BatchInfo,
    buf: &[u8],
    events: &[Event<'_>],
) -> std::result::Result<Vec<u8>, String> {
    match plugin.kind() {
        Kind::Filter => {
            let keep = plugin
                .filter(info, buf, events.len())
                .map_err(|e| e.to_string())?;
            let mut w = Writer::with_capacity(buf.len());
            for (e, k) in events.iter().zip(keep) {
                if k {
                    w.push_event(e);
                }
            }
            Ok(w.finish())
        }
        _ => plugin
            .transform(info, buf, events.len())
            .map(|t| t.events)
            .map_err(|e| e.to_string()),
    }
}

/// An output record: its key, value and headers, plus `weir-replay`.
fn stamped<'a>(e: &'a Event<'a>, tag: &str) -> NewRecord<'a> {
    let mut headers: Vec<(Cow<'a, str>, Cow<'a, [u8]>)> = e
        .headers()
        .map(|(n, v)| (Cow::Borrowed(n), Cow::Borrowed(v)))
        .collect();
    headers.push((
        Cow::Borrowed("weir-replay"),
        Cow::Owned(tag.as_bytes().to_vec()),
    ));
    NewRecord {
        key: e.key.map(Cow::Borrowed),
        value: e.value.map(Cow::Borrowed),
        value_is_json: e.value_is_json(),
        headers,
        partition: None,
    }
}

/// The replays started on this broker, by id (kept after they finish, for their
/// report, up to [`KEPT`]).
#[derive(Debug, Default)]
pub struct Replays {
    jobs: Mutex<HashMap<u64, Arc<Replay>>>,
    next_id: AtomicU64,
}

/// One replay and its progress.
#[derive(Debug)]
pub struct Replay {
    /// Its id.
    pub id: u64,
    /// The plugin.
    pub plugin: String,
    /// The version run (`name@hash`).
    pub version: String,
    /// Source topic.
    pub source: String,
    /// Target topic (`None` for a diff).
    pub into: Option<String>,
    /// A diff's comparison: the version it is compared with (`name@hash`) and what
    /// was found.
    pub diff: Option<(String, Arc<ShadowReport>)>,
    /// When it started (ms since the epoch).
    pub started_ms: i64,
    /// Its progress.
    pub progress: ReplayProgress,
}

/// Replays kept for their report.
const KEPT: usize = 100;

impl Replays {
    /// Starts replaying `spec` through `plugin` in the background, once its range is
    /// resolved (refused now if it cannot be, or if the plugin does not replay).
    pub async fn start(
        &self,
        broker: &Broker,
        plugin: Arc<Plugin>,
        spec: ReplaySpec,
    ) -> Result<Arc<Replay>> {
        if !matches!(plugin.kind(), Kind::Filter | Kind::Transform) {
            return Err(BrokerError::InvalidRequest(format!(
                "plugin '{}' is a {}: only filters and transforms replay",
                plugin.name(),
                plugin.kind().as_str()
            )));
        }
        if let Target::Diff(old) = &spec.target
            && old.kind() != plugin.kind()
        {
            return Err(BrokerError::InvalidRequest(format!(
                "a diff compares two versions of one kind: {} is a {}, {} a {}",
                plugin.version_tag(),
                plugin.kind().as_str(),
                old.version_tag(),
                old.kind().as_str()
            )));
        }
        let ranges = ranges(broker, &spec).await?;
        let id = self.next_id.fetch_add(1, Ordering::Relaxed) + 1;
        let replay = Arc::new(Replay {
            id,
            plugin: plugin.name().to_string(),
            version: plugin.version_tag(),
            source: spec.source.name().to_string(),
            into: match &spec.target {
                Target::Topic(t) => Some(t.name().to_string()),
                Target::Diff(_) => None,
            },
            diff: match &spec.target {
                Target::Topic(_) => None,
                Target::Diff(old) => Some((old.version_tag(), Arc::default())),
            },
            started_ms: crate::now_ms(),
            progress: ReplayProgress::default(),
        });
        let total = ranges.iter().map(|(_, from, to)| to - from).sum();
        replay.progress.total.store(total, Ordering::Relaxed);
        {
            let mut jobs = self.jobs.lock();
            if jobs.len() >= KEPT
                && let Some(oldest) = jobs
                    .values()
                    .filter(|r| r.progress.done.load(Ordering::Relaxed))
                    .map(|r| r.id)
                    .min()
            {
                jobs.remove(&oldest);
            }
            jobs.insert(id, replay.clone());
        }
        let (broker, job) = (broker.clone(), replay.clone());
        tokio::spawn(async move {
            let diff = job.diff.as_ref().map(|(_, report)| report);
            let result = run(&broker, plugin, &spec, ranges, &job.progress, diff).await;
            if let Err(e) = result {
                *job.progress.error.lock() = Some(e.to_string());
            }
            job.progress.done.store(true, Ordering::Relaxed);
        });
        Ok(replay)
    }

    /// A replay by id.
    pub fn get(&self, id: u64) -> Option<Arc<Replay>> {
        self.jobs.lock().get(&id).cloned()
    }

    /// Every replay kept, newest first.
    pub fn list(&self) -> Vec<Arc<Replay>> {
        let mut all: Vec<_> = self.jobs.lock().values().cloned().collect();
        all.sort_by_key(|r| std::cmp::Reverse(r.id));
        all
    }
}
