//! Topic administration: create, list, describe, delete.

use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use serde_json::{Value, json};
use weir_broker::pipeline::{OnError, StepSpec};
use weir_broker::{Broker, Created, Topic, TopicConfig};

use super::AppState;
use super::body::read_limited;
use super::problem::Problem;
use crate::auth::{Principal, check};
use crate::wire::pipeline;

/// The JSON description of a topic, with its pipeline when plugins are enabled:
/// `pipeline` is the configured steps, `chain` what a publish runs now (configured
/// steps, then manifest attachments, router last).
pub fn describe(broker: &Broker, topic: &Topic) -> Value {
    let mut v = describe_log(topic);
    if let Some(p) = broker.pipelines() {
        let configured = p
            .configured(topic)
            .map(|c| (*c).clone())
            .unwrap_or_default();
        let chain: Vec<Value> = match p.chain(topic) {
            Ok(chain) => chain
                .steps
                .iter()
                .map(|s| {
                    json!({
                        "plugin": s.name,
                        "kind": s.kind().map(|k| k.as_str()),
                        "version": s.plugin.as_ref().map(|p| p.hash().to_string()),
                        "on_error": pipeline::on_error(s.on_error),
                        "dead_letter_topic": s.dead_letter_topic,
                    })
                })
                .collect(),
            Err(e) => vec![json!({ "error": e.to_string(), "code": e.code() })],
        };
        v["pipeline"] = json!(configured.iter().map(pipeline::step).collect::<Vec<_>>());
        v["chain"] = json!(chain);
    }
    v
}

fn describe_log(topic: &Topic) -> Value {
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
    json!({
        "name": topic.name(),
        "config": pipeline::topic_config(topic.config()),
        "partitions": partitions,
    })
}

/// `PUT /v1/topics/{t}`: 201 created, 200 identical exists, 409 different exists.
pub async fn create(
    State(state): State<AppState>,
    Path(name): Path<String>,
    principal: Option<Extension<Principal>>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, Problem> {
    let bytes = read_limited(&headers, body, 64 << 10, state.limits.body_idle_timeout()).await?;
    let mut body: Value = serde_json::from_slice(if bytes.is_empty() { b"{}" } else { &bytes })
        .map_err(|e| Problem::from_json("topic config", &e))?;
    // `pipeline` is the broker's; the rest is the log's config.
    let mut pipeline: Option<Vec<StepSpec>> =
        match body.as_object_mut().and_then(|o| o.remove("pipeline")) {
            Some(p) => Some(pipeline::steps(p).map_err(|e| Problem::from_json("pipeline", &e))?),
            None => None,
        };
    let config: TopicConfig = serde_json::from_value::<pipeline::TopicConfigBody>(body)
        .map_err(|e| Problem::from_json("topic config", &e))?
        .into();
    if let Some(steps) = &mut pipeline {
        authorize_steps(&state, principal.as_deref(), &name, steps).await?;
    }
    let created = state.broker.create_topic(&name, config).await?;
    let topic = state.broker.topic(&name)?;
    if let Some(steps) = pipeline {
        set_steps(&state, &topic, steps).await?;
    }
    let status = match created {
        Created::New => StatusCode::CREATED,
        Created::Existing => StatusCode::OK,
    };
    Ok((status, Json(describe(&state.broker, &topic))).into_response())
}

/// A pipeline makes the topic's records flow through plugins and into dead-letter
/// topics: configuring one needs `plugin-use` on each step's plugin, `produce` on
/// each dead-letter topic and on each destination a step may route to, besides
/// `topic-admin` on the topic (the middleware's). A step's approved destinations are
/// those the request names, or else what the plugin declares now (none when it is
/// not a router yet); they are stored with the step, and a route must be in them.
async fn authorize_steps(
    state: &AppState,
    principal: Option<&Principal>,
    topic: &str,
    steps: &mut [StepSpec],
) -> Result<(), Problem> {
    let mut checks = Vec::new();
    for s in steps.iter_mut() {
        checks.push(check("plugin-use", "plugin", &s.plugin));
        if s.on_error == OnError::DeadLetter {
            let dlq = s
                .dead_letter_topic
                .clone()
                .unwrap_or_else(|| format!("{topic}.dlq"));
            checks.push(check("produce", "topic", &dlq));
        }
        let approved = s.destinations.get_or_insert_with(|| {
            state
                .plugins
                .registry()
                .get(&s.plugin)
                .and_then(|slot| slot.manifest())
                .and_then(|m| m.router)
                .map(|r| r.destinations)
                .unwrap_or_default()
        });
        for d in approved.iter() {
            checks.push(check("produce", "topic", d));
        }
    }
    state.guard.require(principal, checks).await
}

async fn set_steps(state: &AppState, topic: &Topic, steps: Vec<StepSpec>) -> Result<(), Problem> {
    let pipelines = state
        .broker
        .pipelines()
        .ok_or_else(|| Problem::invalid_request("plugins are not enabled on this broker"))?;
    pipelines.set_configured(topic, steps).await?;
    Ok(())
}

/// `GET /v1/topics/{t}/pipeline`: the configured steps and the effective chain.
pub async fn get_pipeline(
    State(state): State<AppState>,
    Path(name): Path<String>,
) -> Result<Json<Value>, Problem> {
    let topic = state.broker.topic(&name)?;
    let d = describe(&state.broker, &topic);
    Ok(Json(
        json!({ "pipeline": d["pipeline"], "chain": d["chain"] }),
    ))
}

/// `PUT /v1/topics/{t}/pipeline` with `[{"plugin","on_error","dead_letter_topic"}]`
/// (or `{"steps":[...]}`): replaces the configured steps; `[]` removes them.
pub async fn put_pipeline(
    State(state): State<AppState>,
    Path(name): Path<String>,
    principal: Option<Extension<Principal>>,
    headers: HeaderMap,
    body: Body,
) -> Result<Json<Value>, Problem> {
    let topic = state.broker.topic(&name)?;
    let bytes = read_limited(&headers, body, 64 << 10, state.limits.body_idle_timeout()).await?;
    let mut v: Value =
        serde_json::from_slice(&bytes).map_err(|e| Problem::from_json("pipeline", &e))?;
    if let Some(steps) = v.as_object_mut().and_then(|o| o.remove("steps")) {
        v = steps;
    }
    let mut steps = pipeline::steps(v).map_err(|e| Problem::from_json("pipeline", &e))?;
    authorize_steps(&state, principal.as_deref(), &name, &mut steps).await?;
    set_steps(&state, &topic, steps).await?;
    let d = describe(&state.broker, &topic);
    Ok(Json(
        json!({ "pipeline": d["pipeline"], "chain": d["chain"] }),
    ))
}

/// `GET /v1/topics`.
pub async fn list(State(state): State<AppState>) -> Json<Value> {
    let topics: Vec<Value> = state
        .broker
        .topics()
        .iter()
        .map(|t| describe(&state.broker, t))
        .collect();
    Json(json!({ "topics": topics }))
}

/// `GET /v1/topics/{t}`.
pub async fn get(
    State(state): State<AppState>,
    Path(name): Path<String>,
) -> Result<Json<Value>, Problem> {
    let topic = state.broker.topic(&name)?;
    Ok(Json(describe(&state.broker, &topic)))
}

/// `DELETE /v1/topics/{t}`: 204.
pub async fn delete(
    State(state): State<AppState>,
    Path(name): Path<String>,
) -> Result<StatusCode, Problem> {
    state.broker.delete_topic(&name).await?;
    Ok(StatusCode::NO_CONTENT)
}
