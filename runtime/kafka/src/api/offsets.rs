//! ListOffsets: the earliest (`-2`) or latest (`-1`) offset of a partition, or the
//! first offset stored at or after a time (`-1` when none is).

use kafka_protocol::ResponseError;
use kafka_protocol::messages::list_offsets_response::{
    ListOffsetsPartitionResponse, ListOffsetsTopicResponse,
};
use kafka_protocol::messages::{ListOffsetsRequest, ListOffsetsResponse};

use crate::Context;

const LATEST: i64 = -1;
const EARLIEST: i64 = -2;
/// v7: the offset of the record with the largest timestamp; Weir's timestamps only
/// grow, so the last record.
const MAX_TIMESTAMP: i64 = -3;

pub(super) async fn answer(cx: &Context, request: ListOffsetsRequest) -> ListOffsetsResponse {
    let mut topics = Vec::with_capacity(request.topics.len());
    for t in request.topics {
        let name = t.name.as_str().to_string();
        let allowed = cx.allowed("consume", &name).await;
        let topic = cx.broker.topic(&name).ok();
        let mut partitions = Vec::with_capacity(t.partitions.len());
        for p in t.partitions {
            let answer = ListOffsetsPartitionResponse::default()
                .with_partition_index(p.partition_index)
                .with_timestamp(-1)
                .with_offset(-1);
            let error = |e: ResponseError| answer.clone().with_error_code(e.code());
            let part = topic
                .as_ref()
                .and_then(|t| Some((t, t.partition(u32::try_from(p.partition_index).ok()?).ok()?)));
            let answer = match (allowed, part) {
                (false, _) => error(ResponseError::TopicAuthorizationFailed),
                (true, None) => error(ResponseError::UnknownTopicOrPartition),
                (true, Some((topic, part))) => match p.timestamp {
                    LATEST => answer.with_offset(part.high_watermark() as i64),
                    EARLIEST => answer.with_offset(part.log_start_offset() as i64),
                    MAX_TIMESTAMP => {
                        let end = part.high_watermark() as i64;
                        answer.with_offset(if end > part.log_start_offset() as i64 {
                            end - 1
                        } else {
                            -1
                        })
                    }
                    ts => {
                        let end = part.high_watermark();
                        match cx
                            .broker
                            .offset_for_timestamp(topic, p.partition_index as u32, ts)
                            .await
                        {
                            Ok(o) if o < end => answer.with_offset(o as i64).with_timestamp(ts),
                            Ok(_) => answer,
                            Err(e) => answer.with_error_code(crate::errors::code(&e)),
                        }
                    }
                },
            };
            partitions.push(answer);
        }
        topics.push(
            ListOffsetsTopicResponse::default()
                .with_name(t.name)
                .with_partitions(partitions),
        );
    }
    ListOffsetsResponse::default().with_topics(topics)
}
