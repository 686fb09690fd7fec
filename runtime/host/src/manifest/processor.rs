//! `[processor]`: what a processor plugin consumes and emits, how it groups events in
//! time, and the version of its state's layout.
//!
//! ```toml
//! [processor]
//! inputs = ["clicks"]
//! outputs = ["click-counts"]
//! windows = { kind = "tumbling", size_ms = 60000 }
//! allowed_lateness_ms = 5000
//! late = "side_output"            # drop | side_output | dead_letter
//! state_version = 1
//! ```

use serde::Deserialize;

use super::valid_name;

/// How a processor groups events in time (`[processor] windows`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase", deny_unknown_fields)]
pub enum WindowSpec {
    /// Back-to-back windows of `size_ms`.
    Tumbling {
        /// Window length.
        size_ms: i64,
    },
    /// Windows of `size_ms` starting every `advance_ms` (an event counts in each
    /// window that covers it).
    Hopping {
        /// Window length.
        size_ms: i64,
        /// Distance between window starts.
        advance_ms: i64,
    },
    /// Per key, events closer than `gap_ms` to each other share a window.
    Session {
        /// Inactivity that ends a session.
        gap_ms: i64,
    },
}

/// What happens to an event too late for every window of its own.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LateEvents {
    /// Counted and dropped.
    #[default]
    Drop,
    /// Copied to `late_topic` (default `<processor>.late`) with `weir-late: true`.
    SideOutput,
    /// Copied to `late_topic` (default `<input>.dlq`) with `weir-late: true`.
    DeadLetter,
}

/// Where a processor's event times come from.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EventTime {
    /// The record's timestamp.
    #[default]
    Record,
    /// The plugin's `event-times` export (a field of the value).
    Plugin,
}

/// `[processor]`, required for processor plugins.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProcessorSettings {
    /// Topics it consumes, each partition in offset order.
    pub inputs: Vec<String>,
    /// Topics it may emit to (an output to any other fails the batch).
    #[serde(default)]
    pub outputs: Vec<String>,
    /// Its windows; none for a processor that keeps plain keyed state.
    #[serde(default)]
    pub windows: Option<WindowSpec>,
    /// How long after a window's end its events are still accepted, in ms.
    #[serde(default)]
    pub allowed_lateness_ms: i64,
    /// What happens to later events.
    #[serde(default)]
    pub late: LateEvents,
    /// Where late events are copied (see [`LateEvents`] for the defaults).
    #[serde(default)]
    pub late_topic: Option<String>,
    /// Where event times come from.
    #[serde(default)]
    pub event_time: EventTime,
    /// The layout of the state this version reads and writes. A new version with
    /// another one is refused unless deployed with `reset_state` (its old state
    /// would be misread).
    #[serde(default = "one")]
    pub state_version: u32,
    /// Most events per batch.
    #[serde(default = "default_batch_max")]
    pub batch_max: u32,
}

/// The prefix of processors' consumer groups, reserved for them.
pub const GROUP_PREFIX: &str = "processor.";

/// Most hopping windows one event may count in.
pub const MAX_WINDOWS_PER_EVENT: i64 = 1_000;

/// Most events per batch.
pub const MAX_BATCH: u32 = 10_000;

fn one() -> u32 {
    1
}

fn default_batch_max() -> u32 {
    1000
}

impl ProcessorSettings {
    /// Where the late events of `input` go, if anywhere.
    pub fn late_topic_of(&self, processor: &str, input: &str) -> Option<String> {
        match self.late {
            LateEvents::Drop => None,
            LateEvents::SideOutput => Some(
                self.late_topic
                    .clone()
                    .unwrap_or_else(|| format!("{processor}.late")),
            ),
            LateEvents::DeadLetter => Some(
                self.late_topic
                    .clone()
                    .unwrap_or_else(|| format!("{input}.dlq")),
            ),
        }
    }

    /// The consumer group it reads its inputs as.
    pub fn group_of(processor: &str) -> String {
        format!("{GROUP_PREFIX}{processor}")
    }

    /// Where input records that fail every retry go.
    pub fn dead_letter_topic_of(input: &str) -> String {
        format!("{input}.dlq")
    }

