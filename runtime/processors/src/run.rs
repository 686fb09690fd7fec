//! One partition number's task: restore the state of partition `p` and the run of
//! each input's partition `p` (they share the state: the inputs are co-partitioned)
//! from what was committed, then step them in turn until the processor is paused,
//! replaced or fenced.
//!
//! Failures are told apart by what they say about the input:
//! - the plugin failed on a batch (`processor_failed`): retried with backoff; after
//!   [`RETRIES`] the partition goes one record at a time over that batch's range, and
//!   a single record that still fails every retry is moved to `<input>.dlq` (with
//!   `weir-error`) and consumed, so one bad record never stops the partition;
//! - the processor cannot run (`processor_blocked`: no loadable version, quarantined,
//!   a state layout it cannot read) or storage failed: the input waits, retried with
//!   backoff, and the run is restored from what is stored (an append whose outcome is
//!   unknown may have landed);
//! - a newer generation took over (`processor_fenced`): the task ends.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use tokio::sync::watch;
use weir_broker::plugins::{ProcessorSettings, Slot};
use weir_broker::processor::keyed::Keyed;
use weir_broker::processor::lease::Lease;
use weir_broker::processor::step::{PartitionRun, StepReport, Timing};
use weir_broker::processor::wasm::WasmLogic;
use weir_broker::{Broker, ReadLimits, Topic};
use weir_connect::RunState;
use weir_connect::control::Desired;

use crate::status::{PartitionProgress, Tracker};

/// Attempts of a failing batch before it is split into single records.
pub(crate) const RETRIES: u32 = 3;
/// How long an idle step of a single input waits for records.
const WAIT: Duration = Duration::from_millis(500);
/// How long each input's step waits after a round that found nothing, when there
/// are several (each wait delays the others' records by as much).
const WAIT_EACH: Duration = Duration::from_millis(50);
/// Most bytes per batch.
const BATCH_BYTES: usize = 8 << 20;

/// What one partition number's task holds.
pub(crate) struct PartitionTask {
    pub name: String,
    pub broker: Broker,
    pub slot: Arc<Slot>,
    pub settings: ProcessorSettings,
    pub state_version: u32,
    /// The inputs (each has partition `partition`).
    pub inputs: Vec<Arc<Topic>>,
    pub partition: u32,
    pub lease: Lease,
    pub tracker: Arc<Tracker>,
    pub desired: watch::Receiver<Desired>,
}

/// How an input's failures stand; kept across restores, so a record that keeps
/// failing is isolated and dead-lettered whatever else fails meanwhile.
#[derive(Debug, Clone, Copy, Default)]
struct Retries {
    failures: u32,
    /// Through this offset, one record per step (a failing batch's range).
    isolate_until: Option<u64>,
}

/// Why the task stops stepping.
enum Halt {
    /// Paused, or a failure whose outcome is unknown: restore, then go on.
    Restore,
    /// Replaced, fenced, or the manager is gone.
    Ended,
}

/// One input's run and how its failures stand.
struct Input {
    run: PartitionRun,
    retries: Retries,
}

fn backoff(attempt: u32) -> Duration {
    Duration::from_millis(100 << attempt.saturating_sub(1).min(6)).min(Duration::from_secs(5))
}

impl PartitionTask {
    pub(crate) async fn run(mut self) {
        let mut logic = WasmLogic::new(self.slot.clone(), self.state_version);
        // Restores in a row that found the processor unable to go on: the backoff.
        let mut attempt = 0;
        let mut retries = vec![Retries::default(); self.inputs.len()];
        loop {
            if !self.until_running().await {
                return;
            }
            let mut inputs = match self.restore(&retries) {
                Ok(inputs) => inputs,
                Err(e) => {
                    attempt += 1;
                    self.failed(format!("restoring partition {}: {e}", self.partition));
                    if self.pause(backoff(attempt)).await.is_err() {
                        return;
                    }
                    continue;
                }
            };
            for input in &inputs {
                self.report(&input.run);
            }
            let halt = self.steps(&mut inputs, &mut logic, &mut attempt).await;
            retries = inputs.iter().map(|i| i.retries).collect();
            if matches!(halt, Halt::Ended) {
                return;
            }
            if attempt > 0 && self.pause(backoff(attempt)).await.is_err() {
                return;
            }
        }
    }

    /// A failure, unless this task was fenced (its successor reports now).
    fn failed(&self, message: String) {
        if !self.lease.is_fenced() {
            self.tracker.failed(message);
            self.tracker.set(RunState::Backoff);
        }
    }

    fn restore(&self, retries: &[Retries]) -> weir_broker::Result<Vec<Input>> {
        let keyed = Keyed::restore(self.broker.log().clone(), &self.name, self.partition)?;
        self.inputs
            .iter()
            .zip(retries)
            .map(|(topic, retries)| {
                let timing = Timing::of(&self.settings, &self.name, topic.name());
                let run = PartitionRun::restore(
                    &self.broker,
                    &self.name,
                    (topic.clone(), self.partition),
                    keyed.clone(),
                    timing,
                    self.lease.clone(),
                )?;
                Ok(Input {
                    run,
                    retries: *retries,
                })
            })
            .collect()
    }

