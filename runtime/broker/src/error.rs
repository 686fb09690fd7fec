//! Broker errors with stable codes.

use weir_storage::StorageError;

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
            Self::Storage(e) => e.code(),
        }
    }
}
