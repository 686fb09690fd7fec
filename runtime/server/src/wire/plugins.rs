//! Plugins and connectors as the API shows them: the host's and the connector
//! runtime's plain status types mapped to JSON here, so their shapes are the
//! server's to keep stable.

use serde_json::{Value, json};
use weir_broker::plugins::{
    Attachment, ConnectorSettings, Entry, HistoryOrigin, HistoryOutcome, LastError, OnFailure,
    PluginStatus,
};
use weir_connect::{ConnectorStatus, Desired, LastFailure};

/// `GET /v1/plugins/{name}`.
pub fn plugin_status(s: &PluginStatus) -> Value {
    json!({
        "name": s.name,
        "kind": s.kind.map(|k| k.as_str()),
        "version": s.version,
        "state": s.state,
        "attachments": s.attachments.iter().map(attachment).collect::<Vec<_>>(),
        "limits": s.limits.map(|l| json!({ "timeout_ms": l.timeout_ms, "memory_mb": l.memory_mb })),
        "counters": {
            "calls": s.counters.calls,
            "events_in": s.counters.events_in,
            "events_out": s.counters.events_out,
            "time_ms": s.counters.time_ms,
            "errors": s.counters.errors,
            "rejected": s.counters.rejected,
            "skipped": s.counters.skipped,
            "dead_lettered": s.counters.dead_lettered,
        },
        "quarantine": s.quarantine.map(|q| json!({ "for_ms": q.for_ms, "next_retry_in_ms": q.next_retry_in_ms })),
        "recent_failures": s.recent_failures,
        "times_quarantined": s.times_quarantined,
        "last_error": s.last_error.as_ref().map(last_error),
        "probation": s.probation,
        "rollout": s.rollout,
        "rejected_versions": s.rejected_versions.iter().map(history_entry).collect::<Vec<_>>(),
        "reloads": {
            "activated": s.reloads.activated,
            "rejected": s.reloads.rejected,
            "rolled_back": s.reloads.rolled_back,
        },
        "pool": s.pool.map(|p| json!({
            "idle_instances": p.idle_instances,
            "memory_bytes": p.memory_bytes,
            "output_lines": p.output_lines,
            "output_lines_dropped": p.output_lines_dropped,
        })),
    })
}

fn last_error(e: &LastError) -> Value {
    json!({ "at_ms": e.at_ms, "kind": e.kind, "message": e.message })
}

fn attachment(a: &Attachment) -> Value {
    let mut v = json!({ "topic": a.topic, "stage": a.stage, "on_error": a.on_error });
    if let Some(d) = &a.dead_letter_topic {
        v["dead_letter_topic"] = json!(d);
    }
    v
}

/// One entry of `GET /v1/plugins/{name}/versions` (and a status's rejected versions).
pub fn history_entry(e: &Entry) -> Value {
    json!({
        // Empty when the version's files could not be read.
        "version": (!e.version.is_empty()).then_some(&e.version),
        "origin": match e.origin {
            HistoryOrigin::Startup => "startup",
            HistoryOrigin::File => "file",
            HistoryOrigin::Http => "http",
            HistoryOrigin::Cluster => "cluster",
            HistoryOrigin::Rollback => "rollback",
            HistoryOrigin::Canary => "canary",
        },
        "file": e.file,
        "at_ms": e.at_ms,
        "ended_at_ms": e.ended_at_ms,
        "outcome": match e.outcome {
            HistoryOutcome::Active => "active",
            HistoryOutcome::Replaced => "replaced",
            HistoryOutcome::RolledBack => "rolled_back",
            HistoryOutcome::Rejected => "rejected",
            HistoryOutcome::Removed => "removed",
            HistoryOutcome::Shadowed => "shadowed",
            HistoryOutcome::Canary => "canary",
            HistoryOutcome::CanaryRolledBack => "canary_rolled_back",
        },
        "reason": e.reason,
        "load_ms": e.load_ms,
        "probation": e.probation,
    })
}

