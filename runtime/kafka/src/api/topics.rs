//! CreateTopics and DeleteTopics: topic administration as over HTTP (`topic-admin`
//! on the topic). Replication is the store's business (a replication factor other
//! than -1 or 1 is accepted and ignored: the embedded store has one copy, cluster
//! mode JetStream's replicas); topic configs are not taken from Kafka.

use kafka_protocol::ResponseError;
use kafka_protocol::messages::create_topics_response::CreatableTopicResult;
use kafka_protocol::messages::delete_topics_response::DeletableTopicResult;
use kafka_protocol::messages::{
    CreateTopicsRequest, CreateTopicsResponse, DeleteTopicsRequest, DeleteTopicsResponse, TopicName,
};
use kafka_protocol::protocol::StrBytes;
use weir_broker::TopicConfig;

use crate::Context;

pub(super) async fn create(cx: &Context, request: CreateTopicsRequest) -> CreateTopicsResponse {
    let mut results = Vec::with_capacity(request.topics.len());
    for t in request.topics {
        let name = t.name.as_str().to_string();
        let partitions = match t.num_partitions {
            -1 => cx.settings.default_partitions as i32,
            n => n,
        };
        let result = CreatableTopicResult::default()
            .with_name(t.name.clone())
            .with_num_partitions(partitions)
            .with_replication_factor(1);
        let fail = |e: ResponseError, message: String| {
            result
                .clone()
                .with_error_code(e.code())
                .with_error_message(Some(StrBytes::from_string(message)))
        };
        let result = if !cx.allowed("topic-admin", &name).await {
            fail(
                ResponseError::TopicAuthorizationFailed,
                format!("not allowed to create '{name}'"),
            )
        } else if !weir_broker::is_valid_name(&name) {
            fail(
                ResponseError::InvalidTopicException,
                format!("'{name}' is not a valid topic name"),
            )
        } else if partitions < 1 || partitions as u32 > weir_broker::MAX_PARTITIONS {
            fail(
                ResponseError::InvalidPartitions,
                format!(
                    "{partitions} partitions: from 1 to {}",
                    weir_broker::MAX_PARTITIONS
                ),
            )
        } else if cx.broker.topic(&name).is_ok() {
            fail(
                ResponseError::TopicAlreadyExists,
                format!("topic '{name}' already exists"),
            )
        } else if request.validate_only {
            result
        } else {
            match cx
                .broker
                .create_topic(&name, TopicConfig::with_partitions(partitions as u32))
                .await
            {
                Ok(_) => result,
                Err(e) => fail_with(result, crate::errors::code(&e), e.to_string()),
            }
        };
        results.push(result);
    }
    CreateTopicsResponse::default().with_topics(results)
}

fn fail_with(result: CreatableTopicResult, code: i16, message: String) -> CreatableTopicResult {
    result
        .with_error_code(code)
        .with_error_message(Some(StrBytes::from_string(message)))
}

pub(super) async fn delete(cx: &Context, request: DeleteTopicsRequest) -> DeleteTopicsResponse {
    // Versions up to 5 name topics in `topic_names`; 6 and later in `topics`.
    let names: Vec<TopicName> = request
        .topic_names
        .into_iter()
        .chain(request.topics.into_iter().filter_map(|t| t.name))
        .collect();
    let mut responses = Vec::with_capacity(names.len());
    for name in names {
        let text = name.as_str().to_string();
        let result = DeletableTopicResult::default().with_name(Some(name));
        let code = if !cx.allowed("topic-admin", &text).await {
            ResponseError::TopicAuthorizationFailed.code()
        } else {
            match cx.broker.delete_topic(&text).await {
                Ok(()) => 0,
                Err(e) => crate::errors::code(&e),
            }
        };
        responses.push(result.with_error_code(code));
    }
    DeleteTopicsResponse::default().with_responses(responses)
}
