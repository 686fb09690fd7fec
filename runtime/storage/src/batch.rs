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

use crate::error::{Result, StorageError};

/// Size of the fixed batch header.
pub const BATCH_HEADER_LEN: usize = 40;
const MAGIC: u8 = 1;
/// Record attribute bit: the value bytes are JSON text.
pub const ATTR_VALUE_JSON: u8 = 1;
/// Batch flag bit: shared headers follow the batch header.
const FLAG_SHARED_HEADERS: u8 = 1;

/// One record as read back from the log, borrowing from the stored chunk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecordView<'a> {
    /// Offset of the record in its partition.
    pub offset: u64,
    /// Producer- or broker-assigned timestamp, milliseconds since the Unix epoch.
    pub timestamp_ms: i64,
    /// Attribute bits, see [`ATTR_VALUE_JSON`].
    pub attributes: u8,
    /// Optional key.
    pub key: Option<&'a [u8]>,
    /// Value; `None` is a tombstone.
    pub value: Option<&'a [u8]>,
    headers: &'a [u8],
    header_count: u16,
    shared: SharedHeaders<'a>,
}

/// A batch's shared headers (validated when the batch was read).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct SharedHeaders<'a> {
    buf: &'a [u8],
    count: u16,
}

impl<'a> RecordView<'a> {
    /// Whether the value was published as JSON text.
    pub fn value_is_json(&self) -> bool {
        self.attributes & ATTR_VALUE_JSON != 0
    }

    /// The record's headers in publish order, as `(name, value)` pairs, then the
    /// headers its batch shares.
    pub fn headers(&self) -> HeaderIter<'a> {
        HeaderIter {
            buf: self.headers,
            remaining: self.header_count,
            then: self.shared,
        }
    }

    /// Number of headers.
    pub fn header_count(&self) -> usize {
        self.header_count as usize + self.shared.count as usize
    }
}

/// Iterator over a record's headers. The bytes were validated when the batch was read.
#[derive(Debug, Clone)]
pub struct HeaderIter<'a> {
    buf: &'a [u8],
    remaining: u16,
    /// The batch's shared headers, read after the record's own.
    then: SharedHeaders<'a>,
}

impl<'a> Iterator for HeaderIter<'a> {
    type Item = (&'a str, &'a [u8]);

    fn next(&mut self) -> Option<Self::Item> {
        if self.remaining == 0 {
            let shared = std::mem::take(&mut self.then);
            if shared.count == 0 {
                return None;
            }
            self.buf = shared.buf;
            self.remaining = shared.count;
        }
        self.remaining -= 1;
        let mut cur = Cursor::new(self.buf);
        // Validated in `decode_record`; a failure here would be a bug, so end quietly.
        let name_len = cur.u16().ok()? as usize;
        let name = std::str::from_utf8(cur.take(name_len).ok()?).ok()?;
        let value_len = cur.u32().ok()? as usize;
        let value = cur.take(value_len).ok()?;
        self.buf = cur.rest();
        Some((name, value))
    }
}

/// Encodes records into one batch. The base offset and CRC are stamped later by
/// [`seal`], on the writer thread, once the offset is known.
#[derive(Debug, Clone)]
pub struct BatchBuilder {
    buf: Vec<u8>,
    flags: u8,
    count: u32,
    last_delta: u32,
    max_timestamp: i64,
}

impl Default for BatchBuilder {
    fn default() -> Self {
        Self::with_capacity(0)
    }
}

impl BatchBuilder {
    /// A builder whose buffer can hold `bytes` of records without growing.
    pub fn with_capacity(bytes: usize) -> Self {
        let mut buf = Vec::with_capacity(BATCH_HEADER_LEN + bytes);
        buf.resize(BATCH_HEADER_LEN, 0);
        Self {
            buf,
            flags: 0,
            count: 0,
            last_delta: 0,
            max_timestamp: i64::MIN,
        }
    }

