//! Samples of records shown to operators (a shadow's differences, a diff replay's)
//! pass through the chain's redacting steps first (transforms whose manifest says
//! `redacts = true`), so a report shows what the topic would have stored, not what
//! its redactor exists to hide.
//!
//! The steps applied are those after the sampled plugin in its topic's chain (those
//! before it already ran on its input); when the plugin is not in the chain (a
//! replay of another topic), all of them. They are called directly, beside the
//! serving path (their counters and breaker see nothing); a redacting step is
//! stateless by contract. A value a step fails on is withheld.

use weir_host::packed::{self, FLAG_VALUE_JSON, Writer};
use weir_host::{BatchInfo, Kind, Plugin};

use super::chain::Chain;
use std::sync::Arc;

/// What a sample's value became.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Shown {
    /// The value after the chain's redacting steps (as is when there is none).
    Value(Vec<u8>),
    /// A redacting step failed on it (or dropped it): not shown.
    Withheld,
}

/// The redacting steps `plugin`'s outputs pass through in `chain`.
pub fn redactors(chain: &Chain, plugin: &str) -> Vec<Arc<Plugin>> {
    let after = chain
        .steps
        .iter()
        .position(|s| s.name == plugin)
        .map_or(0, |i| i + 1);
    chain.steps[after..]
        .iter()
        .filter_map(|s| s.plugin.clone())
        .filter(|p| p.kind() == Kind::Transform && p.manifest().redacts)
        .collect()
}

/// `value` (one output of a sample) through `redactors`, in order.
pub fn redact(redactors: &[Arc<Plugin>], info: &BatchInfo, value: &[u8]) -> Shown {
    let mut value = value.to_vec();
    for r in redactors {
        let json = serde_json::from_slice::<serde::de::IgnoredAny>(&value).is_ok();
        let mut w = Writer::with_capacity(value.len() + 64);
        w.push(
            0,
            if json { FLAG_VALUE_JSON } else { 0 },
            None,
            Some(&value),
            std::iter::empty(),
        );
        let buf = w.finish();
        let out = match r.transform(info, &buf, 1) {
            Ok(t) => t.events,
            Err(_) => return Shown::Withheld,
        };
        match packed::decode(&out)
            .ok()
            .and_then(|e| e.first()?.value.map(<[u8]>::to_vec))
        {
            Some(v) => value = v,
            None => return Shown::Withheld,
        }
    }
    Shown::Value(value)
}
