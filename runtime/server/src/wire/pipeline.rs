//! Topic configurations and pipelines as the API reads and writes them: the request
//! bodies parsed here into the broker's plain types, and those types written back.

use serde::Deserialize;
use serde_json::{Value, json};
use weir_broker::pipeline::{OnError, StepFailure, StepSpec};
use weir_broker::{CleanupPolicy, TopicConfig};

/// `PUT /v1/topics/{t}`'s config (everything but `pipeline`).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TopicConfigBody {
    partitions: u32,
    #[serde(default)]
    retention_ms: Option<u64>,
    #[serde(default)]
    retention_bytes: Option<u64>,
    #[serde(default)]
    cleanup_policy: Option<CleanupPolicyWord>,
}

#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(rename_all = "lowercase")]
enum CleanupPolicyWord {
    Delete,
    Compact,
}

impl From<TopicConfigBody> for TopicConfig {
    fn from(b: TopicConfigBody) -> Self {
        TopicConfig {
            partitions: b.partitions,
            retention_ms: b.retention_ms,
            retention_bytes: b.retention_bytes,
            cleanup_policy: match b.cleanup_policy {
                Some(CleanupPolicyWord::Compact) => CleanupPolicy::Compact,
                Some(CleanupPolicyWord::Delete) | None => CleanupPolicy::Delete,
            },
        }
    }
}

/// A topic's config as the API shows it.
pub fn topic_config(c: &TopicConfig) -> Value {
    let mut v = json!({
        "partitions": c.partitions,
        "cleanup_policy": match c.cleanup_policy {
            CleanupPolicy::Delete => "delete",
            CleanupPolicy::Compact => "compact",
        },
    });
    if let Some(ms) = c.retention_ms {
        v["retention_ms"] = json!(ms);
    }
    if let Some(b) = c.retention_bytes {
        v["retention_bytes"] = json!(b);
    }
    v
}

/// One configured pipeline step in a request.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StepBody {
    plugin: String,
    #[serde(default)]
    on_error: Option<OnErrorWord>,
    #[serde(default)]
    dead_letter_topic: Option<String>,
    #[serde(default)]
    destinations: Option<Vec<String>>,
}

#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(rename_all = "snake_case")]
enum OnErrorWord {
    Reject,
    Skip,
    DeadLetter,
}

impl From<StepBody> for StepSpec {
    fn from(b: StepBody) -> Self {
        StepSpec {
            plugin: b.plugin,
            on_error: match b.on_error {
                Some(OnErrorWord::Reject) => OnError::Reject,
                Some(OnErrorWord::Skip) => OnError::Skip,
                Some(OnErrorWord::DeadLetter) | None => OnError::DeadLetter,
            },
            dead_letter_topic: b.dead_letter_topic,
            destinations: b.destinations,
        }
    }
}

/// Parses a pipeline: an array of steps.
pub fn steps(v: Value) -> Result<Vec<StepSpec>, serde_json::Error> {
    let bodies: Vec<StepBody> = serde_json::from_value(v)?;
    Ok(bodies.into_iter().map(StepSpec::from).collect())
}

/// The word of an error policy.
pub fn on_error(o: OnError) -> &'static str {
    match o {
        OnError::Reject => "reject",
        OnError::Skip => "skip",
        OnError::DeadLetter => "dead_letter",
    }
}

/// A configured step as the API shows it.
pub fn step(s: &StepSpec) -> Value {
    let mut v = json!({ "plugin": s.plugin, "on_error": on_error(s.on_error) });
    if let Some(d) = &s.dead_letter_topic {
        v["dead_letter_topic"] = json!(d);
    }
    if let Some(d) = &s.destinations {
        v["destinations"] = json!(d);
    }
    v
}

/// Why a step failed on a record.
pub fn step_failure(f: &StepFailure) -> Value {
    let mut v = json!({ "plugin": f.plugin, "kind": f.kind, "message": f.message });
    if let Some(version) = &f.version {
        v["version"] = json!(version);
    }
    v
}
