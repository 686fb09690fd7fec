//! # weir-processors: stream processors as plugins
//!
//! A processor plugin consumes its input topics as its own consumer group
//! (`processor.<name>`), keeps keyed state per input partition, groups events in
//! event-time windows, sets timers, and emits records. This crate runs them: one task
//! per partition number, started, restarted and ended as the plugin directory
//! changes (a reconcile loop compares the registry with the running tasks), paused
//! and resumed by operators (persisted), reset, and described by
//! [`ProcessorStatus`]. The steps themselves, exactly once, are the broker's
//! ([`weir_broker::processor`]).
//!
//! - One task per partition number `p` steps partition `p` of every input in turn:
//!   they share the state of `p`, so the inputs must be co-partitioned (the same
//!   partition count, keyed alike), as a join of two topics needs.
//! - Every start of a processor's tasks takes a new generation; the tasks it replaces
//!   are fenced and commit nothing more (two runs never commit the same partition).
//! - A new version with the same `state_version` serves from the next batch and keeps
//!   the state; the tasks restart only when what they consume or how they window
//!   changes. A version with another `state_version` is not run until the processor
//!   is reset (`POST /v1/processors/{name}/reset`): its old state would be misread.
//! - Processors run on the embedded store only for now: in cluster mode they are
//!   listed, not run.

mod query;
mod run;
mod status;

use std::collections::HashMap;
use std::sync::{Arc, Weak};
use std::time::Duration;

use parking_lot::Mutex;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use weir_broker::plugins::{Kind, Manifest, ProcessorSettings, Registry, Slot};
use weir_broker::processor::lease::Generations;
use weir_broker::processor::reset;
use weir_broker::processor::step::{LatePolicy, Timing};
use weir_broker::{Broker, Topic};
use weir_connect::RunState;
use weir_connect::control::{self, Desired};

pub use query::StateEntry;
pub use status::{Counters, PartitionProgress, ProcessorStatus, Tracker};
pub use weir_broker::processor::reset::ResetTo;

use crate::run::PartitionTask;

/// How often the plugin directory's state is compared with the running tasks.
const RECONCILE_EVERY: Duration = Duration::from_millis(250);
/// How long a processor that could not start waits before it is tried again.
const RETRY_START: Duration = Duration::from_secs(5);
/// How long shutdown waits for tasks to finish their step.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);
/// Where operators' pause/resume wishes are kept.
const WISHES: &str = "processor";
/// Where the state layout of each processor's stored state is kept.
const STATE_VERSIONS: &str = "processor-state-version";

/// Why a processor operation failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ProcessorError {
    /// No processor plugin of that name is installed.
    #[error("no processor named '{0}' (processors are processor plugins in the plugin directory)")]
    NotFound(String),
    /// The processor cannot be reset now.
    #[error("{0}")]
    Invalid(String),
    /// The broker failed.
    #[error(transparent)]
    Broker(#[from] weir_broker::BrokerError),
}

impl ProcessorError {
    /// Stable, machine-readable code.
    pub fn code(&self) -> &'static str {
        match self {
            ProcessorError::NotFound(_) => "processor_not_found",
            ProcessorError::Invalid(_) => "invalid_request",
            ProcessorError::Broker(e) => e.code(),
        }
    }
}

/// The processor manager. Cheap to clone; [`shutdown`](Self::shutdown) stops it.
#[derive(Debug, Clone)]
pub struct Processors {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    broker: Broker,
    registry: Arc<Registry>,
    /// Cluster mode: processors are listed, not run.
    clustered: bool,
    generations: Generations,
    runs: Mutex<HashMap<String, Run>>,
    trackers: Mutex<HashMap<String, Arc<Tracker>>>,
    reconciler: Mutex<Option<JoinHandle<()>>>,
    /// Reconciling and resetting take turns: a reset must not race a restart.
    turn: tokio::sync::Mutex<()>,
}

/// A processor's running tasks. Dropping `desired` ends them at their next step.
#[derive(Debug)]
struct Run {
    fingerprint: String,
    desired: watch::Sender<Desired>,
    tasks: Vec<JoinHandle<()>>,
    /// It could not start (no tasks): tried again after [`RETRY_START`].
    failed_at: Option<std::time::Instant>,
}

