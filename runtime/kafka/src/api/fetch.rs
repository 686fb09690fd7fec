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

pub(super) async fn answer(cx: &Context, request: FetchRequest) -> FetchResponse {
    let settings = &cx.settings;
    let wait = Duration::from_millis(request.max_wait_ms.max(0) as u64).min(settings.max_wait);
    let deadline = Instant::now() + wait;
    let min_bytes = request.min_bytes.max(0) as usize;
    // The answer's size is the server's to bound, whatever the client asks.
    let max_bytes = match request.max_bytes {
        n if n > 0 => (n as usize).min(settings.max_fetch_bytes),
        _ => settings.max_fetch_bytes,
    };
    // Each topic once: authorized and looked up.
    let mut topics: Vec<(Option<Arc<Topic>>, i16)> = Vec::new();
    for t in &request.topics {
        let name = t.topic.as_str();
        topics.push(if !cx.allowed("consume", name).await {
            (None, ResponseError::TopicAuthorizationFailed.code())
        } else {
            match cx.broker.topic(name) {
                Ok(topic) => (Some(topic), 0),
                Err(_) => (None, ResponseError::UnknownTopicOrPartition.code()),
            }
        });
    }
    loop {
        let pass = read_all(cx, &request, &topics, max_bytes).await;
        // Enough bytes, an error to report (Kafka answers those at once), or time.
        if pass.bytes >= min_bytes || pass.failed || Instant::now() >= deadline {
            return pass.answer;
        }
        // Wait for any partition to grow past the end this pass saw, then read
        // again: woken by the flush that makes records visible.
        let waits: Vec<_> = pass
            .ends
            .into_iter()
            .map(|(topic, partition, end)| {
                Box::pin(async move {
                    if let Ok(part) = topic.partition(partition) {
                        part.wait_beyond(end, deadline - Instant::now()).await;
                    }
                })
            })
            .collect();
        if waits.is_empty() {
            tokio::time::sleep_until(deadline).await;
            return pass.answer;
        }
        tokio::select! {
            _ = select_all(waits) => {}
            () = tokio::time::sleep_until(deadline) => {}
        }
    }
}

/// One pass over every requested partition.
struct Pass {
    answer: FetchResponse,
    /// Record bytes in the answer.
    bytes: usize,
    /// Whether a partition has an error to report.
    failed: bool,
    /// Each partition read, with the high watermark it had: what to wait beyond.
    ends: Vec<(Arc<Topic>, u32, u64)>,
}

async fn read_all(
    cx: &Context,
    request: &FetchRequest,
    topics: &[(Option<Arc<Topic>>, i16)],
    max_bytes: usize,
) -> Pass {
    let mut pass = Pass {
        answer: FetchResponse::default(),
        bytes: 0,
        failed: false,
        ends: Vec::new(),
    };
    let mut responses = Vec::with_capacity(request.topics.len());
    for (t, (topic, error)) in request.topics.iter().zip(topics) {
        let mut partitions = Vec::with_capacity(t.partitions.len());
        for p in &t.partitions {
            let answer = PartitionData::default()
                .with_partition_index(p.partition)
                .with_high_watermark(-1)
                .with_last_stable_offset(-1)
                .with_log_start_offset(-1);
            let Some(topic) = topic else {
                pass.failed = true;
                partitions.push(answer.with_error_code(*error));
                continue;
            };
            let budget =
                (p.partition_max_bytes.max(0) as usize).min(max_bytes.saturating_sub(pass.bytes));
            let (answer, bytes) =
                read_one(cx, topic, p.partition, p.fetch_offset, budget, answer).await;
            pass.bytes += bytes;
            if answer.error_code != 0 {
                pass.failed = true;
            } else if let Ok(partition) = u32::try_from(p.partition) {
                pass.ends.push((
                    topic.clone(),
                    partition,
                    answer.high_watermark.max(0) as u64,
                ));
            }
            partitions.push(answer);
        }
        responses.push(
            FetchableTopicResponse::default()
                .with_topic(t.topic.clone())
                .with_partitions(partitions),
        );
    }
    pass.answer = FetchResponse::default().with_responses(responses);
    pass
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
        max_records: cx.settings.max_fetch_records,
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
    // The watermarks this read saw: its records lie below them.
    let answer = answer
        .with_high_watermark(read.high_watermark as i64)
        .with_last_stable_offset(read.high_watermark as i64)
        .with_log_start_offset(read.log_start_offset as i64);
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
