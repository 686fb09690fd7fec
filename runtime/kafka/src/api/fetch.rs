//! Fetch: each requested partition read from its offset, within the request's and
//! each partition's byte budget; with nothing (or less than `min_bytes`) to answer,
//! the request waits up to `max_wait_ms` for any of its partitions to grow (woken
//! by the flush that makes records visible, not by polling). No fetch sessions:
//! every answer is a full one (`session_id` 0), which clients accept.

use std::sync::Arc;
use std::time::Duration;

use futures_util::future::select_all;
use kafka_protocol::ResponseError;
use kafka_protocol::messages::fetch_response::{FetchableTopicResponse, PartitionData};
use kafka_protocol::messages::{FetchRequest, FetchResponse};
use tokio::time::Instant;
use weir_broker::{ReadLimits, Topic};

use crate::Context;

/// Records per partition per answer at most.
const MAX_RECORDS: usize = 10_000;

pub(super) async fn answer(cx: &Context, request: FetchRequest) -> FetchResponse {
    let deadline = Instant::now() + Duration::from_millis(request.max_wait_ms.max(0) as u64);
    let min_bytes = request.min_bytes.max(0) as usize;
    let max_bytes = match request.max_bytes {
        n if n > 0 => n as usize,
        _ => usize::MAX,
    };
    // Each topic once: authorized and looked up.
    let mut topics: Vec<(String, Option<Arc<Topic>>, i16)> = Vec::new();
    for t in &request.topics {
        let name = t.topic.as_str().to_string();
        let (topic, error) = if !cx.authorizer.allowed("consume", &name).await {
            (None, ResponseError::TopicAuthorizationFailed.code())
        } else {
            match cx.broker.topic(&name) {
                Ok(topic) => (Some(topic), 0),
                Err(_) => (None, ResponseError::UnknownTopicOrPartition.code()),
            }
        };
        topics.push((name, topic, error));
    }
    loop {
        let (answer, bytes) = read_all(cx, &request, &topics, max_bytes).await;
        let now = Instant::now();
        if bytes >= min_bytes.max(1) || now >= deadline {
            return answer;
        }
        // Wait for any partition to pass its fetch offset, then read again.
        let waits: Vec<_> = request
            .topics
            .iter()
            .zip(&topics)
            .filter_map(|(t, (_, topic, _))| Some((t, topic.clone()?)))
            .flat_map(|(t, topic)| {
                t.partitions.iter().filter_map(move |p| {
                    let offset = u64::try_from(p.fetch_offset).ok()?;
                    let topic = topic.clone();
                    let partition = u32::try_from(p.partition).ok()?;
                    topic.partition(partition).ok()?;
                    Some(Box::pin(async move {
                        if let Ok(part) = topic.partition(partition) {
                            part.wait_beyond(offset, deadline - Instant::now()).await;
                        }
                    }))
                })
            })
            .collect();
        if waits.is_empty() {
            tokio::time::sleep_until(deadline).await;
            return answer;
        }
        select_all(waits).await;
    }
}

/// One pass over every requested partition: the answer and the record bytes in it.
async fn read_all(
    cx: &Context,
    request: &FetchRequest,
    topics: &[(String, Option<Arc<Topic>>, i16)],
    max_bytes: usize,
) -> (FetchResponse, usize) {
    let mut total = 0usize;
    let mut responses = Vec::with_capacity(request.topics.len());
    for (t, (_, topic, error)) in request.topics.iter().zip(topics) {
        let mut partitions = Vec::with_capacity(t.partitions.len());
        for p in &t.partitions {
            let answer = PartitionData::default()
                .with_partition_index(p.partition)
                .with_high_watermark(-1)
                .with_last_stable_offset(-1)
                .with_log_start_offset(-1);
            let Some(topic) = topic else {
                partitions.push(answer.with_error_code(*error));
                continue;
            };
            let budget = (p.partition_max_bytes.max(0) as usize).min(max_bytes - total);
            let (answer, bytes) =
                read_one(cx, topic, p.partition, p.fetch_offset, budget, answer).await;
            total += bytes;
            partitions.push(answer);
        }
        responses.push(
            FetchableTopicResponse::default()
                .with_topic(t.topic.clone())
                .with_partitions(partitions),
        );
    }
    (FetchResponse::default().with_responses(responses), total)
}

async fn read_one(
    cx: &Context,
    topic: &Topic,
    partition: i32,
    offset: i64,
    budget: usize,
    answer: PartitionData,
) -> (PartitionData, usize) {
    let Some(part) = u32::try_from(partition)
        .ok()
        .and_then(|p| topic.partition(p).ok().map(|part| (p, part)))
    else {
        return (
            answer.with_error_code(ResponseError::UnknownTopicOrPartition.code()),
            0,
        );
    };
    let (p, part) = part;
    let (start, end) = (part.log_start_offset() as i64, part.high_watermark() as i64);
    let answer = answer
        .with_high_watermark(end)
        .with_last_stable_offset(end)
        .with_log_start_offset(start);
    // Kafka's rule: outside [log start, high watermark] the consumer must reset.
    if offset < start || offset > end {
        return (
            answer.with_error_code(ResponseError::OffsetOutOfRange.code()),
            0,
        );
    }
    if offset == end || budget == 0 {
        return (answer, 0);
    }
    let limits = ReadLimits {
        max_records: MAX_RECORDS,
        max_bytes: budget,
    };
    let read = match cx
        .broker
        .fetch(topic, p, offset as u64, limits, Duration::ZERO)
        .await
    {
        Ok(r) => r,
        Err(e) => return (answer.with_error_code(crate::errors::code(&e)), 0),
    };
    match crate::records::encode(&read) {
        Ok(records) => {
            let bytes = records.len();
            (answer.with_records(Some(records)), bytes)
        }
        Err(reason) => {
            tracing::error!(
                topic = topic.name(),
                partition,
                reason,
                "a fetch did not encode"
            );
            (
                answer.with_error_code(ResponseError::UnknownServerError.code()),
                0,
            )
        }
    }
}
