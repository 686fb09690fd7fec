//! Broker errors with stable codes.

use weir_host::PluginError;
use weir_storage::StorageError;

use crate::pipeline::StepFailure;

/// Result alias for broker operations.
pub type Result<T, E = BrokerError> = std::result::Result<T, E>;

/// What a produce or fetch can fail with. [`code`](Self::code) is stable.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BrokerError {
    /// The request is well-formed but not acceptable.
    #[error("{0}")]
    InvalidRequest(String),
    /// One record is larger than the per-record limit.
    #[error("record {index} is {size} bytes, over the {limit}-byte per-record limit")]
    RecordTooLarge {
        /// Index of the record in the request.
        index: usize,
        /// Its encoded size.
        size: usize,
        /// The limit.
        limit: usize,
    },
    /// A member committed (or fetched) a partition it does not own.
    #[error("partition {partition} of topic '{topic}' is not assigned to this member of group '{group}' (owner: {})", owner.as_deref().unwrap_or("none"))]
    NotAssigned {
        /// Group.
        group: String,
        /// Topic.
        topic: String,
        /// Partition.
        partition: u32,
        /// Its owner now.
        owner: Option<String>,
    },
    /// No group of that name has members or committed offsets.
    #[error("group '{0}' does not exist")]
    GroupNotFound(String),
    /// The operation needs a group without live members.
    #[error(
        "group '{group}' has {members} live member(s); stop them or wait for their session timeout"
    )]
    GroupNotEmpty {
        /// Group.
        group: String,
        /// Live members.
        members: usize,
    },
    /// Another protocol's members (Kafka consumers) hold the group.
    #[error(
        "group '{group}' is in use by {protocol} consumers; one group is read through one protocol at a time"
    )]
    GroupInUse {
        /// Group.
        group: String,
        /// Who holds it.
        protocol: &'static str,
    },
    /// A pipeline step failed on a record under the `reject` policy; nothing of the
    /// request was stored.
    #[error("record {index} was rejected by plugin '{}': {}", failure.plugin, failure.message)]
    PluginRejected {
        /// Index of the record in the request.
        index: usize,
        /// What failed.
        failure: Box<StepFailure>,
    },
    /// An `Idempotency-Key` came back with a different request than the one it was
    /// first used for.
    #[error(
        "Idempotency-Key '{0}' was used for a different request within the dedup window; use a new key for a new request"
    )]
    IdempotencyKeyReused(String),
    /// A producer session's request came out of order.
    #[error(
        "producer '{producer}' sent sequence {got} to partition {partition}, expected {expected}: {why}"
    )]
    SequenceOutOfOrder {
        /// The producer id.
        producer: String,
        /// The partition.
        partition: u32,
        /// The sequence the broker expects next.
        expected: u64,
        /// The sequence sent.
        got: u64,
        /// Why it is refused.
        why: String,
    },
    /// The topic's pipeline cannot run as configured.
    #[error("{0}")]
    PipelineInvalid(String),
    /// A processor's step was refused: a newer run of the processor (a restart, a
    /// reset, a new version) has taken over its partitions.
    #[error(
        "processor '{processor}' generation {generation} is fenced: generation {current} has taken over"
    )]
    ProcessorFenced {
        /// The processor.
        processor: String,
        /// The generation that tried to commit.
        generation: u64,
        /// The current one.
        current: u64,
    },
    /// A processor's plugin failed on a batch; nothing of the batch was stored.
    #[error("processor '{processor}' failed: {reason}")]
    ProcessorFailed {
        /// The processor.
        processor: String,
        /// Why.
        reason: String,
    },
    /// A processor cannot run at all for now (no loadable version, quarantined, a
    /// state layout it cannot read); its input waits.
    #[error("processor '{processor}' cannot run: {reason}")]
    ProcessorBlocked {
        /// The processor.
        processor: String,
        /// Why.
        reason: String,
    },
    /// A plugin could not be used (consume-side filters).
    #[error(transparent)]
    Plugin(#[from] PluginError),
    /// A bug or a crashed task; the message says which.
    #[error("internal error: {0}")]
    Internal(String),
    /// An error from the log.
    #[error(transparent)]
    Storage(#[from] StorageError),
}

impl BrokerError {
    /// The stable machine-readable code of this error.
    pub fn code(&self) -> &'static str {
        match self {
            Self::InvalidRequest(_) => "invalid_request",
            Self::RecordTooLarge { .. } => "payload_too_large",
            Self::NotAssigned { .. } => "not_assigned",
            Self::GroupNotFound(_) => "group_not_found",
            Self::GroupNotEmpty { .. } => "group_not_empty",
            Self::GroupInUse { .. } => "group_in_use",
            Self::PluginRejected { .. } => "plugin_rejected",
            Self::IdempotencyKeyReused(_) => "idempotency_key_reused",
            Self::SequenceOutOfOrder { .. } => "sequence_out_of_order",
            Self::PipelineInvalid(_) => "pipeline_invalid",
            Self::ProcessorFenced { .. } => "processor_fenced",
            Self::ProcessorFailed { .. } => "processor_failed",
            Self::ProcessorBlocked { .. } => "processor_blocked",
            Self::Plugin(e) => e.code(),
            Self::Internal(_) => "internal_error",
            Self::Storage(e) => e.code(),
        }
    }
}