    /// Steps the inputs in turn until paused or ended; `attempt` counts the restores
    /// in a row that found the processor unable to go on (0 after a good step).
    async fn steps(
        &mut self,
        inputs: &mut [Input],
        logic: &mut WasmLogic,
        attempt: &mut u32,
    ) -> Halt {
        let mut idle = false;
        loop {
            match self.desired.has_changed() {
                Err(_) => return Halt::Ended,
                Ok(_) if *self.desired.borrow() != Desired::Running => return Halt::Restore,
                Ok(_) => {}
            }
            if self.lease.is_fenced() {
                return Halt::Ended;
            }
            let wait = match (inputs.len(), idle) {
                (1, _) => WAIT,
                (_, true) => WAIT_EACH,
                (_, false) => Duration::ZERO,
            };
            idle = true;
            for input in inputs.iter_mut() {
                match self.step(input, logic, wait).await {
                    Ok(worked) => {
                        idle &= !worked;
                        if input.retries.failures == 0 {
                            *attempt = 0;
                        }
                    }
                    Err(halt) => {
                        *attempt += 1;
                        return halt;
                    }
                }
            }
        }
    }

    /// One step of one input; `Ok(true)` when it did something.
    async fn step(
        &mut self,
        input: &mut Input,
        logic: &mut WasmLogic,
        wait: Duration,
    ) -> Result<bool, Halt> {
        let run = &mut input.run;
        let retries = &mut input.retries;
        let one_by_one = retries
            .isolate_until
            .is_some_and(|end| run.next_offset() < end);
        if !one_by_one {
            retries.isolate_until = None;
        }
        // Retries of a failed batch do not count against the plugin's health again.
        logic.set_retrying(retries.failures > 0 || one_by_one);
        let max_records = if one_by_one {
            1
        } else {
            self.settings.batch_max as usize
        };
        let limits = ReadLimits {
            max_records,
            max_bytes: BATCH_BYTES,
        };
        let error = match run.step(&self.broker, logic, limits, wait).await {
            Ok(report) => {
                retries.failures = 0;
                self.count(&report);
                self.report(run);
                return Ok(report.records > 0 || report.fired > 0);
            }
            Err(e) => e,
        };
        let code = error.code();
        if code == "processor_fenced" {
            tracing::info!(processor = %self.name, partition = self.partition, "fenced by a newer generation; the task ends");
            return Err(Halt::Ended);
        }
        self.failed(format!(
            "partition {} of '{}' at offset {}: {error}",
            self.partition,
            run.topic().name(),
            run.next_offset()
        ));
        if code != "processor_failed" {
            // Not the input's fault (blocked, storage): the step's append may or may
            // not have landed, so restore from storage, after a backoff.
            return Err(Halt::Restore);
        }
        retries.failures += 1;
        if retries.failures > RETRIES {
            retries.failures = 0;
            if !one_by_one {
                retries.isolate_until = Some(run.next_offset() + max_records as u64);
                return Ok(true);
            }
            if let Err(e) = self.dead_letter(run, &error.to_string()).await {
                self.failed(format!("dead-lettering failed: {e}"));
                return Err(Halt::Restore);
            }
            return Ok(true);
        }
        match self.pause(backoff(retries.failures)).await {
            Ok(()) => Ok(true),
            Err(()) => Err(Halt::Ended),
        }
    }

    async fn dead_letter(&self, run: &mut PartitionRun, reason: &str) -> weir_broker::Result<()> {
        let dlq = ProcessorSettings::dead_letter_topic_of(run.topic().name());
        let dlq = self.broker.ensure_topic(&dlq, 1).await?;
        if run.dead_letter_next(&self.broker, dlq, reason).await? {
            self.tracker
                .counters
                .dead_lettered
                .fetch_add(1, Ordering::Relaxed);
            tracing::warn!(processor = %self.name, partition = self.partition, %reason, "a record failed every retry; moved to the dead-letter topic");
        }
        Ok(())
    }

    fn count(&self, r: &StepReport) {
        if self.lease.is_fenced() {
            return;
        }
        let c = &self.tracker.counters;
        let add = |a: &std::sync::atomic::AtomicU64, n: usize| {
            a.fetch_add(n as u64, Ordering::Relaxed);
        };
        add(&c.records, r.records);
        add(&c.late, r.late);
        add(&c.emitted, r.emitted);
        add(&c.windows_closed, r.closed);
        add(&c.timers_fired, r.fired);
        c.skipped.fetch_add(r.skipped, Ordering::Relaxed);
        if r.records > 0 || r.fired > 0 {
            add(&c.batches, 1);
            self.tracker.succeeded();
        }
        if self.tracker.state() != RunState::Running {
            self.tracker.set(RunState::Running);
        }
    }

    fn report(&self, run: &PartitionRun) {
        if self.lease.is_fenced() {
            return;
        }
        let (watermark, windows_open) = run.progress();
        self.tracker.progress(PartitionProgress {
            topic: run.topic().name().to_string(),
            partition: self.partition,
            next_offset: run.next_offset(),
            watermark_ms: watermark.max_ms,
            windows_open,
            timers: run.keyed().timers(),
        });
    }

    /// Waits until running; `false` when the manager is gone.
    async fn until_running(&mut self) -> bool {
        loop {
            if self.desired.has_changed().is_err() {
                return false;
            }
            if *self.desired.borrow_and_update() == Desired::Running {
                return true;
            }
            self.tracker.set(RunState::Paused);
            if self.desired.changed().await.is_err() {
                return false;
            }
        }
    }

    /// Sleeps `wait`, cut short by an operator's change; `Err` when ended.
    async fn pause(&mut self, wait: Duration) -> Result<(), ()> {
        tokio::select! {
            () = tokio::time::sleep(wait) => Ok(()),
            changed = self.desired.changed() => changed.map_err(|_| ()),
        }
    }
}
