"""One base class per world, and ``export``, the glue between a plugin class and the
bindings componentize-py generates from ``wit/weir-plugin.wit``.

Errors follow the WIT's contract: raise ``BadInput`` when an event is at fault
(retrying will not help); any other exception is ``failed`` (the plugin could not do
its work); a packed batch that does not decode is ``failed`` too.
"""

import json

from .packed import decode, encode


class BadInput(Exception):
    """The data is at fault: the event is dead-lettered or rejected per the topic's
    policy, never retried."""


class BatchInfo:
    """What the host tells a plugin about a batch: ``topic`` and ``partitions``."""

    __slots__ = ("topic", "partitions")

    def __init__(self, topic, partitions=1):
        self.topic, self.partitions = topic, partitions


class _Plugin:
    kind = None

    def init(self, config):
        """Receives the manifest's ``[config]`` as a dict; raise to reject it."""


class Filter(_Plugin):
    """Keeps or drops each event: implement ``keep(event, info) -> bool``."""

    kind = "filter"

    def keep(self, event, info):
        raise NotImplementedError

    def _run(self, info, events):
        keep = self.keep
        return [bool(keep(e, info)) for e in events]


class Transform(_Plugin):
    """Rewrites events: ``transform(event, info)`` returns an ``Event``, a list of
    them (0 drops the event, 2+ fans out) or ``None`` (drops it)."""

    kind = "transform"

    def transform(self, event, info):
        raise NotImplementedError

    def _run(self, info, events):
        out, counts = [], []
        for e in events:
            r = self.transform(e, info)
            if r is None:
                counts.append(0)
            elif isinstance(r, (list, tuple)):
                out.extend(r)
                counts.append(len(r))
            else:
                out.append(r)
                counts.append(1)
        return out, counts


class Router(_Plugin):
    """Chooses destinations: ``route(event, info)`` returns a topic name, a list of
    them, or ``(topic, key)`` pairs to use another partition key there."""

    kind = "router"

    def route(self, event, info):
        raise NotImplementedError

    def _run(self, info, events):
        out = []
        for i, e in enumerate(events):
            r = self.route(e, info)
            if r is None:
                continue
            for dest in [r] if isinstance(r, (str, tuple)) else r:
                topic, key = (dest, None) if isinstance(dest, str) else dest
                out.append((i, topic, None if key is None else _as_bytes(key)))
        return out


class Acl(_Plugin):
    """Decides whether a principal may act: ``authorize(request)`` returns ``True``
    to allow, or a string (the reason shown to the caller) to deny."""

    kind = "acl"

    def authorize(self, request):
        raise NotImplementedError


def _as_bytes(v):
    return v.encode() if isinstance(v, str) else bytes(v)


def _config(text):
    text = text.strip() if text else ""
    return json.loads(text) if text else {}


def export(cls):
    """The ``WitWorld`` class componentize-py calls, running a ``cls`` instance.

    Outside a component (plain CPython, where there are no generated bindings) the
    plugin class itself is returned, so the app module imports the same way in tests.
    """
    try:
        from componentize_py_types import Err
        from wit_world.imports import types
    except ImportError:
        return cls

    def failed(e):
        return Err(types.Error_Failed(f"{type(e).__name__}: {e}"))

    class WitWorld:
        plugin = None

        def init(self, config):
            try:
                plugin = cls()
                plugin.init(_config(config))
            except Exception as e:
                raise Err(f"{type(e).__name__}: {e}") from None
            WitWorld.plugin = plugin

        def _call(self, info, events):
            try:
                return WitWorld.plugin._run(info, decode(events))
            except BadInput as e:
                raise Err(types.Error_BadInput(str(e))) from None
            except Err:
                raise
            except Exception as e:
                raise failed(e) from None

        def filter(self, info, events):
            return self._call(info, events)

        def transform(self, info, events):
            out, counts = self._call(info, events)
            return types.Transformed(encode(out), counts)

        def route(self, info, events):
            return [types.Destination(i, t, k) for i, t, k in self._call(info, events)]

        def _emitted(self, out):
            def window(w):
                return None if w is None else types.Window(w.start_ms, w.end_ms)

            return [
                types.Emitted(e.topic, e.key, e.value, e.json, e.headers, window(e.window))
                for e in out
            ]

        def _guarded(self, call):
            try:
                return call()
            except BadInput as e:
                raise Err(types.Error_BadInput(str(e))) from None
            except Err:
                raise
            except Exception as e:
                raise failed(e) from None

        def event_times(self, events):
            plugin = WitWorld.plugin
            return self._guarded(lambda: [plugin.event_time(e) for e in decode(events)])

        def process(self, info, events, times, windows):
            from .processor import Window

            triples = [
                (w.event, Window(w.window.start_ms, w.window.end_ms), w.merged)
                for w in windows
            ]
            return self._emitted(
                self._guarded(
                    lambda: WitWorld.plugin._process(info, decode(events), times, triples)
                )
            )

        def close_windows(self, info, windows):
            from .processor import Window

            closed = [(c.key, Window(c.window.start_ms, c.window.end_ms)) for c in windows]
            return self._emitted(self._guarded(lambda: WitWorld.plugin._close(info, closed)))

        def fire_timers(self, info, keys):
            return self._emitted(self._guarded(lambda: WitWorld.plugin._fire(info, keys)))

        def authorize(self, request):
            try:
                verdict = WitWorld.plugin.authorize(request)
            except Exception as e:
                return types.Decision_Deny(f"policy failed: {type(e).__name__}: {e}")
            if verdict is True:
                return types.Decision_Allow()
            return types.Decision_Deny(str(verdict or "denied"))

    WitWorld.__name__ = WitWorld.__qualname__ = "WitWorld"
    return WitWorld
