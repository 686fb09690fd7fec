//! A sink's task: read each attached partition from the connector's consumer group
//! position, hand the sink one partition's batch at a time (offset order), and commit
//! only after `write` succeeded — at least once.
//!
//! Failures are told apart by what they say about the events:
//! - `failed` (and a quarantined or unloaded plugin): the destination or the plugin
//!   is unavailable. The batch is retried with exponential backoff for as long as it
//!   takes; nothing is dead-lettered for an outage. With `on_failure = "pause"` the
//!   connector stops after `max_retries` instead.
//! - `bad-input`, and faults of the plugin's code (trap, timeout, memory, stack,
//!   invalid output) after `max_retries`: something in the batch is at fault. The
//!   batch is bisected to find the events that fail on their own; those go to the
//!   dead-letter topic (or the connector pauses), the rest are delivered.

use std::borrow::Cow;
use std::collections::HashMap;
use std::ops::Range;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use weir_broker::NewRecord;
use weir_broker::plugins::packed::{FLAG_VALUE_JSON, Writer};
use weir_broker::plugins::{CallKind, Delivery, OnFailure, Plugin, PluginError};
use weir_broker::{Acks, ReadLimits, ReadResult, RecordView, Topic};

use crate::run::{Halt, RunContext};
use crate::status::RunState;

/// Commits that may fail in a row before the connector stops (its consumer group is
/// probably used by someone else).
const MAX_COMMIT_FAILURES: u32 = 3;

/// Reads and writes in a loop until the manager ends the task.
pub(crate) async fn run(mut ctx: RunContext) {
    let group = ctx.settings.group_of(&ctx.name);
    let mut cursor = Cursor::default();
    loop {
        match ctx.until_running().await {
            Err(_) => return,
            Ok(true) => cursor.positions.clear(),
            Ok(false) => {}
        }
        let plugin = match ctx.slot.current_or_unavailable() {
            Ok(p) => p,
            Err(e) => {
                ctx.tracker.failed(e.to_string());
                ctx.tracker.set(RunState::Failed);
                if ctx.sleep(ctx.backoff.delay(10)).await == Err(Halt::Ended) {
                    return;
                }
                continue;
            }
        };
        if ctx.tracker.state() != RunState::Backoff {
            ctx.tracker.set(RunState::Running);
        }
        let waited = match pass(&mut ctx, &plugin, &group, &mut cursor).await {
            Ok(Pass {
                delivered: true, ..
            }) => Ok(()),
            // Something failed and nothing moved: back off rather than spin.
            Ok(Pass { troubled: true, .. }) => ctx.sleep(ctx.backoff.delay(3)).await,
            Ok(_) => idle(&mut ctx, &cursor.positions).await,
            Err(halt) => Err(halt),
        };
        if waited == Err(Halt::Ended) {
            return;
        }
    }
}

/// What the task remembers between passes.
#[derive(Debug, Default)]
struct Cursor {
    /// Next offset per (topic, partition), once known; committed offsets otherwise.
    positions: HashMap<(String, u32), u64>,
    commit_failures: u32,
}

/// What one pass did.
#[derive(Debug, Default)]
struct Pass {
    delivered: bool,
    troubled: bool,
}

