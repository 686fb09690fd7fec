"""The packed event format that crosses the host/guest boundary, one buffer per batch.

``u32 count``, then per event (little-endian): ``i64 timestamp_ms``, ``u8 flags``
(bit 0: the value is JSON text), ``i32 key_len`` (-1: none) + key, ``i32 value_len``
(-1: none) + value, ``u16 header_count``, then per header ``u16 name_len`` + name
(UTF-8) + ``u32 len`` + bytes.

The same format and the same errors as the Rust SDK's ``weir_sdk::packed``
(``sdk/src/packed.rs``); ``sdk/vectors.json`` holds the shared conformance vectors.

Speed: the decoder walks the buffer once with precompiled ``struct`` formats,
validating every length; it slices each value out (nearly every plugin reads it) and
keeps where the event starts, reading its key, timestamp, flags and headers only when
a plugin asks for them.
"""

import struct

FLAG_VALUE_JSON = 1

_HEAD = struct.Struct("<qBi")  # timestamp, flags, key length
_I64 = struct.Struct("<q")
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
    ``None``) and ``headers`` (a list of ``(name, bytes)``).

    A decoded event keeps its batch and where it starts: the value is sliced out at
    decode (nearly every plugin reads it), the other fields when first read."""

    __slots__ = ("_b", "_at", "value", "_ts", "_flags", "_key", "_headers")

    def __init__(self, timestamp_ms=0, flags=0, key=None, value=None, headers=None):
        self._b = None
        self._ts = timestamp_ms
        self._flags = flags
        self._key = key
        self.value = value
        self._headers = list(headers) if headers is not None else []

    # Each lazy field's slot is unset until read (a missing slot costs nothing to
    # check in CPython 3.11+), then holds the value; setting one just sets it.
    @property
    def timestamp_ms(self):
        try:
            return self._ts
        except AttributeError:
            self._ts = _I64.unpack_from(self._b, self._at)[0]
            return self._ts

    @timestamp_ms.setter
    def timestamp_ms(self, v):
        self._ts = v

    @property
    def flags(self):
        try:
            return self._flags
        except AttributeError:
            self._flags = self._b[self._at + 8]
            return self._flags

    @flags.setter
    def flags(self, v):
        self._flags = v

    @property
    def key(self):
        try:
            return self._key
        except AttributeError:
            b, at = self._b, self._at
            (n,) = _I32.unpack_from(b, at + 9)
            self._key = None if n == -1 else b[at + 13 : at + 13 + n]
            return self._key

    @key.setter
    def key(self, v):
        self._key = v

    @property
    def headers(self):
        try:
            return self._headers
        except AttributeError:
            b, at = self._b, self._at
            (k,) = _I32.unpack_from(b, at + 9)
            at += 13 + max(k, 0)
            (v,) = _I32.unpack_from(b, at)
            at += 4 + max(v, 0)
            (count,) = _U16.unpack_from(b, at)
            self._headers = _split_headers(b, at + 2, count)
            return self._headers

    @headers.setter
    def headers(self, pairs):
        self._headers = list(pairs)

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
        v = self.value
        try:
            return None if v is None else v.decode()
        except UnicodeDecodeError:
            return None

    def key_str(self):
        k = self.key
        try:
            return None if k is None else k.decode()
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


def _split_headers(buf, at, count):
    out = []
    for _ in range(count):
        (n,) = _U16.unpack_from(buf, at)
        name = buf[at + 2 : at + 2 + n].decode()
        at += 2 + n
        (v,) = _U32.unpack_from(buf, at)
        out.append((name, buf[at + 4 : at + 4 + v]))
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
    i32, u16, u32 = _I32.unpack_from, _U16.unpack_from, _U32.unpack_from
    new = Event.__new__
    try:
        for _ in range(count):
            start = at
            klen = i32(buf, at + 9)[0]
            at += 13
            if klen < -1:
                raise DecodeError("negative length")
            if klen > 0:
                at += klen
            if at + 4 > end:
                raise DecodeError("a field runs past the end")
            (vlen,) = i32(buf, at)
            at += 4
            if vlen < -1:
                raise DecodeError("negative length")
            if vlen > 0:
                value = buf[at : at + vlen]
                at += vlen
            else:
                value = None if vlen == -1 else b""
            (hcount,) = u16(buf, at)
            at += 2
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
            e = new(Event)
            e._b, e._at, e.value = buf, start, value
            append(e)
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
