//! Building batches: records appended into a buffer, stamped with offsets and the CRC
//! when written.

use crate::error::{Result, StorageError};

use super::*;

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