/// One pass over every attached partition.
async fn pass(
    ctx: &mut RunContext,
    plugin: &Arc<Plugin>,
    group: &str,
    cursor: &mut Cursor,
) -> Result<Pass, Halt> {
    let mut outcome = Pass::default();
    for name in ctx.topics.clone() {
        let topic = match ctx.broker.topic(&name) {
            Ok(t) => t,
            Err(e) => {
                ctx.tracker.failed(format!("topic '{name}': {e}"));
                outcome.troubled = true;
                continue;
            }
        };
        for p in 0..topic.partition_count() {
            ctx.check()?;
            let key = (name.clone(), p);
            let offset = match cursor.positions.get(&key) {
                Some(o) => *o,
                None => match start_offset(ctx, group, &topic, p).await {
                    Ok(o) => o,
                    Err(e) => {
                        ctx.tracker.failed(e);
                        outcome.troubled = true;
                        continue;
                    }
                },
            };
            let limits = ReadLimits {
                max_records: ctx.settings.batch_max as usize,
                ..ReadLimits::default()
            };
            let read = match ctx
                .broker
                .fetch(&topic, p, offset, limits, Duration::ZERO)
                .await
            {
                Ok(r) => r,
                Err(e) => {
                    // Retention may have removed the position: go on from the log start.
                    let start = topic.partition(p).map_or(0, |part| part.log_start_offset());
                    if offset < start {
                        tracing::warn!(connector = %ctx.name, topic = %name, partition = p, from = offset, to = start, "position was removed by retention; skipping ahead");
                        cursor.positions.insert(key, start);
                    } else {
                        ctx.tracker
                            .failed(format!("reading {name}/{p} at {offset}: {e}"));
                        outcome.troubled = true;
                    }
                    continue;
                }
            };
            if read.count == 0 {
                cursor.positions.insert(key, read.next_offset.max(offset));
                continue;
            }
            ctx.check()?;
            deliver(ctx, plugin, &topic, p, &read).await?;
            let next = read.next_offset;
            cursor.positions.insert(key, next);
            outcome.delivered = true;
            match ctx.commit(group, &[(name.clone(), p, next)]).await {
                Ok(()) => cursor.commit_failures = 0,
                Err(e) => {
                    // Delivered but not committed: a restart delivers these again (at
                    // least once). Repeated failures stop the connector: its group is
                    // probably in use by other consumers.
                    let why = format!("committing {name}/{p} at {next} for group '{group}': {e}");
                    cursor.commit_failures += 1;
                    if cursor.commit_failures >= MAX_COMMIT_FAILURES {
                        cursor.commit_failures = 0;
                        return Err(ctx.hold_failed(why).await);
                    }
                    ctx.tracker.failed(why);
                    outcome.troubled = true;
                }
            }
        }
    }
    Ok(outcome)
}

/// Caught up: waits until a record arrives on any attached partition (woken by the
/// flush that makes it visible, like a long-polling consumer), at most
/// `poll_interval_ms`, or until an operator changes the connector's state.
async fn idle(ctx: &mut RunContext, positions: &HashMap<(String, u32), u64>) -> Result<(), Halt> {
    let limit = Duration::from_millis(ctx.settings.poll_interval_ms);
    let mut watched = Vec::new();
    for name in &ctx.topics {
        if let Ok(topic) = ctx.broker.topic(name) {
            for p in 0..topic.partition_count() {
                if let Some(offset) = positions.get(&(name.clone(), p)) {
                    watched.push((topic.clone(), p, *offset));
                }
            }
        }
    }
    let arrivals: Vec<_> = watched
        .iter()
        .filter_map(|(topic, p, offset)| {
            let part = topic.partition(*p).ok()?;
            Some(Box::pin(part.wait_beyond(*offset, limit)))
        })
        .collect();
    if arrivals.is_empty() {
        return ctx.sleep(limit).await;
    }
    let any_arrival = futures_util::future::select_all(arrivals);
    tokio::select! {
        _ = any_arrival => Ok(()),
        changed = ctx.desired.changed() => match changed {
            Err(_) => Err(Halt::Ended),
            Ok(()) => Err(Halt::Interrupted),
        },
    }
}

/// Where a partition without a position starts: the committed offset, else the
/// connector's `start` (a `latest` start is committed at once, so a restart does not
/// skip what arrived meanwhile).
async fn start_offset(ctx: &RunContext, group: &str, topic: &Topic, p: u32) -> Result<u64, String> {
    let groups = ctx.broker.groups();
    if let Some((offset, _)) = groups
        .committed(group, topic, p)
        .map_err(|e| e.to_string())?
    {
        return Ok(offset);
    }
    let part = topic.partition(p).map_err(|e| e.to_string())?;
    if ctx.settings.start == "latest" {
        let hw = part.high_watermark();
        ctx.commit(group, &[(topic.name().to_string(), p, hw)])
            .await
            .map_err(|e| e.to_string())?;
        Ok(hw)
    } else {
        Ok(part.log_start_offset())
    }
}

/// What a failed write says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Failure {
    /// The destination or the plugin is unavailable: wait and retry.
    Unavailable,
    /// The plugin's code failed (trap, timeout, ...): retry, then isolate.
    Fault,
    /// The destination refused the events: isolate at once.
    Refused,
}

