//! Replays: a stored range of a topic run through a chosen version of a filter or
//! transform into another topic, beside the serving path (see `weir_broker::replay`).
//!
//! - `POST /v1/plugins/{name}/replays` with `{"topic", "into", "version"?, "from"?,
//!   "to"?, "from_time_ms"?, "to_time_ms"?, "max_rate"?}`: 202 with the replay's
//!   status; it runs in the background. Needs `consume` on the source and `produce`
//!   on the target besides `plugin-admin`. The target is created with the source's
//!   partition count if missing.
//! - The same with `"diff": true` instead of `"into"`: nothing is written; each event
//!   goes through the version and through `"against"` (a version hash prefix; the
//!   serving version by default) and their outputs are compared (`diff` in the
//!   status: identical, different, only in old/new, errors, cost, samples).
//! - `GET /v1/plugins/{name}/replays`, `GET /v1/plugins/{name}/replays/{id}`: progress
//!   (total, read, written, failed), done, error, and a diff's comparison.

use std::sync::atomic::Ordering;

use axum::Extension;
use axum::Json;
use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use serde::Deserialize;
use serde_json::{Value, json};
use weir_broker::replay::{Position, Replay, ReplaySpec, Target};

use super::AppState;
use super::body::read_limited;
use super::problem::Problem;
use crate::auth::{Principal, check};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ReplayBody {
    topic: String,
    #[serde(default)]
    into: Option<String>,
    #[serde(default)]
    diff: bool,
    #[serde(default)]
    against: Option<String>,
    #[serde(default)]
    version: Option<String>,
    #[serde(default)]
    from: Option<Value>,
    #[serde(default)]
    to: Option<Value>,
    #[serde(default)]
    from_time_ms: Option<i64>,
    #[serde(default)]
    to_time_ms: Option<i64>,
    #[serde(default)]
    max_rate: Option<u64>,
}

/// `earliest`, `latest`, an offset, or a time.
fn position(
    name: &str,
    value: Option<&Value>,
    time: Option<i64>,
    default: Position,
) -> Result<Position, Problem> {
    match (value, time) {
        (Some(_), Some(_)) => Err(Problem::invalid_request(format!(
            "give '{name}' or '{name}_time_ms', not both"
        ))),
        (None, Some(t)) => Ok(Position::Time(t)),
        (None, None) => Ok(default),
        (Some(v), None) => match (v.as_str(), v.as_u64()) {
            (Some("earliest"), _) => Ok(Position::Earliest),
            (Some("latest"), _) => Ok(Position::Latest),
            (_, Some(o)) => Ok(Position::Offset(o)),
            _ => Err(Problem::invalid_request(format!(
                "'{name}' is \"earliest\", \"latest\" or an offset, got {v}"
            ))),
        },
    }
}

