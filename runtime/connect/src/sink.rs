//! A sink's task: read each attached partition from the connector's consumer group
//! position, hand the sink one partition's batch at a time (offset order), and commit
//! only after `write` succeeded — at least once. A failing batch is retried with
//! exponential backoff; once retries are exhausted, `on_failure` decides: pause the
//! connector, or isolate the events that fail on their own and dead-letter them.

use std::borrow::Cow;
use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use weir_broker::NewRecord;
use weir_host::packed::{FLAG_VALUE_JSON, Writer};
use weir_host::{CallKind, Delivery, OnFailure, Plugin, PluginError};
use weir_storage::{Acks, ReadLimits, ReadResult, Topic, TopicConfig};

use crate::run::{Halt, RunContext};
use crate::status::RunState;

/// Reads and writes in a loop until the manager ends the task.
pub(crate) async fn run(mut ctx: RunContext) {
    let group = group_of(&ctx.name, &ctx.settings);
    // Next offset per (topic, partition), once known; committed offsets otherwise.
    let mut positions: HashMap<(String, u32), u64> = HashMap::new();
    loop {
        match ctx.until_running().await {
            Err(_) => return,
            Ok(true) => positions.clear(),
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
        match pass(&mut ctx, &plugin, &group, &mut positions).await {
            Ok(true) => {}
            Ok(false) => {
                let idle = Duration::from_millis(ctx.settings.poll_interval_ms);
                if ctx.sleep(idle).await == Err(Halt::Ended) {
                    return;
                }
            }
            Err(Halt::Ended) => return,
            Err(Halt::Interrupted) => {}
        }
    }
}

/// `<name>`'s consumer group.
pub(crate) fn group_of(name: &str, settings: &weir_host::ConnectorSettings) -> String {
    settings
        .group
        .clone()
        .unwrap_or_else(|| format!("connector.{name}"))
}

/// One pass over every attached partition; `true` if anything was delivered.
async fn pass(
    ctx: &mut RunContext,
    plugin: &Arc<Plugin>,
    group: &str,
    positions: &mut HashMap<(String, u32), u64>,
) -> Result<bool, Halt> {
    let mut delivered = false;
    for name in ctx.topics.clone() {
        let topic = match ctx.broker.topic(&name) {
            Ok(t) => t,
            Err(e) => {
                ctx.tracker.failed(format!("topic '{name}': {e}"));
                continue;
            }
        };
        for p in 0..topic.partition_count() {
            let key = (name.clone(), p);
            let offset = match positions.get(&key) {
                Some(o) => *o,
                None => match start_offset(ctx, group, &topic, p).await {
                    Ok(o) => o,
                    Err(e) => {
                        ctx.tracker.failed(e);
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
                        positions.insert(key, start);
                    } else {
                        ctx.tracker
                            .failed(format!("reading {name}/{p} at {offset}: {e}"));
                    }
                    continue;
                }
            };
            if read.count == 0 {
                positions.insert(key, read.next_offset.max(offset));
                continue;
            }
            deliver(ctx, plugin, &topic, p, &read).await?;
            let next = read.next_offset;
            positions.insert(key, next);
            delivered = true;
            if let Err(e) = ctx
                .broker
                .groups()
                .commit(group, None, &[(name.clone(), p, next)])
                .await
            {
                // Delivered but not committed: a restart delivers these again (at
                // least once).
                ctx.tracker.failed(format!(
                    "committing {name}/{p} at {next} for group '{group}': {e}"
                ));
            }
        }
    }
    Ok(delivered)
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
        groups
            .commit(group, None, &[(topic.name().to_string(), p, hw)])
            .await
            .map_err(|e| e.to_string())?;
        Ok(hw)
    } else {
        Ok(part.log_start_offset())
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
    let delivery = Delivery {
        topic: topic.name().to_string(),
        partition,
        offsets: read.records().map(|r| r.offset).collect(),
    };
    let mut writer = Writer::default();
    for r in read.records() {
        let flags = if r.value_is_json() {
            FLAG_VALUE_JSON
        } else {
            0
        };
        writer.push(r.timestamp_ms, flags, r.key, r.value, r.headers());
    }
    let events = Arc::new(writer.finish());
    let n = delivery.offsets.len();
    let mut retry = 0u32;
    let error = loop {
        match write(ctx, plugin, &delivery, &events, n, CallKind::Batch).await {
            Ok(()) => {
                ctx.tracker.succeeded(n);
                ctx.tracker.set(RunState::Running);
                return Ok(());
            }
            Err(e) => {
                ctx.tracker.failed(e.to_string());
                let refused = matches!(e, PluginError::BadInput { .. });
                if refused || retry >= ctx.settings.max_retries {
                    break e;
                }
                retry += 1;
                ctx.tracker.counters.retries.fetch_add(1, Ordering::Relaxed);
                ctx.tracker.set(RunState::Backoff);
                let mut wait = ctx.backoff.delay(retry);
                if let PluginError::Quarantined { retry_in_ms, .. } = e {
                    wait = wait.max(Duration::from_millis(retry_in_ms));
                }
                ctx.sleep(wait).await?;
            }
        }
    };
    match ctx.settings.on_failure {
        OnFailure::Pause => Err(ctx
            .hold_failed(format!(
                "{}/{partition}: batch at offset {} failed {} time(s), last: {error}",
                topic.name(),
                delivery.offsets[0],
                retry + 1
            ))
            .await),
        OnFailure::DeadLetter => isolate(ctx, plugin, topic, &delivery, read, error).await,
    }
}

/// After a batch failed for good: writes each event on its own once, and
/// dead-letters those that still fail (all of them for a one-event batch).
async fn isolate(
    ctx: &mut RunContext,
    plugin: &Arc<Plugin>,
    topic: &Arc<Topic>,
    delivery: &Delivery,
    read: &ReadResult,
    batch_error: PluginError,
) -> Result<(), Halt> {
    let mut failed: Vec<(usize, PluginError)> = Vec::new();
    if delivery.offsets.len() == 1 {
        failed.push((0, batch_error));
    } else {
        for (i, r) in read.records().enumerate() {
            let mut w = Writer::default();
            let flags = if r.value_is_json() {
                FLAG_VALUE_JSON
            } else {
                0
            };
            w.push(r.timestamp_ms, flags, r.key, r.value, r.headers());
            let one = Delivery {
                topic: delivery.topic.clone(),
                partition: delivery.partition,
                offsets: vec![r.offset],
            };
            match write(ctx, plugin, &one, &Arc::new(w.finish()), 1, CallKind::Retry).await {
                Ok(()) => ctx.tracker.succeeded(1),
                Err(e) => failed.push((i, e)),
            }
        }
    }
    if failed.is_empty() {
        return Ok(());
    }
    let records: Vec<_> = read.records().collect();
    let dlq_name = ctx
        .settings
        .dead_letter_topic
        .clone()
        .unwrap_or_else(|| format!("{}.dlq", topic.name()));
    let partition_text = delivery.partition.to_string();
    let letters: Vec<NewRecord<'_>> = failed
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
        let dlq = match ctx.broker.topic(&dlq_name) {
            Ok(t) => t,
            Err(_) => {
                let store = ctx.broker.store();
                let _ = store.create_topic(&dlq_name, TopicConfig::with_partitions(1));
                store.topic(&dlq_name).map_err(|e| e.to_string())?
            }
        };
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
            tracing::warn!(connector = %ctx.name, topic = %topic.name(), partition = delivery.partition, events = n, dead_letter_topic = %dlq_name, "events dead-lettered after their retries");
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

/// One `write` call on a blocking thread, through the slot (health, probation,
/// counters).
async fn write(
    ctx: &RunContext,
    plugin: &Arc<Plugin>,
    delivery: &Delivery,
    events: &Arc<Vec<u8>>,
    n: usize,
    kind: CallKind,
) -> Result<(), PluginError> {
    let (slot, plugin, delivery, events) = (
        ctx.slot.clone(),
        plugin.clone(),
        delivery.clone(),
        events.clone(),
    );
    tokio::task::spawn_blocking(move || {
        slot.call(&plugin, kind, n, |p| {
            p.write(&delivery, &events).map(|()| ((), n))
        })
    })
    .await
    .unwrap_or_else(|e| {
        Err(PluginError::Failed {
            plugin: "connector".into(),
            reason: format!("the call did not finish: {e}"),
        })
    })
}
