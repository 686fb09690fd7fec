//! Topic administration: create, list, describe, delete.

use axum::Json;
use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};
use weir_broker::{Created, Topic, TopicConfig};

use super::AppState;
use super::body::read_limited;
use super::problem::Problem;

/// The JSON description of a topic.
pub fn describe(topic: &Topic) -> Value {
    let partitions: Vec<Value> = topic
        .offsets()
        .into_iter()
        .map(|o| {
            json!({
                "partition": o.partition,
                "log_start_offset": o.log_start_offset,
                "high_watermark": o.high_watermark,
                "size_bytes": o.size_bytes,
            })
        })
        .collect();
    json!({ "name": topic.name(), "config": topic.config(), "partitions": partitions })
}

/// `PUT /v1/topics/{t}`: 201 created, 200 identical exists, 409 different exists.
pub async fn create(
    State(state): State<AppState>,
    Path(name): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, Problem> {
    let bytes = read_limited(&headers, body, 64 << 10).await?;
    let config: TopicConfig = serde_json::from_slice(if bytes.is_empty() { b"{}" } else { &bytes })
        .map_err(|e| Problem::from_json("topic config", &e))?;
    let store = state.broker.store().clone();
    let created = {
        let name = name.clone();
        tokio::task::spawn_blocking(move || store.create_topic(&name, config))
            .await
            .map_err(|e| {
                Problem::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "internal_error",
                    format!("topic creation did not finish: {e}"),
                )
            })??
    };
    let topic = state.broker.store().topic(&name)?;
    let status = match created {
        Created::New => StatusCode::CREATED,
        Created::Existing => StatusCode::OK,
    };
    Ok((status, Json(describe(&topic))).into_response())
}

/// `GET /v1/topics`.
pub async fn list(State(state): State<AppState>) -> Json<Value> {
    let topics: Vec<Value> = state
        .broker
        .store()
        .topics()
        .iter()
        .map(|t| describe(t))
        .collect();
    Json(json!({ "topics": topics }))
}

/// `GET /v1/topics/{t}`.
pub async fn get(
    State(state): State<AppState>,
    Path(name): Path<String>,
) -> Result<Json<Value>, Problem> {
    let topic = state.broker.store().topic(&name)?;
    Ok(Json(describe(&topic)))
}

/// `DELETE /v1/topics/{t}`: 204.
pub async fn delete(
    State(state): State<AppState>,
    Path(name): Path<String>,
) -> Result<StatusCode, Problem> {
    state.broker.store().delete_topic(&name).await?;
    Ok(StatusCode::NO_CONTENT)
}
