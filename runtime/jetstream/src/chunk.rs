//! Record offsets in cluster mode, and the message payload that carries a partition's
//! batches.
//!
//! One JetStream message holds one or more of the broker's sealed batches for one
//! partition (a *chunk*, as in the embedded store), sealed as if the message started
//! at offset 0. A record's offset is `stream sequence << 16 | position in the chunk`:
//! it grows with the stream, so offsets of a partition increase but have gaps (the
//! other partitions' messages), which every reader already handles (compaction makes
//! gaps too). Readers get the batches re-sealed with their real offsets.

use weir_storage::batch::{self, BATCH_HEADER_LEN};
use weir_storage::{EncodedBatch, StorageError};

/// Bits of an offset that number records within one message.
pub(crate) const SHIFT: u32 = 16;
/// Most offsets one message may span.
pub(crate) const MAX_SPAN: u64 = 1 << SHIFT;

/// The first offset of the message with sequence `seq`.
pub(crate) fn base_of(seq: u64) -> u64 {
    seq << SHIFT
}

/// The message sequence an offset falls in.
#[cfg(test)]
pub(crate) fn seq_of(offset: u64) -> u64 {
    offset >> SHIFT
}

/// A chunk being built: the batches' bytes sealed relative to the message start.
#[derive(Debug, Default)]
pub(crate) struct Chunk {
    pub(crate) bytes: Vec<u8>,
    /// Offsets the chunk spans so far.
    pub(crate) span: u64,
    /// Records in it.
    pub(crate) records: u64,
}

impl Chunk {
    /// Whether `batch` still fits under `max_bytes` and the offset span.
    pub(crate) fn fits(&self, batch: &EncodedBatch, max_bytes: usize) -> bool {
        self.bytes.is_empty()
            || (self.bytes.len() + batch.len() <= max_bytes
                && self.span + batch.offset_span() <= MAX_SPAN)
    }

    /// Adds `batch`; returns its offset relative to the message start.
    pub(crate) fn push(&mut self, batch: &EncodedBatch) -> Result<u64, StorageError> {
        let at = self.span;
        if at + batch.offset_span() > MAX_SPAN {
            return Err(StorageError::InvalidRecord(format!(
                "a batch of {} records is more than one cluster message can number ({MAX_SPAN})",
                batch.record_count()
            )));
        }
        batch.seal_into(at, &mut self.bytes);
        self.span += batch.offset_span();
        self.records += u64::from(batch.record_count());
        Ok(at)
    }
}

/// The chunk stored in message `seq`, CRC-checked as stored and re-sealed with its
/// real offsets.
pub(crate) fn rebase(payload: &[u8], seq: u64) -> Result<Vec<u8>, StorageError> {
    let base = base_of(seq);
    let mut out = payload.to_vec();
    let mut at = 0;
    for b in batch::batches(payload) {
        let b = b.map_err(|e| StorageError::corrupt(format!("message {seq}: {e}")))?;
        let len = b.header.len;
        let real = base + b.header.base_offset;
        let sealed = &mut out[at..at + len];
        sealed[16..24].copy_from_slice(&real.to_le_bytes());
        let crc = crc32c::crc32c(&sealed[8..]);
        sealed[4..8].copy_from_slice(&crc.to_le_bytes());
        at += len;
    }
    if at != payload.len() || at < BATCH_HEADER_LEN {
        return Err(StorageError::corrupt(format!(
            "message {seq}: {} bytes that are not whole batches",
            payload.len()
        )));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use weir_storage::BatchBuilder;

    fn batch(values: &[&str]) -> EncodedBatch {
        let mut b = BatchBuilder::default();
        for v in values {
            b.push(5, 0, None, Some(v.as_bytes()), std::iter::empty())
                .unwrap();
        }
        b.finish()
    }

    #[test]
    fn a_chunk_reads_back_at_its_real_offsets() {
        let mut c = Chunk::default();
        assert_eq!(c.push(&batch(&["a", "b"])).unwrap(), 0);
        assert_eq!(c.push(&batch(&["c"])).unwrap(), 2);
        assert_eq!((c.span, c.records), (3, 3));
        let real = rebase(&c.bytes, 9).unwrap();
        let offsets: Vec<(u64, String)> = batch::batches(&real)
            .flat_map(|b| b.unwrap().records().map(|r| r.unwrap()))
            .map(|r| {
                (
                    r.offset,
                    String::from_utf8(r.value.unwrap().to_vec()).unwrap(),
                )
            })
            .collect();
        let base = base_of(9);
        assert_eq!(
            offsets,
            [
                (base, "a".to_string()),
                (base + 1, "b".to_string()),
                (base + 2, "c".to_string())
            ]
        );
        assert_eq!(seq_of(base + 2), 9);
        let mut bad = c.bytes.clone();
        *bad.last_mut().unwrap() ^= 1;
        assert!(rebase(&bad, 9).is_err());
        assert!(rebase(&c.bytes[..c.bytes.len() - 1], 9).is_err());
    }
}