impl Processors {
    /// Starts the manager: processors in the registry start now and as they appear.
    /// Must be called inside a tokio runtime.
    pub fn start(broker: Broker, registry: Arc<Registry>, clustered: bool) -> Self {
        let inner = Arc::new(Inner {
            broker,
            registry,
            clustered,
            generations: Generations::default(),
            runs: Mutex::new(HashMap::new()),
            trackers: Mutex::new(HashMap::new()),
            reconciler: Mutex::new(None),
            turn: tokio::sync::Mutex::new(()),
        });
        let weak: Weak<Inner> = Arc::downgrade(&inner);
        let handle = control::reconcile_every(weak, RECONCILE_EVERY, |inner| async move {
            inner.reconcile().await
        });
        *inner.reconciler.lock() = Some(handle);
        Processors { inner }
    }

    /// Ends every task at its next step boundary, waiting up to 10 s. What is not
    /// committed by then runs again after a restart, exactly once all the same.
    pub async fn shutdown(&self) {
        if let Some(h) = self.inner.reconciler.lock().take() {
            h.abort();
        }
        // A reconcile in progress finishes (or is cancelled) before the runs go.
        let _turn = self.inner.turn.lock().await;
        let runs: Vec<Run> = self.inner.runs.lock().drain().map(|(_, r)| r).collect();
        let deadline = tokio::time::Instant::now() + SHUTDOWN_GRACE;
        for run in runs {
            drop(run.desired);
            for mut task in run.tasks {
                if tokio::time::timeout_at(deadline, &mut task).await.is_err() {
                    task.abort();
                }
            }
        }
    }

    /// Every processor, by name.
    pub fn list(&self) -> Vec<ProcessorStatus> {
        let mut names: Vec<String> = self
            .inner
            .registry
            .slots()
            .iter()
            .filter(|s| processor_manifest(s).is_some())
            .map(|s| s.name().to_string())
            .collect();
        names.sort();
        names.iter().filter_map(|n| self.status(n)).collect()
    }

    /// One processor's status.
    pub fn status(&self, name: &str) -> Option<ProcessorStatus> {
        let slot = self.inner.registry.get(name)?;
        let manifest = processor_manifest(&slot)?;
        let settings = manifest.processor.clone()?;
        let tracker = self.inner.tracker(name);
        let current = slot.current();
        let group = ProcessorSettings::group_of(name);
        let lag_records = self
            .inner
            .broker
            .groups()
            .lag_records(&group, &settings.inputs)
            .ok();
        let partitions = tracker.partitions();
        let last_error = tracker.last_error().or_else(|| {
            current.is_none().then(|| weir_connect::LastFailure {
                at_ms: 0,
                message: slot
                    .current_or_unavailable()
                    .err()
                    .map(|e| e.to_string())
                    .unwrap_or_default(),
            })
        });
        Some(ProcessorStatus {
            name: name.to_string(),
            state: if current.is_none() {
                RunState::Failed
            } else {
                tracker.state()
            },
            desired: control::load_in(&self.inner.broker, WISHES, name),
            version: current.as_ref().map(|p| p.version_tag()),
            generation: tracker.generation(),
            state_version: settings.state_version,
            inputs: settings.inputs.clone(),
            outputs: settings.outputs.clone(),
            group,
            lag_records,
            watermark_ms: partitions.iter().map(|p| p.watermark_ms).min().flatten(),
            windows_open: partitions.iter().map(|p| p.windows_open).sum(),
            timers: partitions.iter().map(|p| p.timers).sum(),
            partitions,
            counters: tracker.counters.snapshot(),
            last_success_ms: tracker.last_success_ms(),
            last_error,
        })
    }

    /// Pauses (`Desired::Paused`) or resumes (`Desired::Running`) `name`, durably;
    /// its tasks follow at their next step.
    pub async fn set_desired(
        &self,
        name: &str,
        desired: Desired,
    ) -> Result<ProcessorStatus, ProcessorError> {
        let slot = self.slot(name)?;
        // Not between a reconcile's read of the wish and its passing it on.
        let _turn = self.inner.turn.lock().await;
        control::save_in(&self.inner.broker, WISHES, slot.name(), desired).await?;
        if let Some(run) = self.inner.runs.lock().get(name) {
            run.desired.send_replace(desired);
        }
        tracing::info!(processor = name, ?desired, "processor state set");
        self.status(name)
            .ok_or_else(|| ProcessorError::NotFound(name.to_string()))
    }

