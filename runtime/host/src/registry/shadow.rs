//! Shadow versions: a candidate version of a filter or transform run beside the
//! serving one on the same batches, its outputs compared and dropped.
//!
//! The serving path only offers a batch (its events and the serving version's
//! answer, copied) to the shadow's own thread through a bounded queue: a full queue,
//! a batch outside the sample, or a shadow that has used more than its share of one
//! core skips the batch (counted), so shadowing never blocks or fails a request and
//! never changes what is stored or acknowledged. The candidate runs with a state of
//! its own in memory, so its writes reach nothing real.

use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{SyncSender, TrySendError, sync_channel};
use std::time::Instant;

use parking_lot::Mutex;

use crate::packed::{self, Event};
use crate::plugin::{BatchInfo, Plugin};

/// Batches waiting for the shadow's thread at most.
const QUEUE: usize = 16;
/// Differing events kept as samples.
const SAMPLES: usize = 10;
/// Bytes of a value kept in a sample (whole, so the chain's redacting steps can
/// read it before it is shown; shown shorter).
const SAMPLE_BYTES: usize = 64 << 10;

/// How a shadow runs.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ShadowSettings {
    /// Share of batches compared, in percent (1-100).
    pub sample_percent: u32,
    /// Most time the shadow may spend, as a share of one core since it started
    /// (0.25: a quarter); past it batches are skipped.
    pub max_share: f64,
}

impl Default for ShadowSettings {
    fn default() -> Self {
        ShadowSettings {
            sample_percent: 100,
            max_share: 0.25,
        }
    }
}

/// What the serving version answered for a batch.
#[derive(Debug)]
pub(crate) enum Served {
    /// A filter's flags.
    Kept(Vec<bool>),
    /// A transform's packed outputs and counts per input.
    Transformed(Vec<u8>, Vec<u32>),
}

/// A batch offered to the shadow.
struct Job {
    info: BatchInfo,
    events: Vec<u8>,
    count: usize,
    served: Served,
    serving_ns: u64,
}

/// One event on which the two versions differed: what each produced (values,
/// truncated).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Difference {
    /// `different`, `only_in_old` or `only_in_new`.
    pub kind: &'static str,
    /// The topic of the batch it was in.
    pub topic: String,
    /// The serving version's output values.
    pub old: Vec<Vec<u8>>,
    /// The candidate's.
    pub new: Vec<Vec<u8>>,
}

/// The comparison so far.
#[derive(Debug, Default)]
pub struct ShadowReport {
    /// Events compared.
    pub events: AtomicU64,
    /// Same output from both.
    pub identical: AtomicU64,
    /// Both produced something, not the same.
    pub different: AtomicU64,
    /// Only the serving version produced something.
    pub only_in_old: AtomicU64,
    /// Only the candidate did.
    pub only_in_new: AtomicU64,
    /// Events in batches the serving version failed on while shadowed.
    pub errors_old: AtomicU64,
    /// Events in batches the candidate failed on.
    pub errors_new: AtomicU64,
    /// Time the serving version took on the compared batches.
    pub serving_ns: AtomicU64,
    /// Time the candidate took.
    pub shadow_ns: AtomicU64,
    /// Batches compared.
    pub batches: AtomicU64,
    /// Batches not compared: outside the sample, queue full, or over the share.
    pub skipped: AtomicU64,
    /// Some of the differing events.
    pub samples: Mutex<VecDeque<Difference>>,
}

/// A candidate version shadowing the serving one.
#[derive(Debug)]
pub struct Shadow {
    /// The candidate.
    pub plugin: Arc<Plugin>,
    /// How it runs.
    pub settings: ShadowSettings,
    /// What it found.
    pub report: Arc<ShadowReport>,
    /// When it started (ms since the epoch).
    pub started_ms: u64,
    started: Instant,
    offered: AtomicU64,
    queue: Mutex<Option<SyncSender<Job>>>,
}

impl Shadow {
    /// Starts shadowing with `plugin` (its thread ends when the shadow is dropped).
    pub fn start(plugin: Arc<Plugin>, settings: ShadowSettings) -> Arc<Shadow> {
        let (tx, rx) = sync_channel::<Job>(QUEUE);
        let report = Arc::new(ShadowReport::default());
        let (candidate, seen) = (plugin.clone(), report.clone());
        std::thread::Builder::new()
            .name(format!("shadow-{}", plugin.name()))
            .spawn(move || {
                for job in rx {
                    compare(&candidate, &seen, job);
                }
            })
            .expect("spawning the shadow thread");
        Arc::new(Shadow {
            plugin,
            settings,
            report,
            started_ms: std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_millis() as u64),
            started: Instant::now(),
            offered: AtomicU64::new(0),
            queue: Mutex::new(Some(tx)),
        })
    }

    /// Stops its thread (after the batches queued).
    pub fn stop(&self) {
        self.queue.lock().take();
    }

    /// Whether the next batch is in the sample and within the share; counts a skip
    /// when it is not. Checked before anything is copied.
    pub(crate) fn wants(&self) -> bool {
        let n = self.offered.fetch_add(1, Ordering::Relaxed);
        // Spread evenly: batch n is in when the sample's running count steps up.
        let pct = u64::from(self.settings.sample_percent);
        let sampled = (n * pct) / 100 != ((n + 1) * pct) / 100;
        let budget = self.started.elapsed().as_nanos() as f64 * self.settings.max_share;
        let within = (self.report.shadow_ns.load(Ordering::Relaxed) as f64) <= budget;
        if !(sampled && within) {
            self.report.skipped.fetch_add(1, Ordering::Relaxed);
        }
        sampled && within
    }

    /// Hands a batch and the serving answer to the shadow's thread; a full queue
    /// skips it.
    pub(crate) fn offer(
        &self,
        info: &BatchInfo,
        events: &[u8],
        count: usize,
        served: Served,
        serving_ns: u64,
    ) {
        let job = Job {
            info: info.clone(),
            events: events.to_vec(),
            count,
            served,
            serving_ns,
        };
        let sent = match self.queue.lock().as_ref() {
            Some(tx) => tx.try_send(job),
            None => return,
        };
        if let Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) = sent {
            self.report.skipped.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// The serving version failed on a batch of `count` events while shadowed.
    pub(crate) fn serving_failed(&self, count: usize) {
        self.report
            .errors_old
            .fetch_add(count as u64, Ordering::Relaxed);
    }
}

