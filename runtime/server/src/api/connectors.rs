//! Connectors (source and sink plugins): status and operator control.
//!
//! - `GET /v1/connectors`, `GET /v1/connectors/{name}`: state, desired state,
//!   version, topics, group and lag (sinks), counters, capability refusals, last error.
//! - `POST /v1/connectors/{name}/pause|resume|stop|start`: persisted; the connector
//!   follows at its next batch boundary. `resume` also restarts a connector that
//!   failed with `on_failure = "pause"`.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde_json::{Value, json};
use weir_connect::{ConnectError, Desired};

use super::AppState;
use super::problem::Problem;
use crate::wire::plugins::connector_status;

/// `GET /v1/connectors`.
pub async fn list(State(state): State<AppState>) -> Json<Value> {
    let list: Vec<Value> = state
        .connectors
        .list()
        .iter()
        .map(connector_status)
        .collect();
    Json(json!({ "connectors": list }))
}

/// `GET /v1/connectors/{name}`.
pub async fn get(
    State(state): State<AppState>,
    Path(name): Path<String>,
) -> Result<Json<Value>, Problem> {
    state
        .connectors
        .status(&name)
        .map(|s| Json(connector_status(&s)))
        .ok_or_else(|| problem(ConnectError::NotFound(name)))
}

/// `POST /v1/connectors/{name}/{action}`.
pub async fn control(
    State(state): State<AppState>,
    Path((name, action)): Path<(String, String)>,
) -> Result<Json<Value>, Problem> {
    let desired = match action.as_str() {
        "pause" => Desired::Paused,
        "resume" | "start" => Desired::Running,
        "stop" => Desired::Stopped,
        other => {
            return Err(Problem::invalid_request(format!(
                "no connector action '{other}' (pause, resume, stop, start)"
            )));
        }
    };
    state
        .connectors
        .set_desired(&name, desired)
        .await
        .map(|s| Json(connector_status(&s)))
        .map_err(problem)
}

fn problem(e: ConnectError) -> Problem {
    match e {
        ConnectError::NotFound(_) => Problem::new(StatusCode::NOT_FOUND, e.code(), e.to_string()),
        ConnectError::Broker(e) => e.into(),
        _ => Problem::new(StatusCode::INTERNAL_SERVER_ERROR, e.code(), e.to_string()),
    }
}
