//! The produce path: partitioning, encoding into one batch per partition, appending.

use std::borrow::Cow;

use weir_storage::{BatchBuilder, CleanupPolicy, EncodedBatch, Topic, batch::ATTR_VALUE_JSON};

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

/// What the encoder needs of a record: a client's [`NewRecord`], or a pipeline's
/// output read straight from the plugin's packed buffer (no copy, no allocation per
/// record).
pub(crate) trait Record {
    /// The key, which decides the partition unless one is given.
    fn key(&self) -> Option<&[u8]>;
    /// The value (`None`: a tombstone).
    fn value(&self) -> Option<&[u8]>;
    /// Whether the value is JSON text.
    fn value_is_json(&self) -> bool;
    /// The explicit partition, if any.
    fn partition(&self) -> Option<u32>;
    /// The headers, in order.
    fn headers(&self) -> impl Iterator<Item = (&str, &[u8])>;

    /// Bytes of key, value and headers: what the per-record limit applies to.
    fn size(&self) -> usize {
        self.key().map_or(0, <[u8]>::len)
            + self.value().map_or(0, <[u8]>::len)
            + self
                .headers()
                .map(|(n, v)| n.len() + v.len())
                .sum::<usize>()
    }
}

impl Record for NewRecord<'_> {
    fn key(&self) -> Option<&[u8]> {
        self.key.as_deref()
    }

    fn value(&self) -> Option<&[u8]> {
        self.value.as_deref()
    }

    fn value_is_json(&self) -> bool {
        self.value_is_json
    }

    fn partition(&self) -> Option<u32> {
        self.partition
    }

    fn headers(&self) -> impl Iterator<Item = (&str, &[u8])> {
        self.headers.iter().map(|(n, v)| (n.as_ref(), v.as_ref()))
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

/// Target size of one encoded batch: a little under the storage's chunk size
/// (`weir_storage` keeps sled values under 7 KiB so sled never writes blob files), so
/// a batch fits a chunk and a chunk holds whole batches.
pub const TARGET_BATCH_BYTES: usize = 6 << 10;

/// A request's records, partitioned and encoded.
pub(crate) struct Encoded {
    /// The batches, those of one partition next to each other and in offset order.
    pub batches: Vec<(u32, EncodedBatch)>,
    /// Per record, in request order: its partition and its index among the request's
    /// records for that partition.
    pub placement: Vec<(u32, u32)>,
}

/// The batches one request fills for one partition.
struct PartitionBatches {
    partition: u32,
    done: Vec<EncodedBatch>,
    current: BatchBuilder,
    count: u32,
}

/// Partitions and encodes `records` into batches of about [`TARGET_BATCH_BYTES`].
/// `shared` headers are stored once per batch and read back on every record.
pub(crate) fn encode<R: Record>(
    topic: &Topic,
    records: &[R],
    shared: &[(&str, &[u8])],
    sticky: &Sticky,
    timestamp_ms: i64,
    max_record_bytes: usize,
) -> Result<Encoded> {
    let builder =
        |capacity: usize| BatchBuilder::with_shared_headers(capacity, shared.iter().copied());
    let partitions = topic.partition_count();
    let compacted = topic.config().cleanup_policy == CleanupPolicy::Compact;
    let mut keyless: Option<u32> = None;
    // Most requests touch one or a few partitions: a small vec beats a map.
    let mut parts: Vec<PartitionBatches> = Vec::new();
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
        if compacted && r.key().is_none() {
            return Err(BrokerError::InvalidRequest(format!(
                "record {index} has no key, but topic '{}' is compacted and needs one",
                topic.name()
            )));
        }
        let p = match (r.partition(), r.key()) {
            (Some(p), _) => {
                topic.partition(p)?;
                p
            }
            (None, Some(key)) => partition_for_key(key, partitions),
            (None, None) => *keyless.get_or_insert_with(|| sticky.next(partitions)),
        };
        let capacity = ((records.len() - index) * (size + 32)).min(TARGET_BATCH_BYTES + size + 64);
        let slot = match parts.iter().position(|b| b.partition == p) {
            Some(i) => i,
            None => {
                parts.push(PartitionBatches {
                    partition: p,
                    done: Vec::new(),
                    current: builder(capacity)?,
                    count: 0,
                });
                parts.len() - 1
            }
        };
        let part = &mut parts[slot];
        if part.current.encoded_len() >= TARGET_BATCH_BYTES {
            let full = std::mem::replace(&mut part.current, builder(capacity)?);
            part.done.push(full.finish());
        }
        placement.push((p, part.count));
        part.count += 1;
        part.current.push(
            timestamp_ms,
            if r.value_is_json() {
                ATTR_VALUE_JSON
            } else {
                0
            },
            r.key(),
            r.value(),
            r.headers(),
        )?;
    }
    let mut batches = Vec::with_capacity(parts.iter().map(|p| p.done.len() + 1).sum());
    for part in parts {
        let p = part.partition;
        batches.extend(part.done.into_iter().map(|b| (p, b)));
        batches.push((p, part.current.finish()));
    }
    Ok(Encoded { batches, placement })
}

/// Each record's position, from the partitions and base offsets of the batches a
/// request's records were encoded into (see [`Encoded`]): a request's batches for one
/// partition get consecutive offsets, so a record's offset is its partition's first
/// base plus its index.
pub(crate) fn positions(
    partitions: &[u32],
    bases: &[u64],
    placement: &[(u32, u32)],
) -> Vec<RecordPosition> {
    let mut first_base: Vec<(u32, u64)> = Vec::new();
    for (p, base) in partitions.iter().zip(bases) {
        if !first_base.iter().any(|(q, _)| q == p) {
            first_base.push((*p, *base));
        }
    }
    placement
        .iter()
        .map(|&(p, index)| RecordPosition {
            partition: p,
            offset: first_base
                .iter()
                .find(|(q, _)| *q == p)
                .map_or(0, |(_, b)| *b)
                + u64::from(index),
        })
        .collect()
}