/// An output event, owned, comparable.
#[derive(Debug, PartialEq, Eq)]
struct Owned {
    key: Option<Vec<u8>>,
    value: Option<Vec<u8>>,
    flags: u8,
    headers: Vec<(String, Vec<u8>)>,
}

/// Each input event's outputs.
type Outputs = Vec<Vec<Owned>>;

fn owned(e: &Event<'_>) -> Owned {
    Owned {
        key: e.key.map(<[u8]>::to_vec),
        value: e.value.map(<[u8]>::to_vec),
        flags: e.flags,
        headers: e
            .headers()
            .map(|(n, v)| (n.to_string(), v.to_vec()))
            .collect(),
    }
}

/// Splits a batch's answer into each input event's outputs.
fn per_event(events: &[Event<'_>], served: &Served) -> Option<Outputs> {
    match served {
        Served::Kept(flags) => Some(
            events
                .iter()
                .zip(flags)
                .map(|(e, k)| if *k { vec![owned(e)] } else { Vec::new() })
                .collect(),
        ),
        Served::Transformed(out, counts) => {
            let outputs = packed::decode(out).ok()?;
            let mut it = outputs.iter();
            Some(
                counts
                    .iter()
                    .map(|n| it.by_ref().take(*n as usize).map(owned).collect())
                    .collect(),
            )
        }
    }
}

/// Compares version `new` with version `old` on one packed batch of `count` events,
/// both called here, directly (not through their slot): a replay's diff report.
pub fn compare_versions(
    old: &Plugin,
    new: &Plugin,
    info: &BatchInfo,
    events: &[u8],
    count: usize,
    report: &ShadowReport,
) {
    let started = Instant::now();
    let served = match old.kind() {
        crate::Kind::Filter => old.filter(info, events, count).map(Served::Kept),
        _ => old
            .transform(info, events, count)
            .map(|t| Served::Transformed(t.events, t.counts)),
    };
    let serving_ns = started.elapsed().as_nanos() as u64;
    match served {
        Ok(served) => compare(
            new,
            report,
            Job {
                info: info.clone(),
                events: events.to_vec(),
                count,
                served,
                serving_ns,
            },
        ),
        Err(_) => {
            report.errors_old.fetch_add(count as u64, Ordering::Relaxed);
            report.events.fetch_add(count as u64, Ordering::Relaxed);
        }
    }
}

fn compare(candidate: &Plugin, report: &ShadowReport, job: Job) {
    let Ok(events) = packed::decode(&job.events) else {
        return;
    };
    let started = Instant::now();
    let answer = match &job.served {
        Served::Kept(_) => candidate
            .filter(&job.info, &job.events, job.count)
            .map(Served::Kept),
        Served::Transformed(..) => candidate
            .transform(&job.info, &job.events, job.count)
            .map(|t| Served::Transformed(t.events, t.counts)),
    };
    report
        .shadow_ns
        .fetch_add(started.elapsed().as_nanos() as u64, Ordering::Relaxed);
    report
        .serving_ns
        .fetch_add(job.serving_ns, Ordering::Relaxed);
    report.batches.fetch_add(1, Ordering::Relaxed);
    report.events.fetch_add(job.count as u64, Ordering::Relaxed);
    let (Ok(new), Some(old)) = (answer, per_event(&events, &job.served)) else {
        report
            .errors_new
            .fetch_add(job.count as u64, Ordering::Relaxed);
        return;
    };
    let Some(new) = per_event(&events, &new) else {
        report
            .errors_new
            .fetch_add(job.count as u64, Ordering::Relaxed);
        return;
    };
    for (old, new) in old.into_iter().zip(new) {
        let kind = match (old.is_empty(), new.is_empty()) {
            _ if old == new => {
                report.identical.fetch_add(1, Ordering::Relaxed);
                continue;
            }
            (false, true) => (&report.only_in_old, "only_in_old"),
            (true, false) => (&report.only_in_new, "only_in_new"),
            _ => (&report.different, "different"),
        };
        kind.0.fetch_add(1, Ordering::Relaxed);
        let mut samples = report.samples.lock();
        if samples.len() < SAMPLES {
            let values = |outs: Vec<Owned>| -> Vec<Vec<u8>> {
                outs.into_iter()
                    .map(|o| {
                        let mut v = o.value.unwrap_or_default();
                        v.truncate(SAMPLE_BYTES);
                        v
                    })
                    .collect()
            };
            samples.push_back(Difference {
                kind: kind.1,
                topic: job.info.topic.clone(),
                old: values(old),
                new: values(new),
            });
        }
    }
}
