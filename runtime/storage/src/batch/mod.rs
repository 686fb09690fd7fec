//! The on-disk record batch format.
//!
//! A batch is the unit of atomicity, checksumming and storage: all records of one
//! produce request for one partition are encoded into one batch by the caller (off the
//! writer thread), and the writer only stamps the base offset and the CRC. Several
//! batches of the same partition written in one group-commit round are concatenated
//! into one sled value (a *chunk*) keyed by the first batch's base offset.
//!
//! Layout (little-endian, fixed-width for cheap decoding):
//!
//! ```text
//! batch header (40 bytes)
//!   0  u32 batch_len          whole batch, header included
//!   4  u32 crc32c             over bytes [8, batch_len): everything after this field
//!   8  u8  magic = 1
//!   9  u8  flags              bit 0: shared headers follow the header
//!   10 u16 reserved (0)
//!   12 u32 record_count
//!   16 u64 base_offset
//!   24 u32 last_offset_delta  offset of the last record that *was* in the batch
//!   28 i64 max_timestamp_ms
//!   36 u32 reserved (0)
//! shared headers (only with flag bit 0): headers every record of the batch carries,
//! stored once — for example the lineage a pipeline stamps on all its outputs
//!   u16 header_count, then headers as in a record
//! record
//!   u32 record_len            bytes after this field
//!   u32 offset_delta          offset = base_offset + offset_delta (gaps after compaction)
//!   i64 timestamp_ms
//!   u8  attributes            bit 0: the value is JSON text
//!   i32 key_len   (-1: null)  key bytes
//!   i32 value_len (-1: null)  value bytes (null value = tombstone)
//!   u16 header_count
//!     u16 name_len  name bytes (UTF-8)
//!     u32 value_len value bytes
//! ```
//!
//! `last_offset_delta` is kept even when compaction removes the last records, so the
//! log end offset is always derivable from the last batch, as in Kafka.

//!
//! [`encode`] builds batches ([`BatchBuilder`]); [`decode`] checks and reads them.

mod decode;
mod encode;
#[cfg(test)]
mod tests;

pub use decode::{
    Batch, BatchHeader, BatchIter, HeaderIter, RecordIter, RecordView, batches, peek_header,
};
pub use encode::BatchBuilder;

/// Size of the fixed batch header.
pub const BATCH_HEADER_LEN: usize = 40;
const MAGIC: u8 = 1;
/// Record attribute bit: the value bytes are JSON text.
pub const ATTR_VALUE_JSON: u8 = 1;
/// Batch flag bit: shared headers follow the batch header.
const FLAG_SHARED_HEADERS: u8 = 1;

/// A finished batch waiting for its base offset.
#[derive(Debug, Clone)]
pub struct EncodedBatch {
    buf: Vec<u8>,
}

impl EncodedBatch {
    /// Number of records in the batch.
    pub fn record_count(&self) -> u32 {
        u32::from_le_bytes(self.buf[12..16].try_into().unwrap_or_default())
    }

    /// How many offsets the batch occupies (`last_offset_delta + 1`).
    pub fn offset_span(&self) -> u64 {
        u64::from(u32::from_le_bytes(
            self.buf[24..28].try_into().unwrap_or_default(),
        )) + 1
    }

    /// Encoded size in bytes.
    pub fn len(&self) -> usize {
        self.buf.len()
    }

    /// Always false: a batch has at least its header.
    pub fn is_empty(&self) -> bool {
        false
    }

    /// Stamps `base_offset` and the CRC, and appends the batch to `out`.
    pub fn seal_into(&self, base_offset: u64, out: &mut Vec<u8>) {
        let at = out.len();
        out.extend_from_slice(&self.buf);
        let b = &mut out[at..];
        b[16..24].copy_from_slice(&base_offset.to_le_bytes());
        let crc = crc32c::crc32c(&b[8..]);
        b[4..8].copy_from_slice(&crc.to_le_bytes());
    }

    /// Stamps `base_offset` and the CRC in place and returns the bytes.
    pub fn seal(mut self, base_offset: u64) -> Vec<u8> {
        self.buf[16..24].copy_from_slice(&base_offset.to_le_bytes());
        let crc = crc32c::crc32c(&self.buf[8..]);
        self.buf[4..8].copy_from_slice(&crc.to_le_bytes());
        self.buf
    }
}
