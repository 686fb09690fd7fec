//! The packed event format that crosses the host/guest boundary, one buffer per batch.
//!
//! `u32 count`, then per event (little-endian): `i64 timestamp_ms`, `u8 flags` (bit 0:
//! the value is JSON text), `i32 key_len` (-1: none) + key, `i32 value_len` (-1: none) +
//! value, `u16 header_count`, then per header `u16 name_len` + name + `u32 len` + bytes.
//! Decoding borrows from the buffer: no copy per event.

/// Flag bit: the value is JSON text.
pub const FLAG_VALUE_JSON: u8 = 1;

/// One event, borrowing from a packed batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Event<'a> {
    /// Milliseconds since the Unix epoch.
    pub timestamp_ms: i64,
    /// Flag bits, see [`FLAG_VALUE_JSON`].
    pub flags: u8,
    /// The key, if any.
    pub key: Option<&'a [u8]>,
    /// The value; `None` is a tombstone.
    pub value: Option<&'a [u8]>,
    headers: &'a [u8],
    header_count: u16,
}

impl<'a> Event<'a> {
    /// Headers in order as `(name, value)`.
    pub fn headers(&self) -> Headers<'a> {
        Headers {
            buf: self.headers,
            remaining: self.header_count,
        }
    }

    /// The first header called `name`.
    pub fn header(&self, name: &str) -> Option<&'a [u8]> {
        self.headers().find(|(n, _)| *n == name).map(|(_, v)| v)
    }

    /// Whether the value was published as JSON.
    pub fn value_is_json(&self) -> bool {
        self.flags & FLAG_VALUE_JSON != 0
    }

    /// The value as UTF-8 text, if it is.
    pub fn value_str(&self) -> Option<&'a str> {
        self.value.and_then(|v| std::str::from_utf8(v).ok())
    }

    /// The key as UTF-8 text, if it is.
    pub fn key_str(&self) -> Option<&'a str> {
        self.key.and_then(|v| std::str::from_utf8(v).ok())
    }

    /// Number of headers.
    pub fn header_count(&self) -> usize {
        self.header_count as usize
    }
}

/// Iterator over an event's headers.
#[derive(Debug, Clone)]
pub struct Headers<'a> {
    buf: &'a [u8],
    remaining: u16,
}

impl<'a> Iterator for Headers<'a> {
    type Item = (&'a str, &'a [u8]);

    fn next(&mut self) -> Option<Self::Item> {
        if self.remaining == 0 {
            return None;
        }
        self.remaining -= 1;
        let mut r = Reader { buf: self.buf };
        let n = r.u16().ok()? as usize;
        let name = std::str::from_utf8(r.take(n).ok()?).ok()?;
        let v = r.u32().ok()? as usize;
        let value = r.take(v).ok()?;
        self.buf = r.buf;
        Some((name, value))
    }
}

/// A malformed packed buffer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DecodeError(pub &'static str);

impl std::fmt::Display for DecodeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "malformed packed events: {}", self.0)
    }
}

impl std::error::Error for DecodeError {}

/// Decodes a packed batch. Every event is validated up front, so iteration after a
/// successful decode cannot fail.
pub fn decode(buf: &[u8]) -> Result<Vec<Event<'_>>, DecodeError> {
    let mut r = Reader { buf };
    let count = r.u32()? as usize;
    // A count larger than the buffer could hold is malformed; do not trust it for
    // the allocation.
    let mut out = Vec::with_capacity(count.min(buf.len() / 15 + 1));
    for _ in 0..count {
        out.push(r.event()?);
    }
    if !r.buf.is_empty() {
        return Err(DecodeError("trailing bytes after the last event"));
    }
    Ok(out)
}

/// Checks a packed batch as [`decode`] does and returns how many events it holds,
/// without collecting them: for a host that only needs to know the batch is sound.
pub fn validate(buf: &[u8]) -> Result<usize, DecodeError> {
    let mut r = Reader { buf };
    let count = r.u32()? as usize;
    for _ in 0..count {
        r.event()?;
    }
    if !r.buf.is_empty() {
        return Err(DecodeError("trailing bytes after the last event"));
    }
    Ok(count)
}

/// Builds a packed batch.
#[derive(Debug, Clone)]
pub struct Writer {
    buf: Vec<u8>,
    count: u32,
}

impl Default for Writer {
    fn default() -> Self {
        Self::with_capacity(0)
    }
}

impl Writer {
    /// A writer with room for `bytes` of events.
    pub fn with_capacity(bytes: usize) -> Self {
        let mut buf = Vec::with_capacity(bytes + 4);
        buf.extend_from_slice(&[0; 4]);
        Writer { buf, count: 0 }
    }

