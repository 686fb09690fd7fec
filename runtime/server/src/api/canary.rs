//! Canaries: a candidate version serving a share of the keys beside the serving one,
//! promoted or rolled back by its failure rate (see `weir_host`'s
//! `registry::canary`).
//!
//! - `PUT /v1/plugins/{name}?canary_percent=N[&promote_after=N&max_error_increase=P]`
//!   (the deploy's multipart body): 201, the candidate serves N % of the keys.
//! - `GET /v1/plugins/{name}/canary`: how each version did so far.
//! - `POST /v1/plugins/{name}/canary/promote`: promote now.
//! - `DELETE /v1/plugins/{name}/canary`: roll it back now.
//!
//! A canary lives in this process: a restart ends it (the serving version's files are
//! in the plugin directory; a promoted version's are written there). In cluster mode
//! a version is deployed to every node at once, so canaries are refused there.

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::{Extension, Json};
use serde_json::{Value, json};
use weir_broker::plugins::{Canary, CanarySettings, CanaryVerdict, Slot};

use super::AppState;
use super::problem::Problem;
use crate::auth::Principal;
use crate::auth::operations::deploy_checks;
use crate::wire::plugins::canary_report;

/// `?canary_percent=N[&promote_after=N&max_error_increase=P]` on a deploy: the
/// version runs as a canary instead of replacing the serving one.
pub(super) fn settings(query: &HashMap<String, String>) -> Result<Option<CanarySettings>, Problem> {
    let Some(percent) = query.get("canary_percent") else {
        for name in ["promote_after", "max_error_increase"] {
            if query.contains_key(name) {
                return Err(Problem::invalid_request(format!(
                    "query parameter '{name}' applies to a canary: add canary_percent"
                )));
            }
        }
        return Ok(None);
    };
    let defaults = CanarySettings::default();
    let percent = match super::params::parse_num::<u32>("canary_percent", percent)? {
        n @ 1..=99 => n,
        _ => {
            return Err(Problem::invalid_request(
                "query parameter 'canary_percent' must be between 1 and 99 (100 is a deploy)",
            ));
        }
    };
    let promote_after = match query.get("promote_after") {
        None => defaults.promote_after,
        Some(v) => match super::params::parse_num::<u64>("promote_after", v)? {
            0 => {
                return Err(Problem::invalid_request(
                    "query parameter 'promote_after' must be at least 1",
                ));
            }
            n => n,
        },
    };
    let max_error_increase = match query.get("max_error_increase") {
        None => defaults.max_error_rate_increase,
        Some(v) => match v.parse::<f64>() {
            Ok(p) if (0.0..=100.0).contains(&p) => p / 100.0,
            _ => {
                return Err(Problem::invalid_request(format!(
                    "query parameter 'max_error_increase' is in percentage points, from 0 to 100; got '{v}'"
                )));
            }
        },
    };
    Ok(Some(CanarySettings {
        percent,
        promote_after,
        max_error_rate_increase: max_error_increase,
    }))
}

/// Loads the deployed files as `name`'s canary.
pub(super) async fn start(
    state: &AppState,
    name: &str,
    manifest: String,
    component: Vec<u8>,
    settings: CanarySettings,
) -> Result<(StatusCode, Json<Value>), Problem> {
    if state.cluster.is_some() {
        return Err(Problem::new(
            StatusCode::CONFLICT,
            "canary_not_in_cluster_mode",
            "a cluster deploys a version to every node at once; canaries run on the embedded store (shadow and replay work in cluster mode)",
        ));
    }
    let files = super::plugins::candidate_files(name, manifest, component)?;
    let registry = state.plugins.registry().clone();
    let owned = name.to_string();
    let canary = super::blocking(move || registry.start_canary(&owned, files, settings))
        .await?
        .map_err(super::plugins::plugin_problem)?;
    Ok((
        StatusCode::CREATED,
        Json(json!({
            "plugin": name,
            "version": canary.plugin.hash(),
            "outcome": "canary",
            "report": canary_report(&canary),
        })),
    ))
}

fn no_canary(name: &str) -> Problem {
    Problem::new(
        StatusCode::NOT_FOUND,
        "no_canary",
        format!(
            "plugin '{name}' has no canary running (start one with PUT /v1/plugins/{name}?canary_percent=N)"
        ),
    )
}

fn running(
    state: &AppState,
    name: &str,
) -> Result<
    (
        std::sync::Arc<weir_broker::plugins::Slot>,
        std::sync::Arc<Canary>,
    ),
    Problem,
> {
    let slot = state
        .plugins
        .registry()
        .get(name)
        .ok_or_else(|| no_canary(name))?;
    let canary = slot.canary().ok_or_else(|| no_canary(name))?;
    Ok((slot, canary))
}

/// `GET /v1/plugins/{name}/canary`.
pub async fn get(
    State(state): State<AppState>,
    Path(name): Path<String>,
) -> Result<Json<Value>, Problem> {
    let (_, canary) = running(&state, &name)?;
    Ok(Json(canary_report(&canary)))
}

/// `POST /v1/plugins/{name}/canary/promote`: the candidate serves every key now.
/// Like a rollback, the caller needs what deploying the candidate over the serving
/// version would need.
pub async fn promote(
    State(state): State<AppState>,
    Path(name): Path<String>,
    principal: Option<Extension<Principal>>,
) -> Result<Json<Value>, Problem> {
    let (slot, canary) = running(&state, &name)?;
    let current = slot.current();
    let checks = deploy_checks(
        canary.plugin.manifest(),
        current.as_deref().map(|p| p.manifest()),
        state.guard.policy(),
    );
    state.guard.require(principal.as_deref(), checks).await?;
    let (_, tally) = canary.tallies();
    let reason = format!("promoted through the API after {} events", tally.events);
    conclude(
        &name,
        slot,
        &canary,
        CanaryVerdict::Promote(reason),
        "promoted",
    )
    .await
}

/// `DELETE /v1/plugins/{name}/canary`: the serving version takes every key back.
pub async fn stop(
    State(state): State<AppState>,
    Path(name): Path<String>,
) -> Result<Json<Value>, Problem> {
    let (slot, canary) = running(&state, &name)?;
    let reason = "rolled back through the API".to_string();
    let verdict = CanaryVerdict::RollBack(reason);
    conclude(&name, slot, &canary, verdict, "rolled_back").await
}

/// Carries out `verdict`, or answers 409 when the canary ended meanwhile (judged
/// automatically, or replaced): the caller must not be told what did not happen.
async fn conclude(
    name: &str,
    slot: Arc<Slot>,
    canary: &Arc<Canary>,
    verdict: CanaryVerdict,
    outcome: &str,
) -> Result<Json<Value>, Problem> {
    let done = {
        let canary = canary.clone();
        super::blocking(move || slot.conclude_canary(&canary, verdict)).await?
    };
    if !done {
        return Err(Problem::new(
            StatusCode::CONFLICT,
            "canary_ended",
            format!(
                "the canary of '{name}' ended meanwhile (see GET /v1/plugins/{name}/versions); nothing was changed"
            ),
        ));
    }
    let mut report = canary_report(canary);
    report["outcome"] = json!(outcome);
    Ok(Json(report))
}