    /// A builder whose records all carry `headers` after their own, stored once.
    pub fn with_shared_headers<'h>(
        bytes: usize,
        headers: impl IntoIterator<Item = (&'h str, &'h [u8])>,
    ) -> Result<Self> {
        let mut b = Self::with_capacity(bytes + 64);
        let count = put_headers(&mut b.buf, headers)?;
        if count == 0 {
            b.buf.truncate(BATCH_HEADER_LEN);
        } else {
            b.flags |= FLAG_SHARED_HEADERS;
        }
        Ok(b)
    }

    /// Number of records pushed so far.
    pub fn len(&self) -> u32 {
        self.count
    }

    /// Whether no record was pushed.
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// Encoded size so far, header included.
    pub fn encoded_len(&self) -> usize {
        self.buf.len()
    }

    /// Appends a record with the next offset delta.
    pub fn push<'h>(
        &mut self,
        timestamp_ms: i64,
        attributes: u8,
        key: Option<&[u8]>,
        value: Option<&[u8]>,
        headers: impl IntoIterator<Item = (&'h str, &'h [u8])>,
    ) -> Result<()> {
        let delta = if self.count == 0 {
            0
        } else {
            self.last_delta + 1
        };
        self.push_with_delta(delta, timestamp_ms, attributes, key, value, headers)
    }

    /// Appends a record with an explicit offset delta (compaction keeps the originals).
    pub fn push_with_delta<'h>(
        &mut self,
        offset_delta: u32,
        timestamp_ms: i64,
        attributes: u8,
        key: Option<&[u8]>,
        value: Option<&[u8]>,
        headers: impl IntoIterator<Item = (&'h str, &'h [u8])>,
    ) -> Result<()> {
        let start = self.buf.len();
        self.buf.extend_from_slice(&[0; 4]); // record_len, patched below
        self.buf.extend_from_slice(&offset_delta.to_le_bytes());
        self.buf.extend_from_slice(&timestamp_ms.to_le_bytes());
        self.buf.push(attributes);
        let body = put_opt_bytes(&mut self.buf, key)
            .and_then(|()| put_opt_bytes(&mut self.buf, value))
            .and_then(|()| put_headers(&mut self.buf, headers))
            .and_then(|_header_count| {
                u32::try_from(self.buf.len() - start - 4)
                    .map_err(|_| StorageError::InvalidRecord("record over 4 GiB".into()))
            });
        let record_len = match body {
            Ok(len) => len,
            Err(e) => {
                // A refused record leaves no trace: the builder stays usable.
                self.buf.truncate(start);
                return Err(e);
            }
        };
        self.buf[start..start + 4].copy_from_slice(&record_len.to_le_bytes());
        self.count += 1;
        self.last_delta = offset_delta;
        self.max_timestamp = self.max_timestamp.max(timestamp_ms);
        Ok(())
    }

    /// Finishes the batch with a zero base offset; [`seal`] stamps the real one.
    pub fn finish(self) -> EncodedBatch {
        let last = self.last_delta;
        self.finish_with_last_delta(last)
    }

    /// Finishes the batch keeping `last_offset_delta` (records after the last kept one
    /// may have been compacted away).
    pub fn finish_with_last_delta(mut self, last_offset_delta: u32) -> EncodedBatch {
        let len = self.buf.len() as u32;
        let h = &mut self.buf[..BATCH_HEADER_LEN];
        h[0..4].copy_from_slice(&len.to_le_bytes());
        h[8] = MAGIC;
        h[9] = self.flags;
        h[12..16].copy_from_slice(&self.count.to_le_bytes());
        h[24..28].copy_from_slice(&last_offset_delta.to_le_bytes());
        let max_ts = if self.count == 0 {
            0
        } else {
            self.max_timestamp
        };
        h[28..36].copy_from_slice(&max_ts.to_le_bytes());
        EncodedBatch { buf: self.buf }
    }
}

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

/// The decoded header of one stored batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchHeader {
    /// Total encoded length.
    pub len: usize,
    /// Records stored.
    pub record_count: u32,
    /// Offset of the first record slot.
    pub base_offset: u64,
    /// `base_offset + last_offset_delta` is the last offset the batch covers.
    pub last_offset_delta: u32,
    /// Largest record timestamp (0 for an empty batch).
    pub max_timestamp_ms: i64,
}

impl BatchHeader {
    /// One past the last offset the batch covers.
    pub fn end_offset(&self) -> u64 {
        self.base_offset + u64::from(self.last_offset_delta) + 1
    }
}

/// One verified batch inside a chunk.
#[derive(Debug, Clone, Copy)]
pub struct Batch<'a> {
    shared: SharedHeaders<'a>,
    /// Its header.
    pub header: BatchHeader,
    records: &'a [u8],
}

