//! Kafka record batches (magic v2; gzip, snappy, lz4, zstd) to Weir records and
//! back. Keys, values and headers map one to one (a header without a value becomes
//! an empty one); a value that is JSON text is marked so (HTTP readers get it as
//! JSON, as if it had been published over HTTP). Timestamps are Weir's: the time a
//! record was stored (Kafka's `LogAppendTime`).

use std::borrow::Cow;

use bytes::{Bytes, BytesMut};
use indexmap::IndexMap;
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::records::{
    Compression, Record, RecordBatchDecoder, RecordBatchEncoder, RecordEncodeOptions, TimestampType,
};
use weir_broker::{NewRecord, ReadResult};

/// The records of a produce request's partition, owned by the decoded batches.
pub(crate) struct Decoded {
    records: Vec<Record>,
    /// Bytes the batches decompressed to.
    pub(crate) expanded: usize,
}

/// Why a partition's records were refused.
#[derive(Debug)]
pub(crate) enum Refused {
    /// Not decodable as magic v2 batches (CRC, compression, framing).
    Corrupt(String),
    /// Transactional or control batches: Weir has no transactions.
    Transactional,
}

impl Decoded {
    /// Decodes every batch in `bytes`, decompressing to at most `limit` bytes in all.
    pub(crate) fn decode(mut bytes: Bytes, limit: usize) -> Result<Decoded, Refused> {
        let mut records = Vec::new();
        let left = std::cell::Cell::new(limit);
        let decompress = |b: &mut Bytes, c: Compression| {
            let out = crate::decompress::bounded(b, c, left.get())?;
            left.set(left.get().saturating_sub(out.len()));
            Ok(out)
        };
        while !bytes.is_empty() {
            let set =
                RecordBatchDecoder::decode_with_custom_compression(&mut bytes, Some(&decompress))
                    .map_err(|e| Refused::Corrupt(format!("{e:#}")))?;
            if set.version != 2 {
                return Err(Refused::Corrupt(format!(
                    "record batch magic v{} (only v2 is accepted)",
                    set.version
                )));
            }
            for r in set.records {
                if r.transactional || r.control {
                    return Err(Refused::Transactional);
                }
                records.push(r);
            }
        }
        Ok(Decoded {
            records,
            expanded: limit - left.get(),
        })
    }

    /// The idempotent producer that sent the records, if one did: its id, epoch,
    /// the first record's sequence and how many records follow it. `Err` when the
    /// records do not form one run of one producer (Kafka sends one batch per
    /// partition and request).
    pub(crate) fn producer(&self) -> Result<Option<(i64, i16, i32, usize)>, String> {
        let Some(first) = self.records.first().filter(|r| r.producer_id >= 0) else {
            return Ok(None);
        };
        if first.sequence < 0 {
            return Err("an idempotent producer's batch has no base sequence".into());
        }
        // Sequences wrap to 0 after i32::MAX (the decoder's sums wrap negative).
        let wrap = |s: i64| s.rem_euclid(1 << 31);
        let contiguous = self.records.iter().enumerate().all(|(i, r)| {
            r.producer_id == first.producer_id
                && r.producer_epoch == first.producer_epoch
                && wrap(i64::from(r.sequence)) == wrap(i64::from(first.sequence) + i as i64)
        });
        if !contiguous {
            return Err(
                "an idempotent produce must carry one batch of one producer per partition".into(),
            );
        }
        Ok(Some((
            first.producer_id,
            first.producer_epoch,
            first.sequence,
            self.records.len(),
        )))
    }

    /// The records as Weir records for `partition`.
    pub(crate) fn new_records(&self, partition: u32) -> Vec<NewRecord<'_>> {
        self.records
            .iter()
            .map(|r| NewRecord {
                key: r.key.as_deref().map(Cow::Borrowed),
                value: r.value.as_deref().map(Cow::Borrowed),
                value_is_json: r.value.as_deref().is_some_and(is_json),
                headers: r
                    .headers
                    .iter()
                    .map(|(name, value)| {
                        (
                            Cow::Borrowed(name.as_str()),
                            Cow::Borrowed(value.as_deref().unwrap_or_default()),
                        )
                    })
                    .collect(),
                partition: Some(partition),
            })
            .collect()
    }
}

/// Whether `value` is JSON text (as an HTTP client would have sent it).
fn is_json(value: &[u8]) -> bool {
    matches!(value.first(), Some(b'{' | b'[' | b'"'))
        && serde_json::from_slice::<serde::de::IgnoredAny>(value).is_ok()
}

/// The records of a read as one uncompressed magic v2 batch.
pub(crate) fn encode(read: &ReadResult) -> Result<Bytes, String> {
    let records: Vec<Record> = read
        .records()
        .map(|r| Record {
            transactional: false,
            control: false,
            delete_horizon: false,
            partition_leader_epoch: 0,
            producer_id: -1,
            producer_epoch: -1,
            timestamp_type: TimestampType::LogAppend,
            offset: r.offset as i64,
            // One batch for the whole read: the encoder starts a new batch wherever
            // offset minus sequence changes.
            sequence: r.offset as i32,
            timestamp: r.timestamp_ms,
            key: r.key.map(Bytes::copy_from_slice),
            value: r.value.map(Bytes::copy_from_slice),
            headers: r
                .headers()
                .map(|(n, v)| {
                    (
                        StrBytes::from_string(n.to_string()),
                        Some(Bytes::copy_from_slice(v)),
                    )
                })
                .collect::<IndexMap<_, _>>(),
        })
        .collect();
    let mut out = BytesMut::new();
    if records.is_empty() {
        return Ok(out.freeze());
    }
    let options = RecordEncodeOptions {
        version: 2,
        compression: Compression::None,
    };
    RecordBatchEncoder::encode(&mut out, &records, &options).map_err(|e| e.to_string())?;
    Ok(out.freeze())
}
