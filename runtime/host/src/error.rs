//! Plugin errors with stable codes.

/// Result alias for host operations.
pub type Result<T, E = PluginError> = std::result::Result<T, E>;

/// Why loading or calling a plugin failed. Every variant names the plugin.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PluginError {
    /// `plugin.toml` is missing, unreadable or invalid.
    #[error("plugin manifest {path}: {reason}")]
    Manifest {
        /// The manifest's path.
        path: String,
        /// What is wrong.
        reason: String,
    },
    /// The component could not be read, compiled or linked, or does not match the
    /// world its manifest declares.
    #[error("plugin '{plugin}': component {file}: {reason}")]
    Component {
        /// Plugin name.
        plugin: String,
        /// The component file.
        file: String,
        /// What is wrong.
        reason: String,
    },
    /// `init` rejected the configuration (or trapped).
    #[error("plugin '{plugin}' rejected its config: {reason}")]
    InitRejected {
        /// Plugin name.
        plugin: String,
        /// The plugin's message.
        reason: String,
    },
    /// The call ran past its deadline and was interrupted.
    #[error("plugin '{plugin}' timed out after {timeout_ms} ms")]
    Timeout {
        /// Plugin name.
        plugin: String,
        /// The deadline.
        timeout_ms: u64,
    },
    /// The plugin tried to grow its memory past its cap.
    #[error("plugin '{plugin}' exceeded its memory limit of {limit_mb} MiB")]
    MemoryLimit {
        /// Plugin name.
        plugin: String,
        /// The cap.
        limit_mb: u64,
    },
    /// The plugin overflowed its stack.
    #[error("plugin '{plugin}' overflowed its stack")]
    StackOverflow {
        /// Plugin name.
        plugin: String,
    },
    /// The plugin trapped (panicked, hit `unreachable`, ...).
    #[error("plugin '{plugin}' trapped: {reason}")]
    Trap {
        /// Plugin name.
        plugin: String,
        /// The trap.
        reason: String,
    },
    /// The plugin says the input is at fault.
    #[error("plugin '{plugin}' rejected the input: {reason}")]
    BadInput {
        /// Plugin name.
        plugin: String,
        /// The plugin's message.
        reason: String,
    },
    /// The plugin says it failed.
    #[error("plugin '{plugin}' failed: {reason}")]
    Failed {
        /// Plugin name.
        plugin: String,
        /// The plugin's message.
        reason: String,
    },
    /// The plugin answered something that does not fit the batch.
    #[error("plugin '{plugin}' returned an invalid result: {reason}")]
    InvalidOutput {
        /// Plugin name.
        plugin: String,
        /// What is wrong.
        reason: String,
    },
    /// The plugin is quarantined after repeated failures and was not called.
    #[error(
        "plugin '{plugin}' is quarantined after repeated failures; next retry in {retry_in_ms} ms"
    )]
    Quarantined {
        /// Plugin name.
        plugin: String,
        /// Time until the next probe call.
        retry_in_ms: u64,
    },
    /// No loaded version of the plugin exists (not installed, or failed to load).
    #[error("plugin '{plugin}' is not available: {reason}")]
    Unavailable {
        /// Plugin name.
        plugin: String,
        /// Why.
        reason: String,
    },
    /// A processor's state could not be read during a call (storage failed): no
    /// fault of the plugin or of its input; the batch is retried.
    #[error("plugin '{plugin}' could not read its state: {reason}")]
    StateUnavailable {
        /// Plugin name.
        plugin: String,
        /// Why.
        reason: String,
    },
    /// The component needs more of something than its `[limits]` allow.
    #[error(
        "plugin '{plugin}' needs {needed} {limit}, above its limit of {allowed}; raise {key} in plugin.toml"
    )]
    Limit {
        /// Plugin name.
        plugin: String,
        /// What ran short: `core instances`, `tables`, `memories`.
        limit: &'static str,
        /// How many it needs (`more than N` when only the failure told).
        needed: String,
        /// The limit now.
        allowed: u64,
        /// The manifest key that raises it.
        key: &'static str,
    },
    /// A connector's grant is outside what the operator allows (`[connectors]`).
    #[error("plugin '{plugin}': grant {grant} is not allowed: {reason}")]
    GrantNotAllowed {
        /// Plugin name.
        plugin: String,
        /// The grant, as the manifest states it.
        grant: String,
        /// Why.
        reason: String,
    },
    /// The plugin directory could not be written.
    #[error("plugin '{plugin}': writing {path}: {reason}")]
    Io {
        /// Plugin name.
        plugin: String,
        /// The file.
        path: String,
        /// The OS error.
        reason: String,
    },
    /// The version a deploy would replace, or a rollback would return to, changed
    /// after the caller checked it: nothing was done.
    #[error(
        "plugin '{plugin}' changed while the request was being checked (expected {expected}, found {found}); try again"
    )]
    ChangedMeanwhile {
        /// Plugin name.
        plugin: String,
        /// The version the caller checked (`none`: no version).
        expected: String,
        /// The version found instead.
        found: String,
    },
    /// There is no version to roll back to.
    #[error("plugin '{plugin}' has no earlier version that served to roll back to")]
    NoPreviousVersion {
        /// Plugin name.
        plugin: String,
    },
    #[error("plugin '{plugin}' is a {actual}, not a {expected}")]
    WrongKind {
        /// Plugin name.
        plugin: String,
        /// What the caller needed.
        expected: &'static str,
        /// What the plugin is.
        actual: &'static str,
    },
}