impl<'a> Batch<'a> {
    /// Iterates the batch's records. The batch passed its CRC, so decoding errors mean
    /// a bug or a format mismatch; they are reported, never skipped.
    pub fn records(&self) -> RecordIter<'a> {
        RecordIter {
            buf: self.records,
            base: self.header.base_offset,
            remaining: self.header.record_count,
            shared: self.shared,
        }
    }
}

/// Iterator over the records of a verified batch.
#[derive(Debug, Clone)]
pub struct RecordIter<'a> {
    buf: &'a [u8],
    base: u64,
    remaining: u32,
    shared: SharedHeaders<'a>,
}

impl<'a> Iterator for RecordIter<'a> {
    type Item = Result<RecordView<'a>>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.remaining == 0 {
            return None;
        }
        self.remaining -= 1;
        match decode_record(self.buf, self.base, self.shared) {
            Ok((record, rest)) => {
                self.buf = rest;
                Some(Ok(record))
            }
            Err(e) => {
                self.remaining = 0;
                Some(Err(e))
            }
        }
    }
}

/// Reads just the header of the batch at the start of `buf`, without checking the CRC.
pub fn peek_header(buf: &[u8]) -> Result<BatchHeader> {
    if buf.len() < BATCH_HEADER_LEN {
        return Err(StorageError::corrupt("truncated batch header"));
    }
    let len = le_u32(buf, 0) as usize;
    if buf[8] != MAGIC {
        return Err(StorageError::corrupt(format!(
            "unknown batch magic {}",
            buf[8]
        )));
    }
    if buf[9] & !FLAG_SHARED_HEADERS != 0 {
        return Err(StorageError::corrupt(format!(
            "unknown batch flags {:#04x}",
            buf[9]
        )));
    }
    if len < BATCH_HEADER_LEN || len > buf.len() {
        return Err(StorageError::corrupt(format!(
            "batch length {len} outside the {} bytes stored",
            buf.len()
        )));
    }
    Ok(BatchHeader {
        len,
        record_count: le_u32(buf, 12),
        base_offset: le_u64(buf, 16),
        last_offset_delta: le_u32(buf, 24),
        max_timestamp_ms: le_u64(buf, 28) as i64,
    })
}

/// Iterates the batches of a stored chunk, verifying each one's CRC.
pub fn batches(chunk: &[u8]) -> BatchIter<'_> {
    BatchIter { buf: chunk }
}

/// Iterator over the CRC-verified batches of a chunk.
#[derive(Debug, Clone)]
pub struct BatchIter<'a> {
    buf: &'a [u8],
}

impl<'a> Iterator for BatchIter<'a> {
    type Item = Result<Batch<'a>>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.buf.is_empty() {
            return None;
        }
        let result = verify_batch(self.buf);
        match result {
            Ok((batch, rest)) => {
                self.buf = rest;
                Some(Ok(batch))
            }
            Err(e) => {
                self.buf = &[];
                Some(Err(e))
            }
        }
    }
}

fn verify_batch(buf: &[u8]) -> Result<(Batch<'_>, &[u8])> {
    let header = peek_header(buf)?;
    let stored = le_u32(buf, 4);
    let actual = crc32c::crc32c(&buf[8..header.len]);
    if stored != actual {
        return Err(StorageError::corrupt(format!(
            "CRC mismatch in batch at offset {} (stored {stored:#010x}, computed {actual:#010x})",
            header.base_offset
        )));
    }
    let mut body = &buf[BATCH_HEADER_LEN..header.len];
    let mut shared = SharedHeaders::default();
    if buf[9] & FLAG_SHARED_HEADERS != 0 {
        let mut cur = Cursor::new(body);
        let count = cur.u16()?;
        let rest = cur.rest();
        let used = validate_headers(rest, count)?;
        shared = SharedHeaders {
            buf: &rest[..used],
            count,
        };
        body = &rest[used..];
    }
    let batch = Batch {
        shared,
        header,
        records: body,
    };
    Ok((batch, &buf[header.len..]))
}

