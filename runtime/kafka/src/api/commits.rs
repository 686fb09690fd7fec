//! OffsetCommit and OffsetFetch: Kafka consumers commit into Weir's own committed
//! offsets (the ones HTTP groups use and `GET /v1/groups/{g}` shows with their lag).
//! A member commits for its generation ([`crate::groups`] checks it); a consumer
//! that assigns partitions itself commits with no member while the group has none.
//! Commit metadata strings are not kept (fetched back as empty).

use std::time::Instant;

use kafka_protocol::ResponseError;
use kafka_protocol::messages::offset_commit_response::{
    OffsetCommitResponsePartition, OffsetCommitResponseTopic,
};
use kafka_protocol::messages::offset_fetch_response::{
    OffsetFetchResponseGroup, OffsetFetchResponsePartition, OffsetFetchResponsePartitions,
    OffsetFetchResponseTopic, OffsetFetchResponseTopics,
};
use kafka_protocol::messages::{
    OffsetCommitRequest, OffsetCommitResponse, OffsetFetchRequest, OffsetFetchResponse, TopicName,
};
use kafka_protocol::protocol::StrBytes;

use crate::Context;

/// A partition and its error code, `None` while its offset is still to be written.
type PartitionError = (i32, Option<i16>);

pub(super) async fn commit(cx: &Context, request: OffsetCommitRequest) -> OffsetCommitResponse {
    let group = request.group_id.as_str().to_string();
    let member_check = if weir_broker::groups::validate_group_name(&group).is_err() {
        Err(ResponseError::InvalidGroupId)
    } else if !cx.allowed_group("commit", &group).await {
        Err(ResponseError::GroupAuthorizationFailed)
    } else {
        match cx.groups.existing(&group) {
            Some(g) => g.lock().may_commit(
                request.generation_id_or_member_epoch,
                request.member_id.as_str(),
                Instant::now(),
            ),
            None if request.generation_id_or_member_epoch < 0 => Ok(()),
            None => Err(ResponseError::UnknownMemberId),
        }
    };
    // Each partition's error, or None while it is still to be written.
    let mut answers: Vec<(TopicName, Vec<PartitionError>)> = Vec::new();
    let mut offsets = Vec::new();
    for t in &request.topics {
        let name = t.name.as_str().to_string();
        let allowed = cx.allowed("consume", &name).await;
        let topic = cx.broker.topic(&name).ok();
        let mut partitions = Vec::with_capacity(t.partitions.len());
        for p in &t.partitions {
            let index = p.partition_index;
            let error = match (&member_check, allowed, &topic) {
                (Err(e), _, _) => Some(*e),
                (_, false, _) => Some(ResponseError::TopicAuthorizationFailed),
                (_, _, None) => Some(ResponseError::UnknownTopicOrPartition),
                (_, _, Some(t)) if index < 0 || index as u32 >= t.partition_count() => {
                    Some(ResponseError::UnknownTopicOrPartition)
                }
                _ if p.committed_offset < 0 => Some(ResponseError::OffsetOutOfRange),
                _ => None,
            };
            if error.is_none() {
                offsets.push((name.clone(), index as u32, p.committed_offset as u64));
            }
            partitions.push((index, error.map(|e| e.code())));
        }
        answers.push((t.name.clone(), partitions));
    }
    // The checked offsets are written at once, durably; a failure fails them all.
    let written = if offsets.is_empty() {
        0
    } else {
        match cx.broker.groups().commit(&group, None, &offsets).await {
            Ok(()) => 0,
            Err(e) => {
                tracing::debug!(group, error = %e, "a Kafka offset commit failed");
                crate::errors::code(&e)
            }
        }
    };
    let topics = answers
        .into_iter()
        .map(|(name, partitions)| {
            OffsetCommitResponseTopic::default()
                .with_name(name)
                .with_partitions(
                    partitions
                        .into_iter()
                        .map(|(index, error)| {
                            OffsetCommitResponsePartition::default()
                                .with_partition_index(index)
                                .with_error_code(error.unwrap_or(written))
                        })
                        .collect(),
                )
        })
        .collect();
    OffsetCommitResponse::default().with_topics(topics)
}

/// One partition's answer, in either of OffsetFetch's shapes (v1-7 and v8+ use
/// two types with the same fields); commit metadata is not kept, so it is empty.
macro_rules! fetched {
    ($answer:ty, $f:expr) => {
        <$answer>::default()
            .with_partition_index($f.partition)
            .with_committed_offset($f.offset)
            .with_committed_leader_epoch(-1)
            .with_metadata(Some(StrBytes::from_static_str("")))
            .with_error_code($f.error)
    };
}

