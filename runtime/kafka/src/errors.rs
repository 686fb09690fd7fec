//! Weir's errors as Kafka error codes, chosen so that clients retry what a retry can
//! fix (storage briefly unavailable, a plugin quarantined) and surface the rest (a
//! record a pipeline rejected, a topic that does not exist).

use kafka_protocol::ResponseError;
use weir_broker::{BrokerError, StorageError};

/// The Kafka error code for `e`.
pub(crate) fn code(e: &BrokerError) -> i16 {
    let kafka = match e {
        BrokerError::Storage(s) => return storage(s),
        BrokerError::RecordTooLarge { .. } => ResponseError::MessageTooLarge,
        // A pipeline step refused a record under `on_error = "reject"`.
        BrokerError::PluginRejected { .. } => ResponseError::InvalidRecord,
        BrokerError::PipelineInvalid(_) => ResponseError::PolicyViolation,
        // Quarantined or unavailable plugins recover: worth a retry.
        BrokerError::Plugin(p) if !p.counts_against_plugin() => ResponseError::KafkaStorageError,
        BrokerError::InvalidRequest(_) => ResponseError::InvalidRequest,
        // A commit for partitions HTTP members hold.
        BrokerError::NotAssigned { .. } => ResponseError::UnknownMemberId,
        // An idempotent producer's batch out of its order: a producer the broker
        // has no session for (new epochs start at 0), a gap, or a repeat older than
        // the answers kept.
        BrokerError::SequenceOutOfOrder { expected: 0, .. } => ResponseError::UnknownProducerId,
        BrokerError::SequenceOutOfOrder { expected, got, .. } if got < expected => {
            ResponseError::DuplicateSequenceNumber
        }
        BrokerError::SequenceOutOfOrder { .. } => ResponseError::OutOfOrderSequenceNumber,
        _ => ResponseError::UnknownServerError,
    };
    kafka.code()
}

fn storage(e: &StorageError) -> i16 {
    match e {
        StorageError::TopicNotFound(_) | StorageError::PartitionNotFound { .. } => {
            ResponseError::UnknownTopicOrPartition
        }
        StorageError::TopicExists(_) => ResponseError::TopicAlreadyExists,
        StorageError::InvalidConfig(_) => ResponseError::InvalidConfig,
        StorageError::InvalidRecord(_) => ResponseError::CorruptMessage,
        StorageError::OffsetOutOfRange { .. } => ResponseError::OffsetOutOfRange,
        StorageError::Unavailable(_) | StorageError::Full { .. } | StorageError::ShuttingDown => {
            ResponseError::KafkaStorageError
        }
        _ => ResponseError::UnknownServerError,
    }
    .code()
}
