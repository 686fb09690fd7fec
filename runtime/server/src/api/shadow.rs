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
use weir_broker::plugins::{PluginFiles, ShadowSettings};

use super::AppState;
use super::problem::Problem;
use crate::wire::plugins::shadow_report;

/// Loads the deployed files as `name`'s shadow.
pub(super) async fn start(
    state: &AppState,
    name: &str,
    manifest: String,
    component: Vec<u8>,
    settings: ShadowSettings,
) -> Result<(StatusCode, Json<Value>), Problem> {
    let origin = format!("PUT /v1/plugins/{name}");
    let files = PluginFiles::from_bytes(manifest, component, &origin)
        .map_err(super::plugins::plugin_problem)?;
    if files.manifest.name != name {
        return Err(Problem::invalid_request(format!(
            "the manifest names plugin '{}', not '{name}'",
            files.manifest.name
        )));
    }
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
    Ok(Json(shadow_report(&shadow)))
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
    Ok(Json(shadow_report(&shadow)))
}
