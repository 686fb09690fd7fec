//! The stored form of a request's answer, written with its records.
//!
//! The base offsets an append gets are only known inside the storage's write, so the
//! answer is stored as a *template* whose offsets name a batch and a distance from its
//! base ([`template`]), and the storage appends the bases to the value
//! ([`weir_storage::BasesNote`]). Reading it back ([`decode`]) puts the two together.
//!
//! Plain answers are kept as runs (partition, first offset, count): a 1000-record
//! request to one partition is one run, not 1000 positions, in memory and on disk.

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use std::borrow::Cow;
use std::sync::Arc;

use crate::pipeline::{Placed, RecordResult, StepFailure};
use crate::produce::RecordPosition;
use crate::publish::{Answer, Published};

/// A template offset holds the batch index above this many bits.
const BATCH_SHIFT: u32 = 40;

/// An answer as remembered: compact for plain publishes. Its own type, not the
/// broker's [`Published`], so the stored format changes only on purpose.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) enum StoredAnswer {
    /// Runs of records stored next to each other: (partition, first offset, count),
    /// in request order.
    Runs(Vec<(u32, u64, u32)>),
    /// A pipeline's per-record results.
    Pipeline(Vec<StoredResult>),
}

/// One input record's result through a pipeline, as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct StoredResult {
    /// Outputs: (topic, partition, offset).
    outputs: Vec<(String, u32, u64)>,
    dead_letter: Option<(String, u32, u64)>,
    /// (plugin, version, kind, message).
    error: Option<(String, Option<String>, String, String)>,
}

impl StoredResult {
    fn from_result(r: &RecordResult) -> Self {
        let place = |p: &Placed| (p.topic.to_string(), p.partition, p.offset);
        Self {
            outputs: r.outputs.iter().map(place).collect(),
            dead_letter: r.dead_letter.as_ref().map(place),
            error: r.error.as_ref().map(|e| {
                (
                    e.plugin.clone(),
                    e.version.clone(),
                    e.kind.to_string(),
                    e.message.clone(),
                )
            }),
        }
    }

    fn to_result(&self) -> RecordResult {
        let place = |(topic, partition, offset): &(String, u32, u64)| Placed {
            topic: Arc::from(topic.as_str()),
            partition: *partition,
            offset: *offset,
        };
        RecordResult {
            outputs: self.outputs.iter().map(place).collect(),
            dead_letter: self.dead_letter.as_ref().map(place),
            error: self
                .error
                .as_ref()
                .map(|(plugin, version, kind, message)| StepFailure {
                    plugin: plugin.clone(),
                    version: version.clone(),
                    kind: Cow::Owned(kind.clone()),
                    message: message.clone(),
                }),
        }
    }
}

impl StoredAnswer {
    /// The compact form of `published`.
    pub(crate) fn from_published(published: &Published) -> Self {
        match published {
            Published::Plain(positions) => {
                let mut runs: Vec<(u32, u64, u32)> = Vec::new();
                for p in positions {
                    match runs.last_mut() {
                        Some((part, first, count))
                            if *part == p.partition && *first + u64::from(*count) == p.offset =>
                        {
                            *count += 1;
                        }
                        _ => runs.push((p.partition, p.offset, 1)),
                    }
                }
                StoredAnswer::Runs(runs)
            }
            Published::Pipeline(results) => {
                StoredAnswer::Pipeline(results.iter().map(StoredResult::from_result).collect())
            }
        }
    }

    /// The answer a client sees.
    pub(crate) fn to_published(&self) -> Published {
        match self {
            StoredAnswer::Runs(runs) => Published::Plain(
                runs.iter()
                    .flat_map(|&(partition, first, count)| {
                        (0..u64::from(count)).map(move |i| RecordPosition {
                            partition,
                            offset: first + i,
                        })
                    })
                    .collect(),
            ),
            StoredAnswer::Pipeline(results) => {
                Published::Pipeline(results.iter().map(StoredResult::to_result).collect())
            }
        }
    }

    fn offsets_mut(&mut self) -> Box<dyn Iterator<Item = &mut u64> + '_> {
        match self {
            StoredAnswer::Runs(runs) => Box::new(runs.iter_mut().map(|(_, first, _)| first)),
            StoredAnswer::Pipeline(results) => Box::new(results.iter_mut().flat_map(|r| {
                r.outputs
                    .iter_mut()
                    .chain(r.dead_letter.as_mut())
                    .map(|(_, _, offset)| offset)
            })),
        }
    }
}

