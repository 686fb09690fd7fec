//! Topic configuration.

use serde::{Deserialize, Serialize};

use crate::error::{Result, StorageError};

/// Most partitions a topic may have.
pub const MAX_PARTITIONS: u32 = 1024;

/// What the background cleaner does with old data.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CleanupPolicy {
    /// Delete whole chunks past `retention_ms` or `retention_bytes`.
    #[default]
    Delete,
    /// Keep the latest record per key; tombstones go after `retention_ms`.
    Compact,
}

/// A topic's configuration, fixed at creation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TopicConfig {
    /// Number of partitions, 1..=1024.
    pub partitions: u32,
    /// Delete data older than this many milliseconds (for `compact`: how long
    /// tombstones are kept). `None`: keep forever.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retention_ms: Option<u64>,
    /// Delete the oldest data while a partition holds more than this many bytes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retention_bytes: Option<u64>,
    /// `delete` (default) or `compact`.
    #[serde(default)]
    pub cleanup_policy: CleanupPolicy,
}

impl TopicConfig {
    /// A config with `partitions` partitions and defaults otherwise.
    pub fn with_partitions(partitions: u32) -> Self {
        Self {
            partitions,
            retention_ms: None,
            retention_bytes: None,
            cleanup_policy: CleanupPolicy::Delete,
        }
    }

    /// Checks the ranges.
    pub fn validate(&self) -> Result<()> {
        if self.partitions == 0 || self.partitions > MAX_PARTITIONS {
            return Err(StorageError::InvalidConfig(format!(
                "partitions must be between 1 and {MAX_PARTITIONS}, got {}",
                self.partitions
            )));
        }
        if self.retention_ms == Some(0) {
            return Err(StorageError::InvalidConfig(
                "retention_ms must be positive (omit it to keep data forever)".into(),
            ));
        }
        if self.retention_bytes == Some(0) {
            return Err(StorageError::InvalidConfig(
                "retention_bytes must be positive (omit it for no size limit)".into(),
            ));
        }
        Ok(())
    }
}

/// Kafka's naming rule, used for topics, groups and members: 1–249 characters of
/// `[A-Za-z0-9._-]`, and not `.` or `..`.
pub fn is_valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 249
        && name != "."
        && name != ".."
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

/// Checks a topic name against [`is_valid_name`].
pub fn validate_topic_name(name: &str) -> Result<()> {
    if is_valid_name(name) {
        Ok(())
    } else {
        Err(StorageError::InvalidConfig(format!(
            "invalid topic name '{name}': use 1-249 characters of A-Z, a-z, 0-9, '.', '_', '-'"
        )))
    }
}