/// `GET /v1/connectors/{name}`.
pub fn connector_status(s: &ConnectorStatus) -> Value {
    let mut v = json!({
        "name": s.name,
        "kind": s.kind,
        "state": s.state.as_str(),
        "desired": match s.desired {
            Desired::Running => "running",
            Desired::Paused => "paused",
            Desired::Stopped => "stopped",
        },
        "version": s.version,
        "topics": s.topics,
        "records": s.records,
        "batches": s.batches,
        "errors": s.errors,
        "retries": s.retries,
        "dead_lettered": s.dead_lettered,
        "capability_refusals": s.capability_refusals,
        "settings": connector_settings(&s.settings),
    });
    if let Some(g) = &s.group {
        v["group"] = json!(g);
    }
    if let Some(n) = &s.node {
        v["node"] = json!(n);
    }
    if let Some(l) = s.lag_records {
        v["lag_records"] = json!(l);
    }
    if let Some(t) = s.last_success_ms {
        v["last_success_ms"] = json!(t);
    }
    if let Some(LastFailure { at_ms, message }) = &s.last_error {
        v["last_error"] = json!({ "at_ms": at_ms, "message": message });
    }
    v
}

fn connector_settings(c: &ConnectorSettings) -> Value {
    let mut v = json!({
        "batch_max": c.batch_max,
        "poll_interval_ms": c.poll_interval_ms,
        "max_retries": c.max_retries,
        "backoff_initial_ms": c.backoff_initial_ms,
        "backoff_max_ms": c.backoff_max_ms,
        "on_failure": match c.on_failure {
            OnFailure::DeadLetter => "dead_letter",
            OnFailure::Pause => "pause",
        },
        "start": c.start,
    });
    if let Some(d) = &c.dead_letter_topic {
        v["dead_letter_topic"] = json!(d);
    }
    if let Some(g) = &c.group {
        v["group"] = json!(g);
    }
    v
}

/// `GET /v1/plugins/{name}/shadow`: the comparison so far.
pub fn shadow_report(s: &weir_broker::plugins::Shadow) -> Value {
    let mut v = comparison(&s.report);
    v["candidate"] = json!(s.plugin.version_tag());
    v["started_ms"] = json!(s.started_ms);
    v["sample_percent"] = json!(s.settings.sample_percent);
    v["max_share_percent"] = json!((s.settings.max_share * 100.0).round() as u64);
    v
}

/// Two versions' outputs compared event by event (a shadow's report, a diff
/// replay's): counts by kind, errors, cost per event (the samples of differences
/// are added by the caller, through the chain's redacting steps).
pub fn comparison(r: &weir_broker::plugins::ShadowReport) -> Value {
    use std::sync::atomic::Ordering::Relaxed;
    let events = r.events.load(Relaxed);
    let per_event = |ns: u64| (events > 0).then(|| ns / events);
    json!({
        "events": events,
        "identical": r.identical.load(Relaxed),
        "different": r.different.load(Relaxed),
        "only_in_old": r.only_in_old.load(Relaxed),
        "only_in_new": r.only_in_new.load(Relaxed),
        "errors": { "old": r.errors_old.load(Relaxed), "new": r.errors_new.load(Relaxed) },
        "ns_per_event": {
            "old": per_event(r.serving_ns.load(Relaxed)),
            "new": per_event(r.shadow_ns.load(Relaxed)),
        },
        "batches": r.batches.load(Relaxed),
        "skipped_batches": r.skipped.load(Relaxed),
    })
}

/// One shown value of a sample: text up to 512 bytes, else its size; `null` when
/// a redacting step withheld it.
pub fn shown(v: &weir_broker::pipeline::redaction::Shown) -> Value {
    use weir_broker::pipeline::redaction::Shown;
    const SHOWN_BYTES: usize = 512;
    match v {
        Shown::Withheld => Value::Null,
        Shown::Value(v) => {
            let cut = &v[..v.len().min(SHOWN_BYTES)];
            match std::str::from_utf8(cut) {
                Ok(t) => json!(t),
                // A cut in the middle of a character: say the size.
                Err(_) => json!({ "bytes": v.len() }),
            }
        }
    }
}

/// `GET /v1/plugins/{name}/canary`: each version's events and failures so far.
pub fn canary_report(c: &weir_broker::plugins::Canary) -> Value {
    let (serving, candidate) = c.tallies();
    let side = |t: weir_broker::plugins::Tally| json!({ "events": t.events, "failed": t.failed, "failure_rate": t.rate() });
    json!({
        "candidate": c.plugin.version_tag(),
        "serving": c.serving,
        "started_ms": c.started_at_ms,
        "percent": c.settings.percent,
        "promote_after": c.settings.promote_after,
        "max_error_increase": c.settings.max_error_rate_increase * 100.0,
        "decided": c.decided(),
        "old": side(serving),
        "new": side(candidate),
    })
}
