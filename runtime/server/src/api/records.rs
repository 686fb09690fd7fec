//! Publishing and fetching records.

use std::collections::HashMap;

use axum::Extension;
use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue};
use axum::response::Response;
use tracing::Instrument;
use weir_broker::Acks;
use weir_broker::idempotence::Retry;

use super::body::read_limited;
use super::params::{
    FILTER_PARAMS, FetchParams, FilterParams, filter_reads, parse_num, unknown_param,
};
use super::problem::Problem;
use super::{AppState, json_response};
use crate::auth::Principal;
use crate::wire::produce::{BodyFormat, parse};
use crate::wire::records::fetch_response;

/// `POST /v1/topics/{t}/records?acks=all|none`, with `Idempotency-Key` or
/// `Weir-Producer-Id` + `Weir-Sequence` for retries that never duplicate.
pub async fn produce(
    State(state): State<AppState>,
    Path(topic): Path<String>,
    Query(query): Query<HashMap<String, String>>,
    principal: Option<Extension<Principal>>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, Problem> {
    let started = std::time::Instant::now();
    let mut acks = Acks::All;
    for (k, v) in &query {
        match k.as_str() {
            "acks" => acks = parse_acks(v)?,
            other => return Err(unknown_param(other, "acks")),
        }
    }
    // Fail fast on an unknown topic or bad retry headers, before reading a large body.
    let topic = state.broker.topic(&topic)?;
    let principal_name = principal.as_ref().map_or("anonymous", |p| p.name.as_str());
    let retry = retry_of(&headers, principal_name)?;
    let format = BodyFormat::detect(&headers)?;
    let body = read_limited(
        &headers,
        body,
        state.limits.max_request_bytes,
        state.limits.body_idle_timeout(),
    )
    .await?;
    let mut records = parse(format, &headers, &body)?;
    let traceparent = super::trace::traceparent(&headers);
    if let Some(parent) = traceparent {
        for r in &mut records {
            if !r.headers.iter().any(|(n, _)| n == "traceparent") {
                r.headers
                    .push(("traceparent".into(), parent.as_bytes().into()));
            }
        }
    }
    // OpenTelemetry messaging names: a publish sends a batch to a topic. Debug level:
    // at the default level a span per request costs ~4 % of single-record publishes.
    let span = tracing::debug_span!(
        "publish",
        messaging.system = "weir",
        messaging.operation.type = "send",
        messaging.destination.name = %topic.name(),
        messaging.batch.message_count = records.len(),
        trace_id = traceparent.map(super::trace::trace_id),
    );
    let (published, replayed) = match retry {
        None => (
            state
                .broker
                .publish(&topic, &records, acks)
                .instrument(span.clone())
                .await?,
            false,
        ),
        Some(retry) => {
            let answered = state
                .broker
                .publish_once(&topic, &records, acks, retry)
                .instrument(span.clone())
                .await?;
            (answered.published, answered.replayed)
        }
    };
    span.in_scope(|| {
        tracing::debug!(
            took_us = started.elapsed().as_micros() as u64,
            replayed,
            "published"
        )
    });
    if !replayed {
        let bytes = records.iter().map(|r| r.size()).sum();
        state
            .telemetry
            .produced(topic.name(), records.len(), bytes, acks, started.elapsed());
    }
    let mut response = json_response(crate::wire::published::response(&published));
    if replayed {
        response
            .headers_mut()
            .insert("idempotent-replayed", HeaderValue::from_static("true"));
    }
    Ok(response)
}

/// How the request names itself for retries: `Idempotency-Key`, or
/// `Weir-Producer-Id` with `Weir-Sequence`; `None` when it does not.
fn retry_of<'a>(headers: &'a HeaderMap, principal: &'a str) -> Result<Option<Retry<'a>>, Problem> {
    let text = |name: &str| -> Result<Option<&'a str>, Problem> {
        let mut values = headers.get_all(name).iter();
        let Some(v) = values.next() else {
            return Ok(None);
        };
        if values.next().is_some() {
            return Err(Problem::invalid_request(format!(
                "{name} is given more than once"
            )));
        }
        v.to_str()
            .map(Some)
            .map_err(|_| Problem::invalid_request(format!("{name} must be printable ASCII")))
    };
    let key = text("idempotency-key")?;
    let producer = text("weir-producer-id")?;
    let sequence = text("weir-sequence")?;
    match (key, producer, sequence) {
        (None, None, None) => Ok(None),
        (Some(key), None, None) => Ok(Some(Retry::Key { principal, key })),
        (None, Some(producer), Some(sequence)) => {
            let sequence = sequence.trim().parse::<u64>().map_err(|_| {
                Problem::invalid_request(format!(
                    "Weir-Sequence must be a non-negative integer, got '{sequence}'"
                ))
            })?;
            if producer.starts_with("kafka:") {
                return Err(Problem::invalid_request(
                    "producer ids starting with 'kafka:' are the Kafka listener's",
                ));
            }
            Ok(Some(Retry::Session {
                producer,
                sequence,
                span: 1,
                wraps_at: None,
            }))
        }
        (None, _, _) => Err(Problem::invalid_request(
            "Weir-Producer-Id and Weir-Sequence go together",
        )),
        (Some(_), _, _) => Err(Problem::invalid_request(
            "a request names itself with Idempotency-Key or with Weir-Producer-Id and Weir-Sequence, not both",
        )),
    }
}

