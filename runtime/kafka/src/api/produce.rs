//! Produce: each partition's batches are decoded, published through the topic's
//! pipeline (if any) with the request's acks, and answered with the first offset
//! stored in that partition. `acks=0` is answered with nothing; `acks=1` is Weir's
//! `acks=none` (in memory, flushed right after); `acks=all` waits for the fsync.

use kafka_protocol::ResponseError;
use kafka_protocol::messages::produce_response::{PartitionProduceResponse, TopicProduceResponse};
use kafka_protocol::messages::{ProduceRequest, ProduceResponse};
use kafka_protocol::protocol::StrBytes;
use weir_broker::idempotence::Retry;
use weir_broker::{Acks, Published};

use crate::Context;
use crate::records::{Decoded, Refused};

pub(super) async fn answer(cx: &Context, request: ProduceRequest) -> Option<ProduceResponse> {
    let acks = match request.acks {
        -1 => Acks::All,
        0 | 1 => Acks::None,
        other => {
            tracing::debug!(acks = other, "a produce with invalid acks");
            return Some(invalid_acks(request));
        }
    };
    let mut responses = Vec::with_capacity(request.topic_data.len());
    // What the whole request may decompress to, shared by its partitions.
    let mut expansion = cx.settings.max_frame_bytes * crate::decompress::EXPANSION;
    for data in request.topic_data {
        let name = data.name.as_str().to_string();
        let allowed = cx.allowed("produce", &name).await;
        let topic = cx.broker.topic(&name);
        let mut partitions = Vec::with_capacity(data.partition_data.len());
        for pd in data.partition_data {
            let answer = PartitionProduceResponse::default()
                .with_index(pd.index)
                .with_base_offset(-1)
                .with_log_append_time_ms(-1);
            let refused = |e: ResponseError, message: String| {
                answer
                    .clone()
                    .with_error_code(e.code())
                    .with_error_message(Some(StrBytes::from_string(message)))
            };
            let topic = match (&topic, allowed) {
                (_, false) => {
                    partitions.push(refused(
                        ResponseError::TopicAuthorizationFailed,
                        format!("not allowed to produce to '{name}'"),
                    ));
                    continue;
                }
                (Err(_), true) => {
                    partitions.push(refused(
                        ResponseError::UnknownTopicOrPartition,
                        format!("no topic '{name}'"),
                    ));
                    continue;
                }
                (Ok(t), true) => t,
            };
            if pd.index < 0 || pd.index as u32 >= topic.partition_count() {
                partitions.push(refused(
                    ResponseError::UnknownTopicOrPartition,
                    format!("'{name}' has no partition {}", pd.index),
                ));
                continue;
            }
            let decoded = match Decoded::decode(pd.records.unwrap_or_default(), expansion) {
                Ok(d) => {
                    expansion -= d.expanded;
                    d
                }
                Err(Refused::Corrupt(reason)) => {
                    partitions.push(refused(ResponseError::CorruptMessage, reason));
                    continue;
                }
                Err(Refused::Transactional) => {
                    partitions.push(refused(
                        ResponseError::TransactionalIdAuthorizationFailed,
                        "Weir has no transactions".into(),
                    ));
                    continue;
                }
            };
            let producer = match decoded.producer() {
                Ok(p) => p,
                Err(reason) => {
                    partitions.push(refused(ResponseError::InvalidRecord, reason));
                    continue;
                }
            };
            let records = decoded.new_records(pd.index as u32);
            let published = match producer {
                None => cx.broker.publish(topic, &records, acks).await,
                Some((id, epoch, sequence, count)) => {
                    let name = super::producers::session_name(id, epoch);
                    let retry = Retry::Session {
                        producer: &name,
                        sequence: sequence as u64,
                        span: count as u64,
                        wraps_at: Some(super::producers::SEQUENCE_WRAP),
                    };
                    cx.broker
                        .publish_once(topic, &records, acks, retry)
                        .await
                        .map(|a| a.published)
                }
            };
            let answer = match published {
                Ok(published) => answer
                    .with_base_offset(first_offset(&published, &name, pd.index as u32))
                    .with_log_append_time_ms(weir_broker::now_ms()),
                Err(e) => refused_with(answer, crate::errors::code(&e), e.to_string()),
            };
            partitions.push(answer);
        }
        responses.push(
            TopicProduceResponse::default()
                .with_name(data.name)
                .with_partition_responses(partitions),
        );
    }
    (request.acks != 0).then(|| ProduceResponse::default().with_responses(responses))
}

fn refused_with(
    answer: PartitionProduceResponse,
    code: i16,
    message: String,
) -> PartitionProduceResponse {
    answer
        .with_error_code(code)
        .with_error_message(Some(StrBytes::from_string(message)))
}

/// The first offset stored in `partition` of `topic` (a pipeline may have filtered
/// or routed every record elsewhere: then -1).
fn first_offset(published: &Published, topic: &str, partition: u32) -> i64 {
    match published {
        Published::Plain(positions) => positions.first().map_or(-1, |p| p.offset as i64),
        Published::Pipeline(results) => results
            .iter()
            .flat_map(|r| r.outputs.iter())
            .filter(|o| &*o.topic == topic && o.partition == partition)
            .map(|o| o.offset as i64)
            .min()
            .unwrap_or(-1),
    }
}

/// Every partition refused with INVALID_REQUIRED_ACKS (acks is -1, 0 or 1).
fn invalid_acks(request: ProduceRequest) -> ProduceResponse {
    let responses = request
        .topic_data
        .into_iter()
        .map(|t| {
            TopicProduceResponse::default()
                .with_partition_responses(
                    t.partition_data
                        .iter()
                        .map(|p| {
                            PartitionProduceResponse::default()
                                .with_index(p.index)
                                .with_base_offset(-1)
                                .with_error_code(ResponseError::InvalidRequiredAcks.code())
                        })
                        .collect(),
                )
                .with_name(t.name)
        })
        .collect();
    ProduceResponse::default().with_responses(responses)
}