    /// Appends one event.
    pub fn push<'h>(
        &mut self,
        timestamp_ms: i64,
        flags: u8,
        key: Option<&[u8]>,
        value: Option<&[u8]>,
        headers: impl IntoIterator<Item = (&'h str, &'h [u8])>,
    ) {
        self.buf.extend_from_slice(&timestamp_ms.to_le_bytes());
        self.buf.push(flags);
        put_opt(&mut self.buf, key);
        put_opt(&mut self.buf, value);
        let at = self.buf.len();
        self.buf.extend_from_slice(&[0; 2]);
        let mut n: u16 = 0;
        for (name, v) in headers {
            self.buf
                .extend_from_slice(&(name.len() as u16).to_le_bytes());
            self.buf.extend_from_slice(name.as_bytes());
            self.buf.extend_from_slice(&(v.len() as u32).to_le_bytes());
            self.buf.extend_from_slice(v);
            n += 1;
        }
        self.buf[at..at + 2].copy_from_slice(&n.to_le_bytes());
        self.count += 1;
    }

    /// Appends a decoded event unchanged.
    pub fn push_event(&mut self, e: &Event<'_>) {
        self.push(e.timestamp_ms, e.flags, e.key, e.value, e.headers());
    }

    /// Number of events written.
    pub fn len(&self) -> usize {
        self.count as usize
    }

    /// Whether nothing was written.
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// The finished buffer.
    pub fn finish(mut self) -> Vec<u8> {
        self.buf[0..4].copy_from_slice(&self.count.to_le_bytes());
        self.buf
    }
}

fn put_opt(buf: &mut Vec<u8>, v: Option<&[u8]>) {
    match v {
        None => buf.extend_from_slice(&(-1i32).to_le_bytes()),
        Some(b) => {
            buf.extend_from_slice(&(b.len() as i32).to_le_bytes());
            buf.extend_from_slice(b);
        }
    }
}

struct Reader<'a> {
    buf: &'a [u8],
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], DecodeError> {
        if n > self.buf.len() {
            return Err(DecodeError("a field runs past the end"));
        }
        let (h, t) = self.buf.split_at(n);
        self.buf = t;
        Ok(h)
    }
    fn u16(&mut self) -> Result<u16, DecodeError> {
        let b = self.take(2)?;
        Ok(u16::from_le_bytes([b[0], b[1]]))
    }
    fn u32(&mut self) -> Result<u32, DecodeError> {
        let b = self.take(4)?;
        Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }
    fn i64(&mut self) -> Result<i64, DecodeError> {
        let b = self.take(8)?;
        let mut a = [0; 8];
        a.copy_from_slice(b);
        Ok(i64::from_le_bytes(a))
    }
    fn opt(&mut self) -> Result<Option<&'a [u8]>, DecodeError> {
        let n = self.u32()? as i32;
        match n {
            -1 => Ok(None),
            n if n < 0 => Err(DecodeError("negative length")),
            n => Ok(Some(self.take(n as usize)?)),
        }
    }
    fn event(&mut self) -> Result<Event<'a>, DecodeError> {
        let timestamp_ms = self.i64()?;
        let flags = self.take(1)?[0];
        let key = self.opt()?;
        let value = self.opt()?;
        let header_count = self.u16()?;
        let start = self.buf;
        for _ in 0..header_count {
            let n = self.u16()? as usize;
            std::str::from_utf8(self.take(n)?)
                .map_err(|_| DecodeError("header name is not UTF-8"))?;
            let v = self.u32()? as usize;
            self.take(v)?;
        }
        let used = start.len() - self.buf.len();
        Ok(Event {
            timestamp_ms,
            flags,
            key,
            value,
            headers: &start[..used],
            header_count,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        let mut w = Writer::default();
        w.push(
            5,
            FLAG_VALUE_JSON,
            Some(b"k"),
            Some(b"{}"),
            [("a", b"1".as_slice())],
        );
        w.push(6, 0, None, None, []);
        let buf = w.finish();
        let events = decode(&buf).unwrap();
        assert_eq!(events.len(), 2);
        assert_eq!(events[0].key, Some(&b"k"[..]));
        assert_eq!(events[0].header("a"), Some(&b"1"[..]));
        assert!(events[0].value_is_json());
        assert_eq!(events[1].value, None);
        assert_eq!(validate(&buf), Ok(2));
        for cut in 0..buf.len() {
            assert!(decode(&buf[..cut]).is_err());
            assert!(validate(&buf[..cut]).is_err());
        }
        let mut long = buf.clone();
        long.push(0);
        assert!(decode(&long).is_err());
        assert!(validate(&long).is_err());
    }
}
