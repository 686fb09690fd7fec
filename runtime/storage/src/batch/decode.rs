//! Reading batches: every batch is CRC-checked and bounds-checked before a record
//! of it is handed out; damage is an error, never data.

use crate::error::{Result, StorageError};

use super::*;

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