fn decode_record<'a>(
    buf: &'a [u8],
    base: u64,
    shared: SharedHeaders<'a>,
) -> Result<(RecordView<'a>, &'a [u8])> {
    let mut outer = Cursor::new(buf);
    let len = outer.u32()? as usize;
    let body = outer.take(len)?;
    let rest = outer.rest();
    let mut cur = Cursor::new(body);
    let delta = cur.u32()?;
    let timestamp_ms = cur.u64()? as i64;
    let attributes = cur.u8()?;
    let key = cur.opt_bytes()?;
    let value = cur.opt_bytes()?;
    let header_count = cur.u16()?;
    let headers = cur.rest();
    validate_headers(headers, header_count)?;
    let record = RecordView {
        offset: base + u64::from(delta),
        timestamp_ms,
        attributes,
        key,
        value,
        headers,
        header_count,
        shared,
    };
    Ok((record, rest))
}

/// Checks the framing of `count` headers at the start of `buf` once, so HeaderIter can
/// be infallible; returns the bytes they take.
fn validate_headers(buf: &[u8], count: u16) -> Result<usize> {
    let mut hc = Cursor::new(buf);
    for _ in 0..count {
        let n = hc.u16()? as usize;
        std::str::from_utf8(hc.take(n)?)
            .map_err(|_| StorageError::corrupt("header name is not UTF-8"))?;
        let v = hc.u32()? as usize;
        hc.take(v)?;
    }
    Ok(buf.len() - hc.rest().len())
}

/// Writes `u16 count` and the headers; returns the count.
fn put_headers<'h>(
    buf: &mut Vec<u8>,
    headers: impl IntoIterator<Item = (&'h str, &'h [u8])>,
) -> Result<u16> {
    let count_at = buf.len();
    buf.extend_from_slice(&[0; 2]);
    let mut count: u16 = 0;
    for (name, value) in headers {
        count = count
            .checked_add(1)
            .ok_or_else(|| StorageError::InvalidRecord("more than 65535 headers".into()))?;
        let name_len = u16::try_from(name.len())
            .map_err(|_| StorageError::InvalidRecord("header name over 64 KiB".into()))?;
        buf.extend_from_slice(&name_len.to_le_bytes());
        buf.extend_from_slice(name.as_bytes());
        let value_len = u32::try_from(value.len())
            .map_err(|_| StorageError::InvalidRecord("header value over 4 GiB".into()))?;
        buf.extend_from_slice(&value_len.to_le_bytes());
        buf.extend_from_slice(value);
    }
    buf[count_at..count_at + 2].copy_from_slice(&count.to_le_bytes());
    Ok(count)
}

fn put_opt_bytes(buf: &mut Vec<u8>, bytes: Option<&[u8]>) -> Result<()> {
    match bytes {
        None => buf.extend_from_slice(&(-1i32).to_le_bytes()),
        Some(b) => {
            let len = i32::try_from(b.len())
                .map_err(|_| StorageError::InvalidRecord("field over 2 GiB".into()))?;
            buf.extend_from_slice(&len.to_le_bytes());
            buf.extend_from_slice(b);
        }
    }
    Ok(())
}

fn le_u32(buf: &[u8], at: usize) -> u32 {
    let mut b = [0; 4];
    b.copy_from_slice(&buf[at..at + 4]);
    u32::from_le_bytes(b)
}

fn le_u64(buf: &[u8], at: usize) -> u64 {
    let mut b = [0; 8];
    b.copy_from_slice(&buf[at..at + 8]);
    u64::from_le_bytes(b)
}

/// Bounds-checked reader; every overrun is a corruption error.
struct Cursor<'a> {
    buf: &'a [u8],
}

