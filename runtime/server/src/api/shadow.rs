//! Shadows: a candidate version of a filter or transform compared with the serving
//! one on live batches, its outputs dropped (see `weir_host`'s `registry::shadow`).
//!
//! - `PUT /v1/plugins/{name}?shadow=true[&sample_percent=&max_share_percent=]` (the
//!   deploy's multipart body): 201, the candidate shadows the serving version. Nothing
//!   it produces is stored and no answer changes.
//! - `GET /v1/plugins/{name}/shadow`: the comparison so far, with samples of differing
//!   events (their values: `plugin-admin`, like the deploy).
//! - `DELETE /v1/plugins/{name}/shadow`: stops it; answers the final report.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde_json::{Value, json};
use std::collections::HashMap;
use std::sync::Arc;

use weir_broker::pipeline::redaction::{self, Shown};
use weir_broker::plugins::{BatchInfo, Plugin, Shadow, ShadowReport, ShadowSettings};

use super::AppState;
use super::problem::Problem;
use crate::wire::plugins::{shadow_report, shown};

/// Loads the deployed files as `name`'s shadow.
pub(super) async fn start(
    state: &AppState,
    name: &str,
    manifest: String,
    component: Vec<u8>,
    settings: ShadowSettings,
) -> Result<(StatusCode, Json<Value>), Problem> {
    let files = super::plugins::candidate_files(name, manifest, component)?;
    let registry = state.plugins.registry().clone();
    let owned = name.to_string();
    let shadow = super::blocking(move || registry.start_shadow(&owned, files, settings))
        .await?
        .map_err(super::plugins::plugin_problem)?;
    Ok((
        StatusCode::CREATED,
        Json(json!({
            "plugin": name,
            "version": shadow.plugin.hash(),
            "outcome": "shadowing",
            "report": shadow_report(&shadow),
        })),
    ))
}

fn no_shadow(name: &str) -> Problem {
    Problem::new(
        StatusCode::NOT_FOUND,
        "no_shadow",
        format!(
            "plugin '{name}' has no shadow (deploy one with PUT /v1/plugins/{name}?shadow=true)"
        ),
    )
}

/// `GET /v1/plugins/{name}/shadow`.
pub async fn get(
    State(state): State<AppState>,
    Path(name): Path<String>,
) -> Result<Json<Value>, Problem> {
    let shadow = state
        .plugins
        .registry()
        .get(&name)
        .and_then(|s| s.shadow())
        .ok_or_else(|| no_shadow(&name))?;
    Ok(Json(report(&state, &name, &shadow).await?))
}

/// A shadow's report with its samples.
async fn report(state: &AppState, name: &str, shadow: &Shadow) -> Result<Value, Problem> {
    let mut v = shadow_report(shadow);
    v["samples"] = samples(state, name, shadow.report.clone()).await?;
    Ok(v)
}

/// The samples of `report`, each value passed through the redacting steps of its
/// topic's chain after `plugin` (see `weir_broker::pipeline::redaction`). A sample
/// whose topic's chain cannot be resolved any more is withheld.
pub(super) async fn samples(
    state: &AppState,
    plugin: &str,
    report: Arc<ShadowReport>,
) -> Result<Value, Problem> {
    let (broker, plugin) = (state.broker.clone(), plugin.to_string());
    super::blocking(move || {
        let samples: Vec<_> = report.samples.lock().iter().cloned().collect();
        let mut chains: HashMap<String, Option<Vec<Arc<Plugin>>>> = HashMap::new();
        let out: Vec<Value> = samples
            .iter()
            .map(|d| {
                let redactors: &Option<_> = chains.entry(d.topic.clone()).or_insert_with(|| {
                    let topic = broker.topic(&d.topic).ok()?;
                    match broker.pipelines() {
                        Some(p) => Some(redaction::redactors(&p.chain(&topic).ok()?, &plugin)),
                        None => Some(Vec::new()),
                    }
                });
                let info = BatchInfo {
                    topic: d.topic.clone(),
                    partitions: 1,
                };
                let show = |values: &Vec<Vec<u8>>| -> Vec<Value> {
                    values
                        .iter()
                        .map(|v| match redactors {
                            Some(r) => shown(&redaction::redact(r, &info, v)),
                            None => shown(&Shown::Withheld),
                        })
                        .collect()
                };
                json!({ "kind": d.kind, "old": show(&d.old), "new": show(&d.new) })
            })
            .collect();
        Value::Array(out)
    })
    .await
}

/// `DELETE /v1/plugins/{name}/shadow`.
pub async fn stop(
    State(state): State<AppState>,
    Path(name): Path<String>,
) -> Result<Json<Value>, Problem> {
    let slot = state.plugins.registry().get(&name);
    let shadow = slot
        .as_ref()
        .and_then(|s| s.shadow())
        .ok_or_else(|| no_shadow(&name))?;
    if let Some(slot) = slot {
        slot.set_shadow(None);
    }
    Ok(Json(report(&state, &name, &shadow).await?))
}