/// `GET /v1/topics/{t}/partitions/{p}/records?offset=&max_records=&max_bytes=&timeout_ms=`.
pub async fn fetch(
    State(state): State<AppState>,
    Path((topic, partition)): Path<(String, String)>,
    Query(query): Query<HashMap<String, String>>,
) -> Result<Response, Problem> {
    let partition: u32 = parse_num("partition", &partition)?;
    let t = state.broker.topic(&topic)?;
    let part = t.partition(partition)?;
    let mut offset = part.log_start_offset();
    let mut fetch = FetchParams::new();
    let mut filter = FilterParams::default();
    for (k, v) in &query {
        match k.as_str() {
            "timestamp_ms" => {
                let ts = v.parse::<i64>().map_err(|_| {
                    Problem::invalid_request(format!(
                        "timestamp_ms must be milliseconds since the epoch, got '{v}'"
                    ))
                })?;
                offset = state.broker.offset_for_timestamp(&t, partition, ts).await?;
            }
            "offset" => {
                offset = match v.as_str() {
                    "earliest" => part.log_start_offset(),
                    "latest" => part.high_watermark(),
                    n => parse_num(k, n)?,
                }
            }
            other if fetch.take(other, v, &state.limits)? => {}
            other if filter.take(other, v)? => {}
            other => {
                return Err(unknown_param(
                    other,
                    &format!(
                        "offset, timestamp_ms, max_records, max_bytes, timeout_ms, {FILTER_PARAMS}"
                    ),
                ));
            }
        }
    }
    let filter = filter.build(&state.broker)?;
    let span = tracing::debug_span!(
        "receive",
        messaging.system = "weir",
        messaging.operation.type = "receive",
        messaging.destination.name = %t.name(),
        messaging.destination.partition.id = partition,
        messaging.batch.message_count = tracing::field::Empty,
    );
    let result = state
        .broker
        .fetch(&t, partition, offset, fetch.limits, fetch.wait)
        .instrument(span.clone())
        .await?;
    span.record("messaging.batch.message_count", result.count);
    span.in_scope(|| tracing::debug!(offset, "delivered"));
    let (mut reads, deliveries) =
        filter_reads(filter.as_ref(), &t, vec![(partition, result)]).await?;
    let (_, result) = reads.pop().expect("one read in, one out");
    state.telemetry.delivered(t.name(), &result);
    Ok(json_response(fetch_response(&result, deliveries.first())))
}

/// The `acks` word: `all` (after fsync) or `none`, and Kafka's `-1`/`1`/`0`.
fn parse_acks(word: &str) -> Result<Acks, Problem> {
    match word {
        "all" | "1" | "-1" => Ok(Acks::All),
        "none" | "0" => Ok(Acks::None),
        other => Err(Problem::invalid_request(format!(
            "acks must be 'all' or 'none', got '{other}'"
        ))),
    }
}