/// `POST /v1/plugins/{name}/replays`.
pub async fn start(
    State(state): State<AppState>,
    Path(name): Path<String>,
    principal: Option<Extension<Principal>>,
    headers: HeaderMap,
    body: Body,
) -> Result<(StatusCode, Json<Value>), Problem> {
    let bytes = read_limited(&headers, body, 64 << 10, state.limits.body_idle_timeout()).await?;
    let body: ReplayBody =
        serde_json::from_slice(&bytes).map_err(|e| Problem::from_json("replay body", &e))?;
    let from = position(
        "from",
        body.from.as_ref(),
        body.from_time_ms,
        Position::Earliest,
    )?;
    let to = position("to", body.to.as_ref(), body.to_time_ms, Position::Latest)?;
    match (&body.into, body.diff) {
        (Some(_), true) | (None, false) => {
            return Err(Problem::invalid_request(
                "a replay writes 'into' a topic or makes a 'diff' report: give exactly one",
            ));
        }
        (None, true) => {}
        (Some(_), false) if body.against.is_some() => {
            return Err(Problem::invalid_request("'against' applies to a diff"));
        }
        (Some(into), false) if *into == body.topic => {
            return Err(Problem::invalid_request(
                "a replay writes into another topic than it reads ('into' = 'topic')",
            ));
        }
        (Some(_), false) => {}
    }
    for topic in std::iter::once(&body.topic).chain(&body.into) {
        if !weir_broker::is_valid_name(topic) {
            return Err(Problem::invalid_request(format!(
                "'{topic}' is not a topic name"
            )));
        }
    }
    let mut checks = vec![check("consume", "topic", &body.topic)];
    if let Some(into) = &body.into {
        checks.push(check("produce", "topic", into));
    }
    state.guard.require(principal.as_deref(), checks).await?;
    let slot = state.plugins.registry().get(&name).ok_or_else(|| {
        Problem::new(
            StatusCode::NOT_FOUND,
            "plugin_not_found",
            format!("no plugin named '{name}'"),
        )
    })?;
    let loaded = |version: &Option<String>| {
        match version {
            None => slot.current(),
            Some(v) => slot.loaded_version(v),
        }
        .ok_or_else(|| {
            Problem::new(
                StatusCode::NOT_FOUND,
                "version_not_loaded",
                format!(
                    "plugin '{name}' has no loaded version {} (the serving one and the last four that served are kept: GET /v1/plugins/{name}/versions)",
                    version.as_deref().unwrap_or("serving")
                ),
            )
        })
    };
    let plugin = loaded(&body.version)?;
    let source = state.broker.topic(&body.topic)?;
    let target = match &body.into {
        Some(into) => Target::Topic(
            state
                .broker
                .ensure_topic(into, source.partition_count())
                .await?,
        ),
        None => Target::Diff(loaded(&body.against)?),
    };
    let spec = ReplaySpec {
        source,
        from,
        to,
        target,
        max_rate: body.max_rate,
    };
    let replay = state.replays.start(&state.broker, plugin, spec).await?;
    Ok((StatusCode::ACCEPTED, Json(replay_status(&replay))))
}

/// `GET /v1/plugins/{name}/replays`.
pub async fn list(
    State(state): State<AppState>,
    Path(name): Path<String>,
) -> Result<Json<Value>, Problem> {
    let mut all = Vec::new();
    for r in state.replays.list().iter().filter(|r| r.plugin == name) {
        all.push(with_samples(&state, r).await?);
    }
    Ok(Json(json!({ "replays": all })))
}

/// `GET /v1/plugins/{name}/replays/{id}`.
pub async fn get(
    State(state): State<AppState>,
    Path((name, id)): Path<(String, String)>,
) -> Result<Json<Value>, Problem> {
    let id: u64 = super::params::parse_num("id", &id)?;
    let replay = state
        .replays
        .get(id)
        .filter(|r| r.plugin == name)
        .ok_or_else(|| {
            Problem::new(
                StatusCode::NOT_FOUND,
                "replay_not_found",
                format!("plugin '{name}' has no replay {id}"),
            )
        })?;
    Ok(Json(with_samples(&state, &replay).await?))
}

fn replay_status(r: &Replay) -> Value {
    let p = &r.progress;
    let n = |a: &std::sync::atomic::AtomicU64| a.load(Ordering::Relaxed);
    let mut v = json!({
        "id": r.id,
        "plugin": r.plugin,
        "version": r.version,
        "topic": r.source,
        "into": r.into,
        "started_ms": r.started_ms,
        "total": n(&p.total),
        "read": n(&p.read),
        "written": n(&p.written),
        "failed": n(&p.failed),
        "done": p.done.load(Ordering::Relaxed),
        "error": p.error.lock().clone(),
    });
    if let Some((against, report)) = &r.diff {
        v["diff"] = crate::wire::plugins::comparison(report);
        v["diff"]["against"] = json!(against);
    }
    v
}

/// [`replay_status`] with a diff's samples, through the source topic's redacting
/// steps.
async fn with_samples(state: &AppState, r: &Replay) -> Result<Value, Problem> {
    let mut v = replay_status(r);
    if let Some((_, report)) = &r.diff {
        v["diff"]["samples"] = super::shadow::samples(state, &r.plugin, report.clone()).await?;
    }
    Ok(v)
}
