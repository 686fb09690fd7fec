//! Metadata: Weir is one broker (node 0) leading every partition of every topic.

use kafka_protocol::ResponseError;
use kafka_protocol::messages::metadata_response::{
    MetadataResponseBroker, MetadataResponsePartition, MetadataResponseTopic,
};
use kafka_protocol::messages::{BrokerId, MetadataRequest, MetadataResponse, TopicName};
use kafka_protocol::protocol::StrBytes;

use crate::Context;

/// The node id Weir answers as.
pub(crate) const NODE: i32 = 0;

pub(super) async fn answer(cx: &Context, request: MetadataRequest) -> MetadataResponse {
    let names: Vec<String> = match &request.topics {
        // All topics: the ones this client may describe.
        None => {
            let mut names = Vec::new();
            for t in cx.broker.topics() {
                if may_describe(cx, t.name()).await {
                    names.push(t.name().to_string());
                }
            }
            names
        }
        Some(topics) => topics
            .iter()
            .filter_map(|t| t.name.as_ref().map(|n| n.as_str().to_string()))
            .collect(),
    };
    let mut topics = Vec::with_capacity(names.len());
    for name in names {
        topics.push(topic(cx, name).await);
    }
    MetadataResponse::default()
        .with_brokers(vec![
            MetadataResponseBroker::default()
                .with_node_id(BrokerId(NODE))
                .with_host(StrBytes::from_string(cx.settings.advertised_host.clone()))
                .with_port(cx.settings.advertised_port.into()),
        ])
        .with_cluster_id(Some(StrBytes::from_static_str("weir")))
        .with_controller_id(BrokerId(NODE))
        .with_topics(topics)
}

/// Whether the caller may see a topic's metadata: `describe`, or `produce` or
/// `consume` (which need it, as Kafka's WRITE and READ imply DESCRIBE).
async fn may_describe(cx: &Context, topic: &str) -> bool {
    for operation in ["describe", "produce", "consume"] {
        if cx.allowed(operation, topic).await {
            return true;
        }
    }
    false
}

async fn topic(cx: &Context, name: String) -> MetadataResponseTopic {
    let answer = MetadataResponseTopic::default()
        .with_name(Some(TopicName(StrBytes::from_string(name.clone()))));
    if !may_describe(cx, &name).await {
        return answer.with_error_code(ResponseError::TopicAuthorizationFailed.code());
    }
    let Ok(topic) = cx.broker.topic(&name) else {
        return answer.with_error_code(ResponseError::UnknownTopicOrPartition.code());
    };
    answer.with_partitions(
        (0..topic.partition_count() as i32)
            .map(|p| {
                MetadataResponsePartition::default()
                    .with_partition_index(p)
                    .with_leader_id(BrokerId(NODE))
                    .with_replica_nodes(vec![BrokerId(NODE)])
                    .with_isr_nodes(vec![BrokerId(NODE)])
            })
            .collect(),
    )
}
