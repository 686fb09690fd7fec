//! A source's task: poll, publish what it returned through the topic's pipeline
//! together with the state it wrote (its cursor) in one atomic append, repeat. A full
//! batch is followed by another poll at once; an empty one by `poll_interval_ms`.
//! Failures (a poll error or trap, a publish the pipeline or storage refused) commit
//! nothing and are retried with exponential backoff; with `on_failure = "pause"` the
//! connector stops after `max_retries` until it is resumed. Events the topic keeps
//! refusing (its pipeline rejects them, they are too large) go, after `max_retries`,
//! to the dead-letter topic together with the cursor, so the source moves on.

use std::borrow::Cow;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use weir_broker::KvOp;
use weir_broker::plugin_state::StoredPluginState;
use weir_broker::plugins::{OnFailure, Plugin, PluginError, PollInfo, Polled};
use weir_broker::{BrokerError, NewRecord};

use crate::run::{Halt, RunContext};
use crate::status::RunState;

/// Polls and publishes in a loop until the manager ends the task.
pub(crate) async fn run(mut ctx: RunContext) {
    let mut failures = 0u32;
    loop {
        if ctx.until_running().await.is_err() || ctx.check() == Err(Halt::Ended) {
            return;
        }
        let outcome = match ctx.slot.current_or_unavailable() {
            Ok(plugin) => {
                let give_up = failures >= ctx.settings.max_retries;
                poll_and_publish(&ctx, &plugin, give_up).await
            }
            Err(e) => Err(e.to_string()),
        };
        let wait = match outcome {
            Ok(full) => {
                failures = 0;
                ctx.tracker.set(RunState::Running);
                if full {
                    continue;
                }
                Duration::from_millis(ctx.settings.poll_interval_ms)
            }
            Err(message) => {
                ctx.tracker.failed(message.clone());
                failures += 1;
                if failures > ctx.settings.max_retries
                    && ctx.settings.on_failure == OnFailure::Pause
                {
                    failures = 0;
                    let why = format!(
                        "{} polls in a row failed, last: {message}",
                        ctx.settings.max_retries + 1
                    );
                    if ctx.hold_failed(why).await == Halt::Ended {
                        return;
                    }
                    continue;
                }
                if failures > 1 {
                    ctx.tracker.counters.retries.fetch_add(1, Ordering::Relaxed);
                }
                ctx.tracker.set(RunState::Backoff);
                ctx.backoff.delay(failures)
            }
        };
        if ctx.sleep(wait).await == Err(Halt::Ended) {
            return;
        }
    }
}

/// One poll and its publish; `Ok(true)` when the poll returned a full batch. With
/// `give_up`, events the topic refuses go to the dead-letter topic instead (when
/// `on_failure` says so).
async fn poll_and_publish(
    ctx: &RunContext,
    plugin: &Arc<Plugin>,
    give_up: bool,
) -> Result<bool, String> {
    let name = &ctx.topics[0];
    let topic = ctx
        .broker
        .topic(name)
        .map_err(|e| format!("topic '{name}': {e}"))?;
    let info = PollInfo {
        topic: name.clone(),
        partitions: topic.partition_count(),
        max: ctx.settings.batch_max,
        now_ms: weir_broker::now_ms(),
    };
    let polled = poll(ctx, plugin, info).await.map_err(|e| e.to_string())?;
    let events = weir_broker::plugins::packed::decode(&polled.events).map_err(|e| e.to_string())?;
    let records: Vec<NewRecord<'_>> = events
        .iter()
        .map(|e| NewRecord {
            key: e.key.map(Cow::Borrowed),
            value: e.value.map(Cow::Borrowed),
            value_is_json: e.value_is_json(),
            headers: e
                .headers()
                .map(|(n, v)| (Cow::Borrowed(n), Cow::Borrowed(v)))
                .collect(),
            partition: None,
        })
        .collect();
    let commit: Vec<KvOp> = polled
        .state
        .iter()
        .map(|(k, v)| (StoredPluginState::key(&ctx.name, k), v.clone()))
        .collect();
    if records.is_empty() && commit.is_empty() {
        return Ok(false);
    }
    if ctx.check() == Err(Halt::Ended) {
        // Reconfigured meanwhile: nothing is committed; the successor polls again.
        return Ok(false);
    }
    match ctx
        .broker
        .publish_fenced(&topic, &records, commit.clone(), ctx.fence.as_ref())
        .await
    {
        Ok(_) => {}
        Err(e) if refused(&e) && give_up && ctx.settings.on_failure == OnFailure::DeadLetter => {
            let dlq = ctx.settings.dead_letter_topic_of(name);
            let letters = with_reason(&records, name, &ctx.name, &e);
            let dlq_topic = crate::run::dead_letter_topic(&ctx.broker, &dlq)
                .await
                .map_err(|e2| format!("dead-letter topic '{dlq}': {e2}"))?;
            ctx.broker
                .publish_fenced(&dlq_topic, &letters, commit, ctx.fence.as_ref())
                .await
                .map_err(|e2| format!("dead-lettering to '{dlq}' after '{e}': {e2}"))?;
            ctx.tracker
                .counters
                .dead_lettered
                .fetch_add(letters.len() as u64, Ordering::Relaxed);
            tracing::warn!(connector = %ctx.name, topic = %name, events = letters.len(), dead_letter_topic = %dlq, error = %e, "events dead-lettered");
            return Ok(false);
        }
        Err(e) => {
            return Err(format!(
                "publishing {} event(s) to '{name}': {e}",
                records.len()
            ));
        }
    }
    if !records.is_empty() {
        ctx.tracker.succeeded(records.len());
    }
    Ok(polled.count >= ctx.settings.batch_max as usize)
}

/// Whether the topic refuses these events (rather than being unavailable).
fn refused(e: &BrokerError) -> bool {
    !matches!(e, BrokerError::Storage(_) | BrokerError::Internal(_))
}

/// The events with headers saying where they were going and why they were refused.
fn with_reason<'a>(
    records: &[NewRecord<'a>],
    topic: &'a str,
    connector: &'a str,
    e: &BrokerError,
) -> Vec<NewRecord<'a>> {
    let reason = e.to_string().into_bytes();
    records
        .iter()
        .map(|r| {
            let mut r = r.clone();
            r.headers
                .push(("weir-dlq-topic".into(), topic.as_bytes().into()));
            r.headers
                .push(("weir-dlq-connector".into(), connector.as_bytes().into()));
            r.headers
                .push(("weir-dlq-error-kind".into(), e.code().as_bytes().into()));
            r.headers
                .push(("weir-dlq-error".into(), reason.clone().into()));
            r
        })
        .collect()
}

/// One `poll` call on a blocking thread, through the slot.
async fn poll(
    ctx: &RunContext,
    plugin: &Arc<Plugin>,
    info: PollInfo,
) -> Result<Polled, PluginError> {
    let (slot, plugin) = (ctx.slot.clone(), plugin.clone());
    tokio::task::spawn_blocking(move || slot.poll(&plugin, &info))
        .await
        .unwrap_or_else(|e| {
            Err(PluginError::Failed {
                plugin: "connector".into(),
                reason: format!("the call did not finish: {e}"),
            })
        })
}