/// One partition's committed offset (-1 when none) and error.
struct Fetched {
    partition: i32,
    offset: i64,
    error: i16,
}

/// A group's committed offsets for the topics asked (all of them when `None`).
async fn fetch_group(
    cx: &Context,
    group: &str,
    topics: Option<Vec<(TopicName, Vec<i32>)>>,
) -> Result<Vec<(TopicName, Vec<Fetched>)>, ResponseError> {
    if weir_broker::groups::validate_group_name(group).is_err() {
        return Err(ResponseError::InvalidGroupId);
    }
    if !cx.allowed_group("describe", group).await {
        return Err(ResponseError::GroupAuthorizationFailed);
    }
    let groups = cx.broker.groups();
    let Some(topics) = topics else {
        // Every partition the group has an offset for.
        let Ok(info) = groups.describe(group).await else {
            return Ok(Vec::new());
        };
        let mut out: Vec<(TopicName, Vec<Fetched>)> = Vec::new();
        for p in info
            .partitions
            .iter()
            .filter(|p| p.committed_offset.is_some())
        {
            if !cx.allowed("consume", &p.topic).await {
                continue;
            }
            let fetched = Fetched {
                partition: p.partition as i32,
                offset: p.committed_offset.map_or(-1, |o| o as i64),
                error: 0,
            };
            match out.iter_mut().find(|(n, _)| n.as_str() == p.topic) {
                Some((_, v)) => v.push(fetched),
                None => out.push((
                    TopicName(StrBytes::from_string(p.topic.clone())),
                    vec![fetched],
                )),
            }
        }
        return Ok(out);
    };
    let mut out = Vec::with_capacity(topics.len());
    for (name, partitions) in topics {
        let allowed = cx.allowed("consume", name.as_str()).await;
        let topic = cx.broker.topic(name.as_str()).ok();
        let fetched = partitions
            .into_iter()
            .map(|partition| {
                let committed = match (&topic, allowed) {
                    (_, false) => Err(ResponseError::TopicAuthorizationFailed.code()),
                    (None, true) => Err(ResponseError::UnknownTopicOrPartition.code()),
                    (Some(t), true) => u32::try_from(partition)
                        .map_err(|_| ResponseError::UnknownTopicOrPartition.code())
                        .and_then(|p| {
                            groups
                                .committed(group, t, p)
                                .map_err(|e| crate::errors::code(&e))
                        }),
                };
                match committed {
                    Ok(c) => Fetched {
                        partition,
                        offset: c.map_or(-1, |(o, _)| o as i64),
                        error: 0,
                    },
                    Err(error) => Fetched {
                        partition,
                        offset: -1,
                        error,
                    },
                }
            })
            .collect();
        out.push((name, fetched));
    }
    Ok(out)
}

pub(super) async fn fetch(cx: &Context, request: OffsetFetchRequest) -> OffsetFetchResponse {
    // v8+ ask for several groups; earlier versions for one.
    if !request.groups.is_empty() {
        let mut groups = Vec::with_capacity(request.groups.len());
        for g in request.groups {
            let topics = g.topics.map(|ts| {
                ts.into_iter()
                    .map(|t| (t.name, t.partition_indexes))
                    .collect()
            });
            let answer = OffsetFetchResponseGroup::default().with_group_id(g.group_id.clone());
            groups.push(match fetch_group(cx, g.group_id.as_str(), topics).await {
                Ok(found) => answer.with_topics(
                    found
                        .into_iter()
                        .map(|(name, ps)| {
                            OffsetFetchResponseTopics::default()
                                .with_name(name)
                                .with_partitions(
                                    ps.into_iter()
                                        .map(|f| fetched!(OffsetFetchResponsePartitions, f))
                                        .collect(),
                                )
                        })
                        .collect(),
                ),
                Err(e) => answer.with_error_code(e.code()),
            });
        }
        return OffsetFetchResponse::default().with_groups(groups);
    }
    let topics = request.topics.map(|ts| {
        ts.into_iter()
            .map(|t| (t.name, t.partition_indexes))
            .collect()
    });
    match fetch_group(cx, request.group_id.as_str(), topics).await {
        Ok(found) => OffsetFetchResponse::default().with_topics(
            found
                .into_iter()
                .map(|(name, ps)| {
                    OffsetFetchResponseTopic::default()
                        .with_name(name)
                        .with_partitions(
                            ps.into_iter()
                                .map(|f| fetched!(OffsetFetchResponsePartition, f))
                                .collect(),
                        )
                })
                .collect(),
        ),
        Err(e) => OffsetFetchResponse::default().with_error_code(e.code()),
    }
}
