"""Stream processors in Python: consume topics with keyed state, event-time windows
and timers, and emit records; the broker stores a batch's outputs, state changes and
consumed offsets in one atomic write.

    import weir_plugin as weir

    class Count(weir.Processor):
        def process(self, input, ctx):
            for w in input.windows:
                weir.keyed.add(w.state_key(input.event.key or b""), 1)

        def close(self, key, window, ctx):
            n = weir.keyed.take(window.state_key(key))
            ctx.emit("counts", {"key": key.decode(), "count": n}, key=key, window=window)

    WitWorld = weir.export(Count)

``keyed`` is the state of the input partition being processed (the imports inside
a component, a dictionary in plain CPython); ``run_process`` and ``run_close`` in
``weir_plugin.testing`` call a processor natively.
"""

import json
import struct

try:  # Inside a component built by componentize-py.
    from wit_world.imports import keyed_state as _host
except ImportError:  # Plain CPython.
    _host = None

_U64 = struct.Struct(">Q")
_I64 = struct.Struct(">q")


class Window:
    """An event-time window, ``[start_ms, end_ms)``."""

    __slots__ = ("start_ms", "end_ms")

    def __init__(self, start_ms, end_ms):
        self.start_ms, self.end_ms = start_ms, end_ms

    def state_key(self, key):
        """A state key for ``key`` in this window (its bounds, then the key)."""
        return _I64.pack(self.start_ms) + _I64.pack(self.end_ms) + _bytes(key)

    def __eq__(self, other):
        return isinstance(other, Window) and (self.start_ms, self.end_ms) == (
            other.start_ms,
            other.end_ms,
        )

    def __hash__(self):
        return hash((self.start_ms, self.end_ms))

    def __repr__(self):
        return f"Window({self.start_ms}, {self.end_ms})"


class ProcessInfo:
    """The batch's input ``topic`` and ``partition``, the topic's ``partitions``, and
    the broker's clock ``now_ms``."""

    __slots__ = ("topic", "partition", "partitions", "now_ms")

    def __init__(self, topic, partition=0, partitions=1, now_ms=0):
        self.topic, self.partition = topic, partition
        self.partitions, self.now_ms = partitions, now_ms


class Input:
    """An on-time event, its time (``time_ms``), the ``windows`` it counts in and the
    session windows it ``merged`` into its own (move their state into it)."""

    __slots__ = ("event", "time_ms", "windows", "merged")

    def __init__(self, event, time_ms, windows=(), merged=()):
        self.event, self.time_ms = event, time_ms
        self.windows, self.merged = list(windows), list(merged)


class Emitted:
    """A record to store: ``topic``, ``key``, ``value`` (bytes), ``json`` (the value is
    JSON text), ``headers`` and the ``window`` whose result it is."""

    __slots__ = ("topic", "key", "value", "json", "headers", "window")

    def __init__(self, topic, key, value, json_text, headers, window):
        self.topic, self.key, self.value = topic, key, value
        self.json, self.headers, self.window = json_text, headers, window


class Context:
    """What a call sees (``info``) and emits into."""

    def __init__(self, info):
        self.info = info
        self.out = []

    def emit(self, topic, value, key=None, window=None, headers=()):
        """Emits a record to one of the manifest's outputs. A ``dict`` or ``list``
        value is stored as JSON; ``str`` and ``bytes`` as they are."""
        is_json = isinstance(value, (dict, list))
        if is_json:
            value = json.dumps(value, separators=(",", ":"))
        value = None if value is None else _bytes(value)
        key = None if key is None else _bytes(key)
        pairs = [(n, _bytes(v)) for n, v in headers]
        self.out.append(Emitted(topic, key, value, is_json, pairs, window))


class Processor:
    """A stream processor: implement ``process(input, ctx)``; ``close(key, window,
    ctx)`` when it has windows, ``fire(key, ctx)`` when it sets timers, and
    ``event_time(event)`` to read event times from values (with ``event_time =
    "plugin"`` in the manifest)."""

    kind = "processor"

    def init(self, config):
        """Receives the manifest's ``[config]`` as a dict; raise to reject it."""

    def event_time(self, event):
        return None

    def process(self, input, ctx):
        raise NotImplementedError

    def close(self, key, window, ctx):
        pass

    def fire(self, key, ctx):
        pass

    def _process(self, info, events, times, windows):
        """``windows``: ``(event index, Window, merged)`` in event order."""
        ctx = Context(info)
        at = 0
        for i, (event, time_ms) in enumerate(zip(events, times)):
            own, merged = [], []
            while at < len(windows) and windows[at][0] == i:
                (merged if windows[at][2] else own).append(windows[at][1])
                at += 1
            self.process(Input(event, time_ms, own, merged), ctx)
        return ctx.out

    def _close(self, info, closed):
        ctx = Context(info)
        for key, window in closed:
            self.close(key, window, ctx)
        return ctx.out

    def _fire(self, info, keys):
        ctx = Context(info)
        for key in keys:
            self.fire(key, ctx)
        return ctx.out


class _Keyed:
    """The partition's keyed state (``bytes`` keys and values) and timers."""

    def __init__(self):
        self.native = {}
        self.timers = {}

    def get(self, key):
        key = _bytes(key)
        return self.native.get(key) if _host is None else _host.get(key)

    def put(self, key, value):
        key, value = _bytes(key), _bytes(value)
        if _host is None:
            self.native[key] = value
        else:
            _host.put(key, value)

    def delete(self, key):
        key = _bytes(key)
        if _host is None:
            self.native.pop(key, None)
        else:
            _host.remove(key)

    def scan(self, prefix, after=None, limit=1000):
        """Up to ``limit`` ``(key, value)`` pairs under ``prefix`` after ``after``."""
        prefix = _bytes(prefix)
        after = None if after is None else _bytes(after)
        if _host is not None:
            return _host.scan(prefix, after, limit)
        keys = sorted(k for k in self.native if k.startswith(prefix))
        keys = [k for k in keys if after is None or k > after][:limit]
        return [(k, self.native[k]) for k in keys]

    def counter(self, key):
        """The 8-byte big-endian counter under ``key`` (0 when absent)."""
        v = self.get(key)
        return _U64.unpack(v)[0] if v is not None and len(v) == 8 else 0

    def add(self, key, n=1):
        v = self.counter(key) + n
        self.put(key, _U64.pack(v))
        return v

    def take(self, key):
        """The counter under ``key``, deleting it."""
        v = self.counter(key)
        self.delete(key)
        return v

    def set_timer(self, key, at_ms):
        """Calls ``fire`` with ``key`` once the broker's clock reaches ``at_ms``."""
        key = _bytes(key)
        if _host is None:
            self.timers[key] = at_ms
        else:
            _host.set_timer(key, at_ms)

    def cancel_timer(self, key):
        key = _bytes(key)
        if _host is None:
            self.timers.pop(key, None)
        else:
            _host.cancel_timer(key)


def _bytes(v):
    return v.encode() if isinstance(v, str) else bytes(v)


keyed = _Keyed()
