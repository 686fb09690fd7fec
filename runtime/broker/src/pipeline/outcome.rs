//! What became of a request's records in a pipeline: per input record, where its
//! outputs were stored, or why a step failed on it. The executor records failures,
//! the planner places outputs; both speak these.

use std::borrow::Cow;
use std::sync::Arc;

use weir_host::{Plugin, PluginError};

use super::chain::Step;

/// Why a step failed on an event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StepFailure {
    /// The plugin.
    pub plugin: String,
    /// Its version (SHA-256 of the component), if one was loaded.
    pub version: Option<String>,
    /// The stable error code (`plugin_trap`, `plugin_timeout`, `unknown_topic`, ...).
    pub kind: Cow<'static, str>,
    /// The message.
    pub message: String,
}

impl StepFailure {
    /// `step` failed on an event while running `version` (the serving one or a
    /// canary's candidate; `None` when none is loaded).
    pub(crate) fn new(step: &Step, version: Option<&Plugin>, e: &PluginError) -> Self {
        Self {
            plugin: step.name.clone(),
            version: version.map(|p| p.hash().to_string()),
            kind: Cow::Borrowed(e.code()),
            message: e.to_string(),
        }
    }
}

/// Where one output was stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Placed {
    /// Topic.
    pub topic: Arc<str>,
    /// Partition.
    pub partition: u32,
    /// Offset.
    pub offset: u64,
}

/// What became of one input record of a request that went through a pipeline.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RecordResult {
    /// Its stored outputs (empty: filtered out, or failed); almost always one, kept
    /// inline.
    pub outputs: smallvec::SmallVec<[Placed; 1]>,
    /// Where the original went when a step failed on it under `dead_letter`.
    pub dead_letter: Option<Placed>,
    /// The failure, under `skip` or `dead_letter`.
    pub error: Option<StepFailure>,
}

impl RecordResult {
    /// `stored`, `filtered` (no output and no failure), `skipped` or
    /// `dead_lettered`.
    pub fn status(&self) -> &'static str {
        match (&self.error, &self.dead_letter, self.outputs.is_empty()) {
            (_, Some(_), _) => "dead_lettered",
            (Some(_), None, true) => "skipped",
            (None, None, true) => "filtered",
            (_, None, false) => "stored",
        }
    }
}