fn classify(e: &PluginError, fault_seen: bool) -> Failure {
    match e {
        PluginError::BadInput { .. } => Failure::Refused,
        // Quarantined because of this batch's faults: the same fault.
        PluginError::Quarantined { .. } if fault_seen => Failure::Fault,
        PluginError::Failed { .. }
        | PluginError::Quarantined { .. }
        | PluginError::Unavailable { .. } => Failure::Unavailable,
        e if e.counts_against_plugin() => Failure::Fault,
        _ => Failure::Unavailable,
    }
}

/// Delivers one partition's batch: retries, then the failure policy. Returns once
/// every event was written or dead-lettered.
async fn deliver(
    ctx: &mut RunContext,
    plugin: &Arc<Plugin>,
    topic: &Arc<Topic>,
    partition: u32,
    read: &ReadResult,
) -> Result<(), Halt> {
    let records: Vec<RecordView<'_>> = read.records().collect();
    let all = 0..records.len();
    let (mut faults, mut outages) = (0u32, 0u32);
    let error = loop {
        let e = match write(
            ctx,
            plugin,
            topic,
            partition,
            &records[all.clone()],
            CallKind::Batch,
        )
        .await
        {
            Ok(()) => {
                ctx.tracker.succeeded(records.len());
                ctx.tracker.set(RunState::Running);
                return Ok(());
            }
            Err(e) => e,
        };
        ctx.tracker.failed(e.to_string());
        let mut wait = Duration::ZERO;
        match classify(&e, faults > 0) {
            Failure::Refused => break e,
            Failure::Fault => {
                faults += 1;
                if faults > ctx.settings.max_retries {
                    break e;
                }
            }
            Failure::Unavailable => {
                outages += 1;
                if outages > ctx.settings.max_retries && ctx.settings.on_failure == OnFailure::Pause
                {
                    return Err(ctx
                        .hold_failed(format!(
                            "{}/{partition}: destination unavailable after {outages} attempts: {e}",
                            topic.name()
                        ))
                        .await);
                }
                if let PluginError::Quarantined { retry_in_ms, .. } = e {
                    wait = Duration::from_millis(retry_in_ms);
                }
            }
        }
        ctx.tracker.counters.retries.fetch_add(1, Ordering::Relaxed);
        ctx.tracker.set(RunState::Backoff);
        ctx.sleep(wait.max(ctx.backoff.delay(faults + outages)))
            .await?;
        ctx.check()?;
    };
    if ctx.settings.on_failure == OnFailure::Pause {
        return Err(ctx
            .hold_failed(format!(
                "{}/{partition}: batch at offset {} failed: {error}",
                topic.name(),
                records[0].offset
            ))
            .await);
    }
    let mut bad = Vec::new();
    isolate(
        ctx,
        plugin,
        topic,
        partition,
        &records,
        all,
        Some(error),
        &mut bad,
    )
    .await?;
    dead_letter(ctx, topic, partition, &records, bad).await
}