    /// Clears `name`'s state on every input partition and moves its offsets to
    /// `to`, in one append; its tasks start again (a new generation) from there,
    /// with the serving version's state layout. The offsets set.
    pub async fn reset(
        &self,
        name: &str,
        to: ResetTo,
    ) -> Result<Vec<(String, u32, u64)>, ProcessorError> {
        let _turn = self.inner.turn.lock().await;
        let slot = self.slot(name)?;
        let settings = processor_manifest(&slot)
            .and_then(|m| m.processor)
            .ok_or_else(|| ProcessorError::NotFound(name.to_string()))?;
        let inputs = self
            .inner
            .inputs(&settings)
            .map_err(ProcessorError::Invalid)?;
        // End the tasks; the new generation fences any still finishing a step.
        let ending = self.inner.runs.lock().remove(name);
        let lease = self
            .inner
            .generations
            .next(&self.inner.broker, name)
            .await?;
        let offsets = reset::reset(&self.inner.broker, name, &inputs, to, &lease).await?;
        if let Some(version) = slot
            .current()
            .map(|p| state_version(&p.manifest().processor))
        {
            self.inner
                .broker
                .save_state(STATE_VERSIONS, name, Some(version.to_be_bytes().to_vec()))
                .await?;
        }
        if let Some(run) = ending {
            drop(run.desired);
        }
        self.inner.tracker(name).clear_error();
        tracing::info!(processor = name, ?to, "processor reset");
        Ok(offsets)
    }

    /// The `state_version` of the state `name` has stored (`None` before it first
    /// ran): what a new version must declare to run without a reset.
    pub fn stored_state_version(&self, name: &str) -> Result<Option<u32>, ProcessorError> {
        Ok(self.inner.stored_state_version(name)?)
    }

    fn slot(&self, name: &str) -> Result<Arc<Slot>, ProcessorError> {
        self.inner
            .registry
            .get(name)
            .filter(|s| processor_manifest(s).is_some())
            .ok_or_else(|| ProcessorError::NotFound(name.to_string()))
    }
}

fn state_version(settings: &Option<ProcessorSettings>) -> u32 {
    settings.as_ref().map_or(1, |p| p.state_version)
}

impl Inner {
    fn tracker(&self, name: &str) -> Arc<Tracker> {
        self.trackers
            .lock()
            .entry(name.to_string())
            .or_default()
            .clone()
    }

    /// The layout version of `name`'s stored state, once it has run.
    fn stored_state_version(&self, name: &str) -> weir_broker::Result<Option<u32>> {
        Ok(self
            .broker
            .state(STATE_VERSIONS, name)?
            .and_then(|v| v.try_into().ok())
            .map(u32::from_be_bytes))
    }

    /// The input topics, or why one cannot be used.
    fn inputs(&self, settings: &ProcessorSettings) -> Result<Vec<Arc<Topic>>, String> {
        settings
            .inputs
            .iter()
            .map(|t| {
                self.broker
                    .topic(t)
                    .map_err(|e| format!("input topic '{t}': {e}"))
            })
            .collect()
    }

    /// Starts tasks for new processors, restarts those whose inputs, windows or
    /// state layout changed, ends those whose plugin went away, and passes on what
    /// operators asked for meanwhile.
    async fn reconcile(&self) {
        let _turn = self.turn.lock().await;
        let mut wanted: HashMap<String, (Arc<Slot>, Manifest)> = HashMap::new();
        for slot in self.registry.slots() {
            if let Some(plugin) = slot.current()
                && plugin.kind() == Kind::Processor
            {
                wanted.insert(
                    slot.name().to_string(),
                    (slot.clone(), plugin.manifest().clone()),
                );
            }
        }
        if self.clustered {
            for name in wanted.keys() {
                self.tracker(name).blocked(
                    "processors run on the embedded store only; in cluster mode they are not run"
                        .into(),
                );
            }
            return;
        }
        let fingerprints: HashMap<String, String> = wanted
            .iter()
            .map(|(name, (_, m))| (name.clone(), self.fingerprint(m)))
            .collect();
        let ending: Vec<(String, Run)> = self
            .runs
            .lock()
            .extract_if(|name, run| {
                fingerprints.get(name) != Some(&run.fingerprint)
                    || run.failed_at.is_some_and(|at| at.elapsed() >= RETRY_START)
            })
            .collect();
        for (name, run) in ending {
            tracing::info!(processor = %name, "processor tasks ending (plugin removed or reconfigured)");
            drop(run.desired);
        }
        for (name, (slot, manifest)) in wanted {
            let desired = control::load_in(&self.broker, WISHES, &name);
            if let Some(run) = self.runs.lock().get(&name) {
                run.desired
                    .send_if_modified(|d| std::mem::replace(d, desired) != desired);
                continue;
            }
            let fingerprint = fingerprints[&name].clone();
            let (tx, rx) = watch::channel(desired);
            let (tasks, failed_at) = match self.start(&name, slot, &manifest, rx).await {
                Ok(tasks) => (tasks, None),
                Err(reason) => {
                    // Tried again soon, and at once when the manifest or topics change.
                    self.tracker(&name).blocked(reason);
                    (Vec::new(), Some(std::time::Instant::now()))
                }
            };
            self.runs.lock().insert(
                name,
                Run {
                    fingerprint,
                    desired: tx,
                    tasks,
                    failed_at,
                },
            );
        }
    }

