"""Runs a plugin class over events in plain CPython, without WASM: the same class
the component runs, the same packed codec on the way in and out.

    from weir_plugin.testing import run
    kept = run(HelloFilter, [Event(value=b"hello")], config={"needle": "hello"})
"""

from .packed import decode, encode
from .processor import ProcessInfo
from .worlds import BatchInfo


def run(cls, events, config=None, topic="test", partitions=1):
    """Calls ``cls`` as the host would on one batch. Filters return the kept events,
    transforms the outputs, routers ``(event index, topic, key)`` triples."""
    plugin = cls()
    plugin.init(dict(config or {}))
    info = BatchInfo(topic, partitions)
    # Through the codec, as in the broker: what the plugin sees is what it decodes.
    batch = decode(encode(list(events)))
    if plugin.kind == "filter":
        flags = plugin._run(info, batch)
        return [e for e, keep in zip(batch, flags) if keep]
    if plugin.kind == "transform":
        out, _counts = plugin._run(info, batch)
        return decode(encode(out))
    if plugin.kind == "router":
        return plugin._run(info, batch)
    raise ValueError(f"testing.run does not run {plugin.kind} plugins; call authorize()")


def processor(cls, config=None):
    """An initialised processor ``cls``."""
    plugin = cls()
    plugin.init(dict(config or {}))
    return plugin


def run_process(plugin, inputs, topic="test"):
    """Hands ``plugin`` one batch of ``(event, time_ms, windows)`` on partition 0 of
    ``topic``; returns what it emitted."""
    batch = decode(encode([e for e, _, _ in inputs]))
    times = [t for _, t, _ in inputs]
    windows = [(i, w, False) for i, (_, _, ws) in enumerate(inputs) for w in ws]
    return plugin._process(ProcessInfo(topic), batch, times, windows)


def run_close(plugin, closed, topic="test"):
    """Closes ``(key, Window)`` pairs; returns what ``plugin`` emitted."""
    return plugin._close(ProcessInfo(topic), closed)
