"""What the broker offers every plugin: ``log`` and the durable ``state``.

Inside a component these call the host's imports; in plain CPython (tests, the
native helper) they fall back to ``print`` and a dictionary, so a plugin's code runs
unchanged in both.
"""

try:  # Inside a component built by componentize-py.
    from wit_world.imports import host as _host
    from wit_world.imports import types as _types

    _LEVELS = {
        "trace": _types.Level.TRACE,
        "debug": _types.Level.DEBUG,
        "info": _types.Level.INFO,
        "warn": _types.Level.WARN,
        "error": _types.Level.ERROR,
    }
except ImportError:  # Plain CPython.
    _host = None
    _LEVELS = None

_native_state = {}


def log(level, message):
    """Logs ``message`` at ``level`` (trace, debug, info, warn, error) in the
    broker's log, tagged with the plugin's name."""
    if _host is None:
        print(f"[{level}] {message}")
        return
    _host.log(_LEVELS.get(level, _types.Level.INFO), str(message))


class _State:
    """The plugin's small durable key-value state (``bytes`` keys and values)."""

    def get(self, key):
        key = _bytes(key)
        return _native_state.get(key) if _host is None else _host.state_get(key)

    def set(self, key, value):
        key, value = _bytes(key), _bytes(value)
        if _host is None:
            _native_state[key] = value
        else:
            _host.state_set(key, value)

    def delete(self, key):
        key = _bytes(key)
        if _host is None:
            _native_state.pop(key, None)
        else:
            _host.state_delete(key)


def _bytes(v):
    return v.encode() if isinstance(v, str) else bytes(v)


state = _State()