    /// What the tasks depend on besides the plugin's code: the settings, the inputs'
    /// partition counts (a new partition needs a task) and whether the outputs exist.
    fn fingerprint(&self, m: &Manifest) -> String {
        let partitions: Vec<String> = m
            .processor
            .iter()
            .flat_map(|p| p.inputs.iter().chain(&p.outputs))
            .map(|t| match self.broker.topic(t) {
                Ok(topic) => format!("{t}:{}", topic.partition_count()),
                Err(_) => format!("{t}:missing"),
            })
            .collect();
        format!("{:?}|{}", m.processor, partitions.join(","))
    }

    /// Starts one task per input partition under a new generation.
    async fn start(
        &self,
        name: &str,
        slot: Arc<Slot>,
        manifest: &Manifest,
        desired: watch::Receiver<Desired>,
    ) -> Result<Vec<JoinHandle<()>>, String> {
        let settings = manifest
            .processor
            .clone()
            .ok_or("a processor without [processor]")?;
        let inputs = self.inputs(&settings)?;
        let partitions = inputs[0].partition_count();
        if let Some(other) = inputs.iter().find(|t| t.partition_count() != partitions) {
            return Err(format!(
                "the inputs must be co-partitioned (the same partition count, keyed alike) to share state by partition: '{}' has {partitions}, '{}' has {}",
                inputs[0].name(),
                other.name(),
                other.partition_count()
            ));
        }
        if let Some(missing) = settings
            .outputs
            .iter()
            .find(|t| self.broker.topic(t).is_err())
        {
            return Err(format!(
                "output topic '{missing}' does not exist: create it (outputs are not created for you)"
            ));
        }
        let declared = settings.state_version;
        let stored = self.stored_state_version(name).map_err(|e| e.to_string())?;
        match stored {
            Some(v) if v != declared => {
                return Err(format!(
                    "the serving version declares state_version {declared} but the stored state has version {v}: reset the processor (POST /v1/processors/{name}/reset) to run it"
                ));
            }
            Some(_) => {}
            None => self
                .broker
                .save_state(STATE_VERSIONS, name, Some(declared.to_be_bytes().to_vec()))
                .await
                .map_err(|e| e.to_string())?,
        }
        for input in &inputs {
            let timing = Timing::of(&settings, name, input.name());
            if let LatePolicy::Topic(late) = &timing.late {
                self.broker
                    .ensure_topic(late, 1)
                    .await
                    .map_err(|e| format!("late topic '{late}': {e}"))?;
            }
        }
        let lease = self
            .generations
            .next(&self.broker, name)
            .await
            .map_err(|e| e.to_string())?;
        let tracker = self.tracker(name);
        let mut progress = Vec::new();
        let mut tasks = Vec::new();
        for partition in 0..partitions {
            progress.extend(inputs.iter().map(|input| PartitionProgress {
                topic: input.name().to_string(),
                partition,
                ..PartitionProgress::default()
            }));
            let task = PartitionTask {
                name: name.to_string(),
                broker: self.broker.clone(),
                slot: slot.clone(),
                settings: settings.clone(),
                state_version: declared,
                inputs: inputs.clone(),
                partition,
                lease: lease.clone(),
                tracker: tracker.clone(),
                desired: desired.clone(),
            };
            tasks.push(tokio::spawn(task.run()));
        }
        tracker.started(lease.generation(), progress);
        tracker.set(RunState::Running);
        tracing::info!(
            processor = name,
            generation = lease.generation(),
            partitions = tasks.len(),
            "processor tasks started"
        );
        Ok(tasks)
    }
}

/// The manifest of a processor slot (current, or the one that failed to load).
fn processor_manifest(slot: &Slot) -> Option<Manifest> {
    slot.manifest().filter(|m| m.kind == Kind::Processor)
}