/// Bisects `range` (whose write failed with `error`, if known) down to the events that
/// fail on their own, collecting them in `bad`; the others are delivered. An
/// outage on the way ends the isolation: the batch is tried again later.
#[allow(clippy::too_many_arguments)]
async fn isolate(
    ctx: &mut RunContext,
    plugin: &Arc<Plugin>,
    topic: &Arc<Topic>,
    partition: u32,
    records: &[RecordView<'_>],
    range: Range<usize>,
    error: Option<PluginError>,
    bad: &mut Vec<(usize, PluginError)>,
) -> Result<(), Halt> {
    let error = match error {
        Some(e) => e,
        None => match write(
            ctx,
            plugin,
            topic,
            partition,
            &records[range.clone()],
            CallKind::Retry,
        )
        .await
        {
            Ok(()) => {
                ctx.tracker.succeeded(range.len());
                return Ok(());
            }
            Err(e) => e,
        },
    };
    if classify(&error, true) == Failure::Unavailable {
        ctx.tracker.failed(error.to_string());
        ctx.tracker.set(RunState::Backoff);
        ctx.sleep(ctx.backoff.delay(ctx.settings.max_retries.max(1)))
            .await?;
        return Err(Halt::Interrupted);
    }
    if range.len() == 1 {
        bad.push((range.start, error));
        return Ok(());
    }
    let mid = range.start + range.len() / 2;
    Box::pin(isolate(
        ctx,
        plugin,
        topic,
        partition,
        records,
        range.start..mid,
        None,
        bad,
    ))
    .await?;
    Box::pin(isolate(
        ctx,
        plugin,
        topic,
        partition,
        records,
        mid..range.end,
        None,
        bad,
    ))
    .await
}

/// Stores the events that failed on their own in the dead-letter topic (created
/// with one partition if missing), with headers saying where they came from and why.
async fn dead_letter(
    ctx: &mut RunContext,
    topic: &Arc<Topic>,
    partition: u32,
    records: &[RecordView<'_>],
    bad: Vec<(usize, PluginError)>,
) -> Result<(), Halt> {
    if bad.is_empty() {
        return Ok(());
    }
    let dlq_name = ctx.settings.dead_letter_topic_of(topic.name());
    let partition_text = partition.to_string();
    let letters: Vec<NewRecord<'_>> = bad
        .iter()
        .map(|(i, e)| {
            let r = &records[*i];
            let mut headers: Vec<(Cow<'_, str>, Cow<'_, [u8]>)> = r
                .headers()
                .map(|(n, v)| (Cow::Borrowed(n), Cow::Borrowed(v)))
                .collect();
            headers.push(("weir-dlq-topic".into(), topic.name().as_bytes().into()));
            headers.push((
                "weir-dlq-partition".into(),
                partition_text.as_bytes().into(),
            ));
            headers.push((
                "weir-dlq-offset".into(),
                r.offset.to_string().into_bytes().into(),
            ));
            headers.push(("weir-dlq-connector".into(), ctx.name.as_bytes().into()));
            headers.push(("weir-dlq-error-kind".into(), e.code().as_bytes().into()));
            headers.push(("weir-dlq-error".into(), e.to_string().into_bytes().into()));
            NewRecord {
                key: r.key.map(Cow::Borrowed),
                value: r.value.map(Cow::Borrowed),
                value_is_json: r.value_is_json(),
                headers,
                partition: None,
            }
        })
        .collect();
    let stored = async {
        let dlq = crate::run::dead_letter_topic(&ctx.broker, &dlq_name).await?;
        ctx.broker
            .produce(&dlq, &letters, Acks::All)
            .await
            .map_err(|e| e.to_string())
    }
    .await;
    match stored {
        Ok(_) => {
            let n = letters.len();
            ctx.tracker
                .counters
                .dead_lettered
                .fetch_add(n as u64, Ordering::Relaxed);
            tracing::warn!(connector = %ctx.name, topic = %topic.name(), partition, events = n, dead_letter_topic = %dlq_name, "events dead-lettered");
            Ok(())
        }
        Err(e) => {
            // Nothing is committed: the batch is tried again after a backoff.
            ctx.tracker
                .failed(format!("dead-lettering to '{dlq_name}' failed: {e}"));
            ctx.tracker.set(RunState::Backoff);
            ctx.sleep(ctx.backoff.delay(ctx.settings.max_retries.max(1)))
                .await?;
            Err(Halt::Interrupted)
        }
    }
}

/// One `write` of `records` on a blocking thread, through the slot (health,
/// probation, counters).
async fn write(
    ctx: &RunContext,
    plugin: &Arc<Plugin>,
    topic: &Topic,
    partition: u32,
    records: &[RecordView<'_>],
    kind: CallKind,
) -> Result<(), PluginError> {
    let mut writer = Writer::default();
    for r in records {
        let flags = if r.value_is_json() {
            FLAG_VALUE_JSON
        } else {
            0
        };
        writer.push(r.timestamp_ms, flags, r.key, r.value, r.headers());
    }
    let delivery = Delivery {
        topic: topic.name().to_string(),
        partition,
        offsets: records.iter().map(|r| r.offset).collect(),
    };
    let n = records.len();
    let (slot, plugin, events) = (ctx.slot.clone(), plugin.clone(), writer.finish());
    tokio::task::spawn_blocking(move || slot.write(&plugin, kind, &delivery, &events, n))
        .await
        .unwrap_or_else(|e| {
            Err(PluginError::Failed {
                plugin: "connector".into(),
                reason: format!("the call did not finish: {e}"),
            })
        })
}
