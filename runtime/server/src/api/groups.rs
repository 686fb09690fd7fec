//! Consumer groups over HTTP: group fetches, commits, listing, lag, delete and reset.

use std::collections::HashMap;

use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use serde::Deserialize;
use serde_json::{Value, json};
use weir_broker::groups::{FetchRequest, GroupInfo, OffsetReset, ResetTarget};

use super::AppState;
use super::body::read_limited;
use super::params::{
    FILTER_PARAMS, FetchParams, FilterParams, filter_reads, non_empty, unknown_param,
    writable_group,
};
use super::problem::Problem;
use crate::auth::{Principal, check};
use crate::wire::records::group_fetch_response;

/// Parses `auto_offset_reset`.
pub fn parse_reset(v: &str) -> Result<OffsetReset, Problem> {
    match v {
        "earliest" => Ok(OffsetReset::Earliest),
        "latest" => Ok(OffsetReset::Latest),
        other => Err(Problem::invalid_request(format!(
            "auto_offset_reset must be 'earliest' or 'latest', got '{other}'"
        ))),
    }
}

/// `GET /v1/topics/{t}/records?group=&member=&max_records=&max_bytes=&timeout_ms=&commit=auto&auto_offset_reset=`.
pub async fn fetch(
    State(state): State<AppState>,
    Path(topic): Path<String>,
    Query(query): Query<HashMap<String, String>>,
) -> Result<Response, Problem> {
    let mut group = None;
    let mut member = None;
    let mut fetch = FetchParams::new();
    let mut auto_commit = false;
    let mut reset = OffsetReset::Earliest;
    let mut filter = FilterParams::default();
    for (k, v) in &query {
        match k.as_str() {
            "group" => {
                writable_group(v)?;
                group = Some(v.as_str());
            }
            "member" => member = Some(non_empty(k, v)?),
            other if fetch.take(other, v, &state.limits)? => {}
            other if filter.take(other, v)? => {}
            "commit" => {
                auto_commit = match v.as_str() {
                    "auto" => true,
                    "none" => false,
                    other => {
                        return Err(Problem::invalid_request(format!(
                            "commit must be 'auto' or 'none', got '{other}'"
                        )));
                    }
                }
            }
            "auto_offset_reset" => reset = parse_reset(v)?,
            other => {
                return Err(unknown_param(
                    other,
                    &format!(
                        "group, member, max_records, max_bytes, timeout_ms, commit, auto_offset_reset, {FILTER_PARAMS}"
                    ),
                ));
            }
        }
    }
    let group = group.ok_or_else(|| {
        Problem::invalid_request(
            "'group' is required here; to read one partition without a group use \
             /v1/topics/{topic}/partitions/{partition}/records",
        )
    })?;
    let filter = filter.build(&state.broker)?;
    let t = state.broker.topic(&topic)?;
    let mut fetched = state
        .broker
        .groups()
        .fetch(FetchRequest {
            group,
            member,
            topic: &topic,
            limits: fetch.limits,
            wait: fetch.wait,
            auto_commit,
            reset,
        })
        .await?;
    let (reads, deliveries) =
        filter_reads(filter.as_ref(), &t, std::mem::take(&mut fetched.results)).await?;
    fetched.results = reads;
    let count: usize = fetched.results.iter().map(|(_, r)| r.count).sum();
    let _span = tracing::debug_span!(
        "receive",
        messaging.system = "weir",
        messaging.operation.type = "receive",
        messaging.destination.name = %topic,
        messaging.consumer.group.name = %group,
        messaging.batch.message_count = count,
    )
    .entered();
    tracing::debug!(member = %fetched.member, "delivered");
    for (_, read) in &fetched.results {
        state.telemetry.delivered(&topic, read);
    }
    Ok(super::json_response(group_fetch_response(
        &topic,
        &fetched,
        &deliveries,
    )))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CommitBody {
    #[serde(default)]
    member: Option<String>,
    offsets: Vec<CommitEntry>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CommitEntry {
    topic: String,
    partition: u32,
    offset: u64,
}

/// `POST /v1/groups/{g}/offsets`: durable before the 200.
pub async fn commit(
    State(state): State<AppState>,
    Path(group): Path<String>,
    Query(query): Query<HashMap<String, String>>,
    principal: Option<Extension<Principal>>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, Problem> {
    writable_group(&group)?;
    let mut member = None;
    for (k, v) in &query {
        match k.as_str() {
            "member" => member = Some(non_empty(k, v)?.to_string()),
            other => return Err(unknown_param(other, "member")),
        }
    }
    let bytes = read_limited(
        &headers,
        body,
        state.limits.max_request_bytes,
        state.limits.body_idle_timeout(),
    )
    .await?;
    let body: CommitBody =
        serde_json::from_slice(&bytes).map_err(|e| Problem::from_json("commit body", &e))?;
    let member = body.member.or(member);
    let offsets: Vec<(String, u32, u64)> = body
        .offsets
        .into_iter()
        .map(|e| (e.topic, e.partition, e.offset))
        .collect();
    // As in Kafka, moving a group's position on a topic needs read on the topic too.
    let topics: std::collections::BTreeSet<String> =
        offsets.iter().map(|(t, _, _)| t.clone()).collect();
    let checks: Vec<_> = topics
        .iter()
        .map(|t| check("consume", "topic", t))
        .collect();
    state.guard.require(principal.as_deref(), checks).await?;
    state
        .broker
        .groups()
        .commit(&group, member.as_deref(), &offsets)
        .await?;
    Ok(Json(json!({ "committed": offsets.len() })).into_response())
}

/// `GET /v1/groups`.
pub async fn list(
    State(state): State<AppState>,
    principal: Option<Extension<Principal>>,
) -> Result<Json<Value>, Problem> {
    let names = state.broker.groups().list()?;
    let mut groups = Vec::with_capacity(names.len());
    for name in names {
        // A group can vanish between listing and describing; skip it then.
        if let Ok(info) = state.broker.groups().describe(&name).await {
            groups.push(summary(&visible(&state, principal.as_deref(), info).await?));
        }
    }
    Ok(Json(json!({ "groups": groups })))
}

/// `info` with only the topics `principal` may describe: a group's offsets, lag and
/// assignments say how far a topic has been written and read, which is the topic's
/// to tell, not the group's.
async fn visible(
    state: &AppState,
    principal: Option<&Principal>,
    mut info: GroupInfo,
) -> Result<GroupInfo, Problem> {
    let mut topics: Vec<String> = info.partitions.iter().map(|p| p.topic.clone()).collect();
    topics.extend(
        info.members
            .iter()
            .flat_map(|m| m.assignments.iter().map(|(t, _)| t.clone())),
    );
    topics.sort();
    topics.dedup();
    let mut hidden = Vec::new();
    for t in topics {
        if !state
            .guard
            .permits(principal, check("describe", "topic", &t))
            .await?
        {
            hidden.push(t);
        }
    }
    if !hidden.is_empty() {
        info.partitions.retain(|p| !hidden.contains(&p.topic));
        for m in &mut info.members {
            m.assignments.retain(|(t, _)| !hidden.contains(t));
        }
    }
    Ok(info)
}

fn summary(info: &GroupInfo) -> Value {
    let lag: u64 = info.partitions.iter().map(|p| p.lag_records).sum();
    let mut topics: Vec<&str> = info.partitions.iter().map(|p| p.topic.as_str()).collect();
    topics.dedup();
    json!({
        "group": info.group,
        "members": info.members.len(),
        "topics": topics,
        "lag_records": lag,
    })
}

/// The JSON description of a group.
pub fn describe_json(info: &GroupInfo) -> Value {
    let members: Vec<Value> = info
        .members
        .iter()
        .map(|m| {
            let assignments: Vec<Value> = m
                .assignments
                .iter()
                .map(|(t, ps)| json!({ "topic": t, "partitions": ps }))
                .collect();
            json!({ "member": m.member, "assignments": assignments, "idle_ms": m.idle_ms })
        })
        .collect();
    let partitions: Vec<Value> = info
        .partitions
        .iter()
        .map(|p| {
            json!({
                "topic": p.topic,
                "partition": p.partition,
                "committed_offset": p.committed_offset,
                "committed_at_ms": p.committed_at_ms,
                "log_start_offset": p.log_start_offset,
                "high_watermark": p.high_watermark,
                "lag_records": p.lag_records,
                "lag_ms": p.lag_ms,
                "owner": p.owner,
            })
        })
        .collect();
    json!({
        "group": info.group,
        "generation": info.generation,
        "state": if info.members.is_empty() { "empty" } else { "stable" },
        "members": members,
        "partitions": partitions,
    })
}

/// `GET /v1/groups/{g}`: members, assignments, committed offsets and lag, of the
/// topics the caller may describe.
pub async fn get(
    State(state): State<AppState>,
    Path(group): Path<String>,
    principal: Option<Extension<Principal>>,
) -> Result<Json<Value>, Problem> {
    let info = state.broker.groups().describe(&group).await?;
    let info = visible(&state, principal.as_deref(), info).await?;
    Ok(Json(describe_json(&info)))
}

/// `GET /v1/groups/{g}/offsets`: the committed offsets (the `partitions` of describe).
pub async fn offsets(
    State(state): State<AppState>,
    Path(group): Path<String>,
    principal: Option<Extension<Principal>>,
) -> Result<Json<Value>, Problem> {
    let info = state.broker.groups().describe(&group).await?;
    let info = visible(&state, principal.as_deref(), info).await?;
    let full = describe_json(&info);
    Ok(Json(
        json!({ "group": info.group, "offsets": full["partitions"] }),
    ))
}

/// `DELETE /v1/groups/{g}`: 204; 409 `group_not_empty` while members are live.
/// Deleting a group discards its position on every topic it committed offsets for,
/// so it needs `consume` on each of them (as resetting them one by one would).
pub async fn delete(
    State(state): State<AppState>,
    Path(group): Path<String>,
    principal: Option<Extension<Principal>>,
) -> Result<StatusCode, Problem> {
    writable_group(&group)?;
    let info = state.broker.groups().describe(&group).await?;
    let mut checks: Vec<_> = info
        .partitions
        .iter()
        .filter(|p| p.committed_offset.is_some())
        .map(|p| check("consume", "topic", &p.topic))
        .collect();
    checks.dedup();
    state.guard.require(principal.as_deref(), checks).await?;
    state.broker.groups().delete(&group).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `DELETE /v1/groups/{g}/members/{m}`: a clean leave; partitions move at once.
pub async fn leave(
    State(state): State<AppState>,
    Path((group, member)): Path<(String, String)>,
) -> Result<StatusCode, Problem> {
    writable_group(&group)?;
    if state.broker.groups().leave(&group, &member).await? {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(Problem::new(
            StatusCode::NOT_FOUND,
            "member_not_found",
            format!("group '{group}' has no live member '{member}'"),
        ))
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ResetBody {
    topic: String,
    #[serde(default)]
    partitions: Option<Vec<u32>>,
    #[serde(default)]
    to: Option<String>,
    #[serde(default)]
    offset: Option<u64>,
    #[serde(default)]
    timestamp_ms: Option<i64>,
}

/// `POST /v1/groups/{g}/offsets/reset` with `{"topic", "partitions"?, and one of
/// "to": "earliest"|"latest", "offset": N, "timestamp_ms": T}`.
pub async fn reset(
    State(state): State<AppState>,
    Path(group): Path<String>,
    principal: Option<Extension<Principal>>,
    headers: HeaderMap,
    body: Body,
) -> Result<Json<Value>, Problem> {
    writable_group(&group)?;
    let bytes = read_limited(&headers, body, 64 << 10, state.limits.body_idle_timeout()).await?;
    let body: ResetBody =
        serde_json::from_slice(&bytes).map_err(|e| Problem::from_json("reset body", &e))?;
    state
        .guard
        .require(
            principal.as_deref(),
            [check("consume", "topic", &body.topic)],
        )
        .await?;
    let target = match (body.to.as_deref(), body.offset, body.timestamp_ms) {
        (Some("earliest"), None, None) => ResetTarget::Earliest,
        (Some("latest"), None, None) => ResetTarget::Latest,
        (None, Some(o), None) => ResetTarget::Offset(o),
        (None, None, Some(t)) => ResetTarget::Timestamp(t),
        _ => {
            return Err(Problem::invalid_request(
                "give exactly one of \"to\": \"earliest\"|\"latest\", \"offset\": N, \"timestamp_ms\": T",
            ));
        }
    };
    let moved = state
        .broker
        .groups()
        .reset(&group, &body.topic, body.partitions.as_deref(), target)
        .await?;
    let offsets: Vec<Value> = moved
        .iter()
        .map(|(p, o)| json!({ "topic": body.topic, "partition": p, "offset": o }))
        .collect();
    Ok(Json(json!({ "group": group, "offsets": offsets })))
}