impl<'a> Cursor<'a> {
    fn new(buf: &'a [u8]) -> Self {
        Self { buf }
    }
    fn take(&mut self, n: usize) -> Result<&'a [u8]> {
        if n > self.buf.len() {
            return Err(StorageError::corrupt("record field runs past its batch"));
        }
        let (head, tail) = self.buf.split_at(n);
        self.buf = tail;
        Ok(head)
    }
    fn rest(&self) -> &'a [u8] {
        self.buf
    }
    fn u8(&mut self) -> Result<u8> {
        Ok(self.take(1)?[0])
    }
    fn u16(&mut self) -> Result<u16> {
        let b = self.take(2)?;
        Ok(u16::from_le_bytes([b[0], b[1]]))
    }
    fn u32(&mut self) -> Result<u32> {
        Ok(le_u32(self.take(4)?, 0))
    }
    fn u64(&mut self) -> Result<u64> {
        Ok(le_u64(self.take(8)?, 0))
    }
    fn opt_bytes(&mut self) -> Result<Option<&'a [u8]>> {
        let len = self.u32()? as i32;
        if len < 0 {
            if len != -1 {
                return Err(StorageError::corrupt("negative field length"));
            }
            return Ok(None);
        }
        Ok(Some(self.take(len as usize)?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(n: usize) -> EncodedBatch {
        let mut b = BatchBuilder::default();
        for i in 0..n {
            let key = format!("k{i}");
            let value = format!("v{i}");
            b.push(
                1000 + i as i64,
                ATTR_VALUE_JSON,
                Some(key.as_bytes()),
                if i == 1 { None } else { Some(value.as_bytes()) },
                [("h", b"x".as_slice()), ("trace", b"abc".as_slice())],
            )
            .unwrap();
        }
        b.finish()
    }

    #[test]
    fn shared_headers_follow_each_records_own() {
        let mut b = BatchBuilder::with_shared_headers(0, [("weir-lineage", b"f@1,t@2".as_slice())])
            .unwrap();
        b.push(1, 0, None, Some(b"a"), [("own", b"1".as_slice())])
            .unwrap();
        b.push(2, 0, None, Some(b"b"), []).unwrap();
        let sealed = b.finish().seal(0);
        let batch = batches(&sealed).next().unwrap().unwrap();
        let recs: Vec<_> = batch.records().collect::<Result<_>>().unwrap();
        let h0: Vec<_> = recs[0].headers().collect();
        assert_eq!(h0, [("own", &b"1"[..]), ("weir-lineage", &b"f@1,t@2"[..])]);
        assert_eq!(recs[0].header_count(), 2);
        let h1: Vec<_> = recs[1].headers().collect();
        assert_eq!(h1, [("weir-lineage", &b"f@1,t@2"[..])]);
        // No shared headers given: the plain format.
        let plain = BatchBuilder::with_shared_headers(0, []).unwrap().finish();
        assert_eq!(plain.len(), BATCH_HEADER_LEN);
        // Unknown flag bits are corruption, not silently ignored.
        let mut bad = sealed.clone();
        bad[9] = 0x80;
        let crc = crc32c::crc32c(&bad[8..]);
        bad[4..8].copy_from_slice(&crc.to_le_bytes());
        assert!(batches(&bad).next().unwrap().is_err());
    }

    #[test]
    fn round_trip() {
        let sealed = sample(3).seal(42);
        let batches: Vec<_> = batches(&sealed).collect::<Result<_>>().unwrap();
        assert_eq!(batches.len(), 1);
        let h = batches[0].header;
        assert_eq!((h.base_offset, h.record_count, h.end_offset()), (42, 3, 45));
        assert_eq!(h.max_timestamp_ms, 1002);
        let recs: Vec<_> = batches[0].records().collect::<Result<_>>().unwrap();
        assert_eq!(recs[0].offset, 42);
        assert_eq!(recs[2].offset, 44);
        assert_eq!(recs[1].value, None);
        assert_eq!(recs[2].key, Some(&b"k2"[..]));
        assert!(recs[0].value_is_json());
        let headers: Vec<_> = recs[0].headers().collect();
        assert_eq!(headers, vec![("h", &b"x"[..]), ("trace", &b"abc"[..])]);
    }

    #[test]
    fn concatenated_batches_form_a_chunk() {
        let mut chunk = Vec::new();
        sample(2).seal_into(0, &mut chunk);
        sample(5).seal_into(2, &mut chunk);
        let headers: Vec<_> = batches(&chunk).map(|b| b.unwrap().header).collect();
        assert_eq!(headers[1].base_offset, 2);
        assert_eq!(headers[1].end_offset(), 7);
    }

    #[test]
    fn every_flipped_bit_is_detected() {
        let sealed = sample(2).seal(7);
        for byte in 0..sealed.len() {
            for bit in 0..8 {
                let mut damaged = sealed.clone();
                damaged[byte] ^= 1 << bit;
                let ok = batches(&damaged).all(|b| b.is_ok());
                assert!(!ok, "flip at byte {byte} bit {bit} went unnoticed");
            }
        }
    }

    #[test]
    fn truncation_is_detected() {
        let sealed = sample(2).seal(7);
        for cut in 1..sealed.len() {
            assert!(
                batches(&sealed[..cut]).any(|b| b.is_err()),
                "cut at {cut} went unnoticed"
            );
        }
    }
}
