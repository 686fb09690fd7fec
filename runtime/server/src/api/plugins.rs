//! `GET /v1/plugins` and `GET /v1/plugins/{name}`: what is loaded, its state
//! (`active`, `quarantined`, `failed`), counters and last error.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde_json::{Value, json};

use super::AppState;
use super::problem::Problem;

/// `GET /v1/plugins`.
pub async fn list(State(state): State<AppState>) -> Json<Value> {
    let plugins: Vec<Value> = state
        .broker
        .pipelines()
        .map(|p| p.registry().slots())
        .unwrap_or_default()
        .iter()
        .map(|s| json!(s.status()))
        .collect();
    Json(json!({ "plugins": plugins }))
}

/// `GET /v1/plugins/{name}`.
pub async fn get(
    State(state): State<AppState>,
    Path(name): Path<String>,
) -> Result<Json<Value>, Problem> {
    state
        .broker
        .pipelines()
        .and_then(|p| p.registry().get(&name))
        .map(|s| Json(json!(s.status())))
        .ok_or_else(|| {
            Problem::new(
                StatusCode::NOT_FOUND,
                "plugin_not_found",
                format!("no plugin named '{name}' is installed"),
            )
        })
}