/// The answer of `answer` with template offsets: batch `i`'s base is `i << 40`, so
/// every offset says which batch it counts from and how far.
pub(crate) fn template(answer: &Answer, batches: usize) -> StoredAnswer {
    let bases: Vec<u64> = (0..batches as u64).map(|i| i << BATCH_SHIFT).collect();
    StoredAnswer::from_published(&answer.resolve_ref(&bases))
}

/// Turns a template's offsets into real ones, given the bases the append got.
/// `None` when a template offset names a batch that is not there (damage).
fn resolve(mut answer: StoredAnswer, bases: &[u64]) -> Option<StoredAnswer> {
    for offset in answer.offsets_mut() {
        let batch = usize::try_from(*offset >> BATCH_SHIFT).ok()?;
        *offset = bases.get(batch)? + (*offset & ((1 << BATCH_SHIFT) - 1));
    }
    Some(answer)
}

/// A note's value before the bases: the body's length (4 bytes big-endian), then the
/// body as JSON.
pub(crate) fn encode<T: Serialize>(body: &T) -> Vec<u8> {
    let json = serde_json::to_vec(body).expect("a note body serializes");
    let mut out = Vec::with_capacity(4 + json.len() + 64);
    out.extend_from_slice(&(json.len() as u32).to_be_bytes());
    out.extend_from_slice(&json);
    out
}

/// A stored note: its body and its answer with real offsets. `None` when it does not
/// decode.
pub(crate) fn decode<T: DeserializeOwned + HasTemplate>(value: &[u8]) -> Option<T> {
    let len = u32::from_be_bytes(value.get(..4)?.try_into().ok()?) as usize;
    let (json, bases) = weir_storage::BasesNote::split(value.get(4..)?, len)?;
    let mut body: T = serde_json::from_slice(json).ok()?;
    let template = std::mem::replace(body.answer_mut(), StoredAnswer::Runs(Vec::new()));
    *body.answer_mut() = resolve(template, &bases)?;
    Some(body)
}

/// The storage key of a note: `prefix`, the scope, and a time (a key's creation, a
/// session's start) that makes a newer note of the same scope another key.
pub(crate) fn storage_key(prefix: &[u8], scope: &[u8], ms: i64) -> Vec<u8> {
    let mut k = Vec::with_capacity(prefix.len() + scope.len() + 8);
    k.extend_from_slice(prefix);
    k.extend_from_slice(scope);
    k.extend_from_slice(&ms.to_be_bytes());
    k
}

/// A note body that carries an answer template.
pub(crate) trait HasTemplate {
    /// The answer (a template when stored, real once decoded).
    fn answer_mut(&mut self) -> &mut StoredAnswer;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pos(partition: u32, offset: u64) -> RecordPosition {
        RecordPosition { partition, offset }
    }

    #[test]
    fn runs_round_trip_request_order() {
        let published =
            Published::Plain(vec![pos(0, 7), pos(0, 8), pos(2, 3), pos(0, 9), pos(2, 4)]);
        let stored = StoredAnswer::from_published(&published);
        assert_eq!(
            stored,
            StoredAnswer::Runs(vec![(0, 7, 2), (2, 3, 1), (0, 9, 1), (2, 4, 1)])
        );
        assert_eq!(stored.to_published(), published);
    }

    #[test]
    fn template_offsets_resolve_against_bases() {
        // Two batches: partition 0 at base 100, partition 1 at base 5.
        let answer = Answer::Plain {
            partitions: vec![0, 1],
            placement: vec![(0, 0), (1, 0), (0, 1)],
        };
        let template = template(&answer, 2);
        let real = resolve(template, &[100, 5]).unwrap();
        assert_eq!(
            real.to_published(),
            Published::Plain(vec![pos(0, 100), pos(1, 5), pos(0, 101)])
        );
        // A template naming a batch the append did not have is damage, not a guess.
        let broken = StoredAnswer::Runs(vec![(0, 3 << BATCH_SHIFT, 1)]);
        assert_eq!(resolve(broken, &[1]), None);
    }
}
