"""The packed event format that crosses the host/guest boundary, one buffer per batch.

``u32 count``, then per event (little-endian): ``i64 timestamp_ms``, ``u8 flags``
(bit 0: the value is JSON text), ``i32 key_len`` (-1: none) + key, ``i32 value_len``
(-1: none) + value, ``u16 header_count``, then per header ``u16 name_len`` + name
(UTF-8) + ``u32 len`` + bytes.

The same format and the same errors as the Rust SDK's ``weir_sdk::packed``
(``sdk/src/packed.rs``); ``sdk/vectors.json`` holds the shared conformance vectors.

Speed: the decoder walks the buffer once with precompiled ``struct`` formats and
slices keys and values out as ``bytes``; headers are validated in that walk but only
split into pairs when a plugin asks for them, since most plugins never do.
"""

import struct

FLAG_VALUE_JSON = 1

_HEAD = struct.Struct("<qBi")  # timestamp, flags, key length
_I32 = struct.Struct("<i")
_U16 = struct.Struct("<H")
_U32 = struct.Struct("<I")


class DecodeError(ValueError):
    """A malformed packed buffer (the host and the guest disagree on the format)."""

    def __init__(self, reason):
        super().__init__("malformed packed events: " + reason)
        self.reason = reason


class Event:
    """One event: ``timestamp_ms``, ``flags``, ``key`` and ``value`` (``bytes`` or
    ``None``) and ``headers`` (a list of ``(name, bytes)``)."""

    __slots__ = ("timestamp_ms", "flags", "key", "value", "_headers", "_raw", "_count")

    def __init__(self, timestamp_ms=0, flags=0, key=None, value=None, headers=None):
        self.timestamp_ms = timestamp_ms
        self.flags = flags
        self.key = key
        self.value = value
        self._headers = list(headers) if headers is not None else []
        self._raw = None
        self._count = 0

    @classmethod
    def _lazy(cls, timestamp_ms, flags, key, value, raw, count):
        e = cls.__new__(cls)
        e.timestamp_ms, e.flags, e.key, e.value = timestamp_ms, flags, key, value
        e._headers, e._raw, e._count = None, raw, count
        return e

    @property
    def headers(self):
        if self._headers is None:
            self._headers = _split_headers(self._raw, self._count)
            self._raw = None
        return self._headers

    @headers.setter
    def headers(self, pairs):
        self._headers, self._raw = list(pairs), None

    def header(self, name):
        """The first header called ``name`` (``bytes``), or ``None``."""
        for n, v in self.headers:
            if n == name:
                return v
        return None

    @property
    def value_is_json(self):
        return bool(self.flags & FLAG_VALUE_JSON)

    def value_str(self):
        """The value as text, or ``None`` (absent or not UTF-8)."""
        try:
            return None if self.value is None else self.value.decode()
        except UnicodeDecodeError:
            return None

    def key_str(self):
        try:
            return None if self.key is None else self.key.decode()
        except UnicodeDecodeError:
            return None

    def replace(self, **changes):
        """A copy with some fields changed (``key=``, ``value=``, ``headers=`` ...)."""
        e = Event(self.timestamp_ms, self.flags, self.key, self.value, self.headers)
        for k, v in changes.items():
            setattr(e, k, v)
        return e

    def __eq__(self, other):
        return isinstance(other, Event) and (
            self.timestamp_ms, self.flags, self.key, self.value, self.headers
        ) == (other.timestamp_ms, other.flags, other.key, other.value, other.headers)

    def __repr__(self):
        return (
            f"Event(timestamp_ms={self.timestamp_ms}, flags={self.flags}, key={self.key!r}, "
            f"value={self.value!r}, headers={self.headers!r})"
        )


def _split_headers(raw, count):
    out, at = [], 0
    for _ in range(count):
        (n,) = _U16.unpack_from(raw, at)
        name = raw[at + 2 : at + 2 + n].decode()
        at += 2 + n
        (v,) = _U32.unpack_from(raw, at)
        out.append((name, raw[at + 4 : at + 4 + v]))
        at += 4 + v
    return out


def decode(buf):
    """Decodes a packed batch into a list of ``Event``; raises ``DecodeError``."""
    buf = bytes(buf)
    end = len(buf)
    if end < 4:
        raise DecodeError("a field runs past the end")
    (count,) = _U32.unpack_from(buf, 0)
    at = 4
    out = []
    append = out.append
    head, i32, u16, u32 = _HEAD.unpack_from, _I32.unpack_from, _U16.unpack_from, _U32.unpack_from
    try:
        for _ in range(count):
            ts, flags, klen = head(buf, at)
            at += 13
            if klen == -1:
                key = None
            elif klen < 0:
                raise DecodeError("negative length")
            else:
                if at + klen > end:
                    raise DecodeError("a field runs past the end")
                key = buf[at : at + klen]
                at += klen
            (vlen,) = i32(buf, at)
            at += 4
            if vlen == -1:
                value = None
            elif vlen < 0:
                raise DecodeError("negative length")
            else:
                if at + vlen > end:
                    raise DecodeError("a field runs past the end")
                value = buf[at : at + vlen]
                at += vlen
            (hcount,) = u16(buf, at)
            at += 2
            start = at
            for _ in range(hcount):
                (n,) = u16(buf, at)
                at += 2
                if at + n > end:
                    raise DecodeError("a field runs past the end")
                try:
                    buf[at : at + n].decode()
                except UnicodeDecodeError:
                    raise DecodeError("header name is not UTF-8") from None
                at += n
                (v,) = u32(buf, at)
                at += 4 + v
                if at > end:
                    raise DecodeError("a field runs past the end")
            raw = buf[start:at] if hcount else b""
            append(Event._lazy(ts, flags, key, value, raw, hcount))
    except struct.error:
        raise DecodeError("a field runs past the end") from None
    if at != end:
        raise DecodeError("trailing bytes after the last event")
    return out


def encode(events):
    """Packs events (``Event`` objects) into one buffer."""
    parts = [_U32.pack(len(events))]
    put = parts.append
    for e in events:
        key, value = e.key, e.value
        put(_HEAD.pack(e.timestamp_ms, e.flags, -1 if key is None else len(key)))
        if key is not None:
            put(bytes(key))
        put(_I32.pack(-1 if value is None else len(value)))
        if value is not None:
            put(bytes(value))
        headers = e.headers
        put(_U16.pack(len(headers)))
        for name, v in headers:
            n = name.encode()
            put(_U16.pack(len(n)))
            put(n)
            put(_U32.pack(len(v)))
            put(bytes(v))
    return b"".join(parts)
