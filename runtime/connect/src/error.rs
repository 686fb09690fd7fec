//! Errors of the connector API, with stable codes.

/// Why a connector operation failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConnectError {
    /// No source or sink plugin of that name is installed.
    #[error(
        "no connector named '{0}' (connectors are source and sink plugins in the plugin directory)"
    )]
    NotFound(String),
    /// Recording the requested state failed.
    #[error(transparent)]
    Broker(#[from] weir_broker::BrokerError),
}

impl ConnectError {
    /// Stable, machine-readable code.
    pub fn code(&self) -> &'static str {
        match self {
            ConnectError::NotFound(_) => "connector_not_found",
            ConnectError::Broker(e) => e.code(),
        }
    }
}
