//! Pipelines: plugins in-line on the produce path, and per subscription on the
//! consume path.
//!
//! A topic's chain is its configured steps (`PUT /v1/topics/{t}/pipeline`, kept in
//! the store) followed by the plugins whose `plugin.toml` attaches them to it, in name
//! order; a router, if any, runs last. A published request flows through the chain as
//! one packed batch per step ([`exec`]); its outputs — to the topic itself, to the
//! topics a router chose, and to dead-letter topics — are then encoded and stored with
//! one atomic append ([`plan`]), so an acknowledged request has all its outputs stored
//! and an unacknowledged one none.
//!
//! - [`spec`]: the step configuration and error policies.
//! - [`chain`]: resolving a topic's chain at request time.
//! - [`exec`]: running the chain over a batch, isolating failing events.
//! - `canary`: a step whose canary's candidate takes some keys: split, run, joined.
//! - [`plan`]: outputs and dead letters into batches, and the per-record results.
//! - [`outcome`]: what became of each record: where it was stored, or why not.
//! - [`consume`]: a subscription's own filter or transform.
//! - [`redaction`]: samples shown to operators, through the chain's redacting steps.

mod canary;
pub mod chain;
pub mod consume;
pub(crate) mod exec;
pub mod outcome;
pub(crate) mod plan;
pub mod redaction;
pub mod spec;

pub use chain::{Chain, Step};
pub use consume::{Delivery, SubscriptionFilter};
pub use outcome::{Placed, RecordResult, StepFailure};
pub use spec::{MissingTopic, OnError, PipelineOptions, StepSpec};

/// The header that names the plugin versions (`name@hash`) that produced a record.
pub const LINEAGE_HEADER: &str = "weir-lineage";
