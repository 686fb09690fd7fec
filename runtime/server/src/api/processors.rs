//! Processors (stream processor plugins): status, operator control, and read-only
//! looks at their state.
//!
//! - `GET /v1/processors`, `GET /v1/processors/{name}`: state, generation, version,
//!   inputs and outputs, lag, watermark, windows open, timers, each partition's
//!   progress, counters, last error.
//! - `POST /v1/processors/{name}/pause|resume`: persisted; the tasks follow at their
//!   next step. `POST /v1/processors/{name}/reset?to=earliest|latest|<offset>`: the
//!   state cleared and the offsets moved in one append; the processor starts again
//!   from there (a new generation).
//! - `GET /v1/processors/{name}/state/{key}`: the key's value on each partition
//!   that has it; `GET /v1/processors/{name}/state?prefix=&limit=`: a snapshot page.

use std::collections::HashMap;

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use serde_json::{Value, json};
use weir_connect::control::Desired;
use weir_processors::{ProcessorError, ResetTo};

use super::AppState;
use super::params::parse_num;
use super::problem::Problem;
use crate::wire::processors::{processor_status, state_entry};

/// Entries a snapshot page returns unless `limit` says otherwise.
const DEFAULT_PAGE: usize = 100;

/// `GET /v1/processors`.
pub async fn list(State(state): State<AppState>) -> Json<Value> {
    let list: Vec<Value> = state
        .processors
        .list()
        .iter()
        .map(processor_status)
        .collect();
    Json(json!({ "processors": list }))
}

/// `GET /v1/processors/{name}`.
pub async fn get(
    State(state): State<AppState>,
    Path(name): Path<String>,
) -> Result<Json<Value>, Problem> {
    let status = state
        .processors
        .status(&name)
        .ok_or_else(|| problem(ProcessorError::NotFound(name.clone())))?;
    let mut body = processor_status(&status);
    // The state's size: a read through it, so only here, not in the list.
    let processors = state.processors.clone();
    if let Ok((keys, bytes)) = super::blocking(move || processors.state_size(&name)).await? {
        body["state_size"] = json!({ "keys": keys, "bytes": bytes });
    }
    Ok(Json(body))
}

/// `POST /v1/processors/{name}/{action}`.
pub async fn control(
    State(state): State<AppState>,
    Path((name, action)): Path<(String, String)>,
    Query(query): Query<HashMap<String, String>>,
) -> Result<Json<Value>, Problem> {
    let to = match query.get("to").map(String::as_str) {
        None | Some("earliest") => ResetTo::Earliest,
        Some("latest") => ResetTo::Latest,
        Some(n) => ResetTo::Offset(parse_num("to", n)?),
    };
    let desired = match action.as_str() {
        "pause" => Desired::Paused,
        "resume" => Desired::Running,
        "reset" => {
            let offsets = state.processors.reset(&name, to).await.map_err(problem)?;
            let offsets: Vec<Value> = offsets
                .iter()
                .map(|(t, p, o)| json!({ "topic": t, "partition": p, "offset": o }))
                .collect();
            return Ok(Json(json!({ "processor": name, "reset": offsets })));
        }
        other => {
            return Err(Problem::invalid_request(format!(
                "no processor action '{other}' (pause, resume, reset)"
            )));
        }
    };
    state
        .processors
        .set_desired(&name, desired)
        .await
        .map(|s| Json(processor_status(&s)))
        .map_err(problem)
}

/// `GET /v1/processors/{name}/state/{key}`.
pub async fn state_key(
    State(state): State<AppState>,
    Path((name, key)): Path<(String, String)>,
) -> Result<Json<Value>, Problem> {
    let processors = state.processors.clone();
    let entries = super::blocking(move || processors.state_get(&name, key.as_bytes()))
        .await?
        .map_err(problem)?;
    if entries.is_empty() {
        return Err(Problem::new(
            StatusCode::NOT_FOUND,
            "state_key_not_found",
            "no partition of the processor's state has this key",
        ));
    }
    Ok(Json(json!({
        "entries": entries.iter().map(state_entry).collect::<Vec<_>>(),
    })))
}

/// `GET /v1/processors/{name}/state`.
pub async fn state_scan(
    State(state): State<AppState>,
    Path(name): Path<String>,
    Query(query): Query<HashMap<String, String>>,
) -> Result<Json<Value>, Problem> {
    let prefix = match query.get("prefix") {
        Some(p) if p.is_empty() => {
            return Err(Problem::invalid_request(
                "query parameter 'prefix' must not be empty (leave it out for every key)",
            ));
        }
        Some(p) => p.clone(),
        None => String::new(),
    };
    let limit = match query.get("limit") {
        Some(l) => parse_num("limit", l)?,
        None => DEFAULT_PAGE,
    };
    // `after=<partition>:<key>`: the last entry of the previous page.
    let after = match query.get("after") {
        None => None,
        Some(a) => {
            let (p, key) = a.split_once(':').ok_or_else(|| {
                Problem::invalid_request("query parameter 'after' is <partition>:<key>")
            })?;
            Some((parse_num::<u32>("after", p)?, key.as_bytes().to_vec()))
        }
    };
    let processors = state.processors.clone();
    let entries = super::blocking(move || {
        let after = after.as_ref().map(|(p, k)| (*p, k.as_slice()));
        processors.state_scan(&name, prefix.as_bytes(), after, limit)
    })
    .await?
    .map_err(problem)?;
    Ok(Json(json!({
        "entries": entries.iter().map(state_entry).collect::<Vec<_>>(),
    })))
}

fn problem(e: ProcessorError) -> Problem {
    match e {
        ProcessorError::NotFound(_) => Problem::new(StatusCode::NOT_FOUND, e.code(), e.to_string()),
        ProcessorError::Invalid(_) => Problem::new(StatusCode::CONFLICT, e.code(), e.to_string()),
        ProcessorError::Broker(e) => e.into(),
        _ => Problem::new(StatusCode::INTERNAL_SERVER_ERROR, e.code(), e.to_string()),
    }
}
