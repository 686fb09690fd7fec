//! The produce path: partitioning, encoding into one batch per partition, appending.

use std::borrow::Cow;

use weir_storage::{
    Acks, BatchBuilder, CleanupPolicy, EncodedBatch, Topic, batch::ATTR_VALUE_JSON,
};

use crate::error::{BrokerError, Result};
use crate::partitioner::{Sticky, partition_for_key};

/// A record as a client sends it, borrowing from the request body where it can.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NewRecord<'a> {
    /// Optional key; decides the partition unless one is given.
    pub key: Option<Cow<'a, [u8]>>,
    /// Value bytes; `None` is a tombstone.
    pub value: Option<Cow<'a, [u8]>>,
    /// Whether the value is JSON text (it is then returned as JSON, not base64).
    pub value_is_json: bool,
    /// Headers in order.
    pub headers: Vec<(Cow<'a, str>, Cow<'a, [u8]>)>,
    /// Explicit partition.
    pub partition: Option<u32>,
}

impl NewRecord<'_> {
    /// Bytes of key, value and headers: what the per-record limit applies to.
    pub fn size(&self) -> usize {
        self.key.as_ref().map_or(0, |k| k.len())
            + self.value.as_ref().map_or(0, |v| v.len())
            + self
                .headers
                .iter()
                .map(|(n, v)| n.len() + v.len())
                .sum::<usize>()
    }
}

/// Where one produced record went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecordPosition {
    /// Partition.
    pub partition: u32,
    /// Offset in that partition.
    pub offset: u64,
}

/// A request's records, partitioned and encoded.
pub(crate) struct Encoded {
    /// One batch per partition touched, in first-touched order.
    pub batches: Vec<(u32, EncodedBatch)>,
    /// Per record, in request order: its partition and index within that batch.
    pub placement: Vec<(u32, u32)>,
}

/// Partitions and encodes `records`: one batch per partition touched, plus, per record,
/// its partition and its index within that partition's batch.
pub(crate) fn encode(
    topic: &Topic,
    records: &[NewRecord<'_>],
    sticky: &Sticky,
    timestamp_ms: i64,
    max_record_bytes: usize,
) -> Result<Encoded> {
    let partitions = topic.partition_count();
    let compacted = topic.config().cleanup_policy == CleanupPolicy::Compact;
    let mut keyless: Option<u32> = None;
    // Most requests touch one or a few partitions: a small vec beats a map.
    let mut builders: Vec<(u32, BatchBuilder)> = Vec::new();
    let mut placement = Vec::with_capacity(records.len());
    for (index, r) in records.iter().enumerate() {
        let size = r.size();
        if size > max_record_bytes {
            return Err(BrokerError::RecordTooLarge {
                index,
                size,
                limit: max_record_bytes,
            });
        }
        if compacted && r.key.is_none() {
            return Err(BrokerError::InvalidRequest(format!(
                "record {index} has no key, but topic '{}' is compacted and needs one",
                topic.name()
            )));
        }
        let p = match (r.partition, &r.key) {
            (Some(p), _) => {
                topic.partition(p)?;
                p
            }
            (None, Some(key)) => partition_for_key(key, partitions),
            (None, None) => *keyless.get_or_insert_with(|| sticky.next(partitions)),
        };
        let slot = match builders.iter().position(|(bp, _)| *bp == p) {
            Some(i) => i,
            None => {
                builders.push((p, BatchBuilder::with_capacity(estimate(records, size))));
                builders.len() - 1
            }
        };
        let builder = &mut builders[slot].1;
        placement.push((p, builder.len()));
        builder.push(
            timestamp_ms,
            if r.value_is_json { ATTR_VALUE_JSON } else { 0 },
            r.key.as_deref(),
            r.value.as_deref(),
            r.headers.iter().map(|(n, v)| (n.as_ref(), v.as_ref())),
        )?;
    }
    let batches = builders.into_iter().map(|(p, b)| (p, b.finish())).collect();
    Ok(Encoded { batches, placement })
}

/// A capacity guess that avoids regrowing the buffer for uniform records.
fn estimate(records: &[NewRecord<'_>], first_size: usize) -> usize {
    records.len().min(100_000) * (first_size + 32)
}

/// Maps the acks word of the API.
pub fn parse_acks(s: &str) -> Result<Acks> {
    match s {
        "all" | "1" | "-1" => Ok(Acks::All),
        "none" | "0" => Ok(Acks::None),
        other => Err(BrokerError::InvalidRequest(format!(
            "acks must be 'all' or 'none', got '{other}'"
        ))),
    }
}
