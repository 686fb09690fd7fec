//! Storage errors with stable codes.

/// Result alias for storage operations.
pub type Result<T, E = StorageError> = std::result::Result<T, E>;

/// Everything that can go wrong in the log. Each variant has a stable [`code`](Self::code)
/// that the server maps to HTTP and that clients may match on.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StorageError {
    /// The topic does not exist (or was deleted).
    #[error("topic '{0}' does not exist")]
    TopicNotFound(String),
    /// The partition index is outside the topic's partition count.
    #[error("topic '{topic}' has no partition {partition} (it has {count})")]
    PartitionNotFound {
        /// Topic name.
        topic: String,
        /// Requested partition.
        partition: u32,
        /// Partitions the topic has.
        count: u32,
    },
    /// A topic of that name exists with another configuration.
    #[error("topic '{0}' already exists with a different configuration")]
    TopicExists(String),
    /// The topic configuration is not acceptable.
    #[error("invalid topic configuration: {0}")]
    InvalidConfig(String),
    /// A record cannot be encoded (field too large, too many headers).
    #[error("invalid record: {0}")]
    InvalidRecord(String),
    /// A read started outside `[log_start_offset, high_watermark]`.
    #[error("offset {offset} is out of range [{log_start_offset}, {high_watermark}]")]
    OffsetOutOfRange {
        /// Requested offset.
        offset: u64,
        /// First offset still stored.
        log_start_offset: u64,
        /// One past the last readable offset.
        high_watermark: u64,
    },
    /// Stored bytes failed their checksum or do not decode. Never served as data.
    #[error("corrupt data: {0}")]
    Corrupt(String),
    /// A flush failed earlier; the store refuses writes rather than acknowledge data it
    /// cannot make durable.
    #[error("storage is failed after an I/O error and refuses writes: {0}")]
    Failed(String),
    /// The data dir's filesystem has less free space than the configured floor; nothing
    /// of the append was written. Resumes by itself once space is freed.
    #[error(
        "storage is full: {free_bytes} bytes free on the data dir's filesystem, below the \
         floor of {floor_bytes} bytes; nothing was written. Free space on that filesystem \
         (other files, a larger disk) and retry: publishing resumes by itself"
    )]
    Full {
        /// Free bytes at the time of the refusal.
        free_bytes: u64,
        /// The configured floor.
        floor_bytes: u64,
    },
    /// The store is shutting down.
    #[error("storage is shutting down")]
    ShuttingDown,
    /// A replicated log did not answer in time or refused the write for now (no quorum,
    /// a leader election, a lost connection). Nothing was acknowledged; a retry may
    /// succeed.
    #[error("the replicated log is unavailable: {0}")]
    Unavailable(String),
    /// The replicated log cannot be used as configured (a server too old, a feature
    /// off, bad credentials). Fixed by the operator, not by retrying.
    #[error("{0}")]
    Unusable(String),
    /// A compare-and-set write lost: the key changed since it was read. Nothing was
    /// written.
    #[error("a concurrent change won: {0}")]
    VersionConflict(String),
    /// The log cannot do what was asked (a feature of one backend only). Nothing was
    /// written.
    #[error("{0}")]
    Unsupported(String),
    /// sled reported an error.
    #[error("storage engine error: {0}")]
    Engine(#[from] sled::Error),
}

impl StorageError {
    /// A `storage_corrupt` error with `msg`.
    pub fn corrupt(msg: impl Into<String>) -> Self {
        Self::Corrupt(msg.into())
    }

    /// Whether the error means stored data is damaged (our checks, sled's own, or
    /// sled failing to make sense of its files).
    pub fn is_damage(&self) -> bool {
        match self {
            Self::Corrupt(_) => true,
            Self::Engine(e) => match e {
                sled::Error::Corruption { .. }
                | sled::Error::Unsupported(_)
                | sled::Error::ReportableBug(_) => true,
                sled::Error::Io(io) => matches!(
                    io.kind(),
                    std::io::ErrorKind::UnexpectedEof | std::io::ErrorKind::InvalidData
                ),
                _ => false,
            },
            _ => false,
        }
    }

    /// The stable machine-readable code of this error.
    pub fn code(&self) -> &'static str {
        match self {
            Self::TopicNotFound(_) => "topic_not_found",
            Self::PartitionNotFound { .. } => "partition_not_found",
            Self::TopicExists(_) => "topic_exists",
            Self::InvalidConfig(_) | Self::InvalidRecord(_) => "invalid_request",
            Self::OffsetOutOfRange { .. } => "offset_out_of_range",
            Self::Corrupt(_) => "storage_corrupt",
            Self::Engine(_) if self.is_damage() => "storage_corrupt",
            Self::Full { .. } => "storage_full",
            Self::Unavailable(_) => "storage_unavailable",
            Self::VersionConflict(_) => "version_conflict",
            Self::Unusable(_) => "storage_error",
            Self::Unsupported(_) => "unsupported",
            Self::Failed(_) | Self::ShuttingDown | Self::Engine(_) => "storage_error",
        }
    }
}
