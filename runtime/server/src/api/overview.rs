//! The operator's overview, for the web console and `weir top`: topics with their
//! partitions, consumer groups with lag per partition, plugins, connectors and
//! health, in one JSON document.
//!
//! - `GET /v1/overview`: the document now.
//! - `GET /v1/overview/stream`: Server-Sent Events, the document every second
//!   (`event: overview`); rates are the differences between two documents.

use std::convert::Infallible;
use std::time::Duration;

use axum::Json;
use axum::extract::{Query, State};
use axum::response::sse::{Event, KeepAlive, Sse};
use futures_util::Stream;
use serde_json::{Value, json};

use super::AppState;
use super::groups::describe_json;
use super::problem::Problem;

/// `GET /v1/overview`.
pub async fn get(State(state): State<AppState>) -> Json<Value> {
    Json(document(&state).await)
}

/// `GET /v1/overview/stream?interval_ms=`: the overview every second (or
/// `interval_ms`, 200 to 60000).
pub async fn stream(
    State(state): State<AppState>,
    Query(query): Query<std::collections::HashMap<String, String>>,
) -> Result<Sse<impl Stream<Item = Result<Event, Infallible>>>, Problem> {
    let mut interval = Duration::from_secs(1);
    for (k, v) in &query {
        match k.as_str() {
            "interval_ms" => {
                let ms: u64 = v
                    .parse()
                    .ok()
                    .filter(|ms| (200..=60_000).contains(ms))
                    .ok_or_else(|| {
                        Problem::invalid_request(format!(
                            "interval_ms must be 200 to 60000, got '{v}'"
                        ))
                    })?;
                interval = Duration::from_millis(ms);
            }
            other => return Err(super::params::unknown_param(other, "interval_ms")),
        }
    }
    let stream = futures_util::stream::unfold((state, true), move |(state, first)| async move {
        if !first {
            tokio::time::sleep(interval).await;
        }
        let event = Event::default()
            .event("overview")
            .data(document(&state).await.to_string());
        Some((Ok(event), (state, false)))
    });
    Ok(Sse::new(stream).keep_alive(KeepAlive::default()))
}

/// The document.
async fn document(state: &AppState) -> Value {
    let broker = &state.broker;
    let topics: Vec<Value> = broker
        .topics()
        .iter()
        .map(|t| {
            let partitions: Vec<Value> = (0..t.partition_count())
                .filter_map(|p| t.partition(p).ok().map(|part| (p, part)))
                .map(|(p, part)| {
                    json!({
                        "partition": p,
                        "log_start_offset": part.log_start_offset(),
                        "high_watermark": part.high_watermark(),
                        "size_bytes": part.size_bytes(),
                    })
                })
                .collect();
            json!({ "name": t.name(), "partitions": partitions })
        })
        .collect();
    let mut groups = Vec::new();
    for name in broker.groups().list().unwrap_or_default() {
        if let Ok(g) = broker.groups().describe(&name).await {
            groups.push(describe_json(&g));
        }
    }
    let plugins: Vec<Value> = state
        .plugins
        .registry()
        .slots()
        .iter()
        .map(|s| crate::wire::plugins::plugin_status(&s.status()))
        .collect();
    let stats = broker.write_stats();
    let health = broker.health();
    let cluster = state.cluster.as_ref().map(|c| {
        json!({
            "node": c.node(),
            "nodes": c.nodes().iter().map(crate::wire::cluster::node).collect::<Vec<_>>(),
        })
    });
    json!({
        "cluster": cluster,
        "at_ms": weir_broker::now_ms(),
        "topics": topics,
        "groups": groups,
        "plugins": plugins,
        "connectors": state
            .connectors
            .list()
            .iter()
            .map(crate::wire::plugins::connector_status)
            .collect::<Vec<_>>(),
        "health": {
            "ready": health.failure.is_none(),
            "failure": health.failure,
            "disk_free_bytes": health.free_bytes,
            "disk_floor_bytes": health.floor_bytes,
            "storage_full": health.full,
            "flushes": stats.flushes,
            "flush_seconds_total": stats.flush_nanos as f64 / 1e9,
            "records_written": stats.records_written,
        },
    })
}