    /// What is wrong with these settings, if anything.
    pub(super) fn problem(&self) -> Option<String> {
        if self.inputs.is_empty() {
            return Some("[processor] inputs must name at least one topic".into());
        }
        let names = self
            .inputs
            .iter()
            .chain(&self.outputs)
            .chain(&self.late_topic);
        if let Some(n) = names.into_iter().find(|n| !valid_name(n)) {
            return Some(format!(
                "[processor]: '{n}' is not a topic name (1-249 characters of A-Z, a-z, 0-9, '.', '_', '-')"
            ));
        }
        let written = self.outputs.iter().chain(&self.late_topic);
        if let Some(n) = written.into_iter().find(|t| self.inputs.contains(t)) {
            return Some(format!(
                "[processor]: '{n}' is both an input and an output or late topic (the processor would read its own records)"
            ));
        }
        if self.windows.is_some() && self.inputs.len() > 1 {
            // Watermarks are per input partition: two inputs would close a window
            // twice, once per input.
            return Some(
                "[processor]: windows need exactly one input (join inputs with keyed state instead)"
                    .into(),
            );
        }
        if self.allowed_lateness_ms < 0 {
            return Some("[processor] allowed_lateness_ms must not be negative".into());
        }
        if self.batch_max == 0 || self.batch_max > MAX_BATCH {
            return Some(format!(
                "[processor] batch_max must be between 1 and {MAX_BATCH}"
            ));
        }
        if self.late == LateEvents::Drop && self.late_topic.is_some() {
            return Some(
                "[processor] late_topic needs late = \"side_output\" or \"dead_letter\"".into(),
            );
        }
        match self.windows {
            Some(WindowSpec::Tumbling { size_ms }) if size_ms <= 0 => {
                Some("[processor] windows: size_ms must be positive".into())
            }
            Some(WindowSpec::Hopping {
                size_ms,
                advance_ms,
            }) if size_ms <= 0
                || advance_ms <= 0
                || advance_ms > size_ms
                || size_ms / advance_ms > MAX_WINDOWS_PER_EVENT =>
            {
                Some(format!(
                    "[processor] windows: size_ms and advance_ms must be positive, advance_ms at most size_ms, and size_ms / advance_ms at most {MAX_WINDOWS_PER_EVENT} (each event counts in that many windows)"
                ))
            }
            Some(WindowSpec::Session { gap_ms }) if gap_ms <= 0 => {
                Some("[processor] windows: gap_ms must be positive".into())
            }
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use crate::manifest::Manifest;

    fn problem(section: &str) -> Option<String> {
        let text = format!(
            "name = \"p\"\nkind = \"processor\"\ncomponent = \"p.wasm\"\n[processor]\n{section}"
        );
        Manifest::parse(&text, Path::new("p/plugin.toml"))
            .err()
            .map(|e| e.to_string())
    }

    #[test]
    fn impossible_processors_are_refused_saying_why() {
        assert_eq!(problem("inputs = [\"a\"]\noutputs = [\"b\"]"), None);
        for (section, why) in [
            ("inputs = []", "at least one topic"),
            ("inputs = [\"a\"]\noutputs = [\"a\"]", "both an input"),
            (
                "inputs = [\"a\"]\nlate = \"side_output\"\nlate_topic = \"a\"",
                "both an input",
            ),
            (
                "inputs = [\"a\", \"b\"]\nwindows = { kind = \"tumbling\", size_ms = 10 }",
                "exactly one input",
            ),
            (
                "inputs = [\"a\"]\nwindows = { kind = \"tumbling\", size_ms = 0 }",
                "size_ms must be positive",
            ),
            (
                "inputs = [\"a\"]\nwindows = { kind = \"hopping\", size_ms = 100000, advance_ms = 1 }",
                "at most 1000",
            ),
            ("inputs = [\"a\"]\nbatch_max = 100000", "batch_max"),
            ("inputs = [\"a\"]\nlate_topic = \"x\"", "late_topic needs"),
            ("inputs = [\"a b\"]", "not a topic name"),
        ] {
            let got = problem(section).unwrap_or_default();
            assert!(got.contains(why), "{section}: {got}");
        }
    }

    #[test]
    fn a_processor_needs_its_section_and_only_processors_have_one() {
        let text = "name = \"p\"\nkind = \"processor\"\ncomponent = \"p.wasm\"\n";
        assert!(Manifest::parse(text, Path::new("p")).is_err());
        let text = "name = \"f\"\nkind = \"filter\"\ncomponent = \"f.wasm\"\n[processor]\ninputs = [\"a\"]\n";
        assert!(Manifest::parse(text, Path::new("f")).is_err());
    }
}
