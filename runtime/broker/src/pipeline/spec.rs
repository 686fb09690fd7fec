//! What a pipeline step is configured with, and the broker-wide pipeline settings.

use serde::{Deserialize, Serialize};

use crate::error::{BrokerError, Result};

/// What happens to events a step fails on (the plugin trapped, timed out, ran out of
/// memory, returned an error, or is quarantined or missing).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OnError {
    /// The whole request fails with 422 `plugin_rejected`; nothing is stored.
    Reject,
    /// The events are dropped and counted.
    Skip,
    /// The original events go to the dead-letter topic, with headers saying why.
    #[default]
    DeadLetter,
}

impl OnError {
    /// Parses a manifest's `on_error` word.
    pub fn parse(s: &str) -> Result<Self> {
        match s {
            "reject" => Ok(Self::Reject),
            "skip" => Ok(Self::Skip),
            "dead_letter" => Ok(Self::DeadLetter),
            other => Err(BrokerError::InvalidRequest(format!(
                "on_error must be 'reject', 'skip' or 'dead_letter', got '{other}'"
            ))),
        }
    }
}

/// One configured step of a topic's pipeline.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StepSpec {
    /// The plugin's name.
    pub plugin: String,
    /// The error policy.
    #[serde(default)]
    pub on_error: OnError,
    /// Where `dead_letter` sends events (default `<topic>.dlq`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dead_letter_topic: Option<String>,
    /// The topics this step may route to, approved when the step was configured (by
    /// default the router's declared destinations then). A route must be declared by
    /// the version that runs *and* approved here, so a plugin that becomes a router,
    /// or declares more, later cannot route this topic's records anywhere new.
    /// `None` (steps configured before approvals existed): declared is enough.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub destinations: Option<Vec<String>>,
}

/// What a router naming a topic that does not exist gets.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MissingTopic {
    /// The event fails with `unknown_topic` and the router's error policy applies.
    #[default]
    Error,
    /// The topic is created with `auto_create_partitions` partitions.
    Create,
}

/// Broker-wide pipeline settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PipelineOptions {
    /// What a router naming an unknown topic gets.
    pub missing_topic: MissingTopic,
    /// Partitions of topics a router creates.
    pub auto_create_partitions: u32,
    /// Partitions of dead-letter topics the broker creates.
    pub dead_letter_partitions: u32,
}

impl Default for PipelineOptions {
    fn default() -> Self {
        Self {
            missing_topic: MissingTopic::Error,
            auto_create_partitions: 1,
            dead_letter_partitions: 1,
        }
    }
}