impl PluginError {
    /// The stable machine-readable code.
    pub fn code(&self) -> &'static str {
        match self {
            Self::Manifest { .. } => "plugin_manifest_invalid",
            Self::Component { .. } => "plugin_component_invalid",
            Self::InitRejected { .. } => "plugin_init_rejected",
            Self::Timeout { .. } => "plugin_timeout",
            Self::MemoryLimit { .. } => "plugin_memory_limit",
            Self::StackOverflow { .. } => "plugin_stack_overflow",
            Self::Trap { .. } => "plugin_trap",
            Self::BadInput { .. } => "plugin_bad_input",
            Self::Failed { .. } => "plugin_failed",
            Self::InvalidOutput { .. } => "plugin_invalid_output",
            Self::Quarantined { .. } => "plugin_quarantined",
            Self::Unavailable { .. } => "plugin_unavailable",
            Self::StateUnavailable { .. } => "plugin_state_unavailable",
            Self::WrongKind { .. } => "plugin_wrong_kind",
            Self::NoPreviousVersion { .. } => "plugin_no_previous_version",
            Self::Io { .. } => "plugin_dir_io",
            Self::GrantNotAllowed { .. } => "plugin_grant_not_allowed",
            Self::Limit { .. } => "plugin_limit",
            Self::ChangedMeanwhile { .. } => "plugin_changed_meanwhile",
        }
    }

    /// Whether the plugin is at fault, so the failure counts toward quarantine.
    /// `bad_input` says the data is bad (the plugin works); quarantine and
    /// unavailability are not calls at all.
    pub fn counts_against_plugin(&self) -> bool {
        !matches!(
            self,
            Self::BadInput { .. }
                | Self::Quarantined { .. }
                | Self::Unavailable { .. }
                | Self::StateUnavailable { .. }
        )
    }

    /// Whether the failure may be specific to some events of a batch, so calling the
    /// plugin again on parts of the batch can isolate them. Timeouts and memory
    /// errors are not retried: each retry would cost the full deadline or cap.
    pub fn isolatable(&self) -> bool {
        matches!(
            self,
            Self::Trap { .. }
                | Self::BadInput { .. }
                | Self::Failed { .. }
                | Self::InvalidOutput { .. }
                | Self::StackOverflow { .. }
        )
    }

    /// Whether the instance that produced this error must be discarded.
    pub fn poisons_instance(&self) -> bool {
        matches!(
            self,
            Self::Timeout { .. }
                | Self::MemoryLimit { .. }
                | Self::StackOverflow { .. }
                | Self::Trap { .. }
        )
    }
}
