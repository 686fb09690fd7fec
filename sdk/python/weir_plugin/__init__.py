"""Weir plugins in Python, built into WebAssembly components with componentize-py.

A plugin is a class deriving from one of the world bases below (``Processor`` for
stream processors, see ``weir_plugin.processor``); ``export`` turns it
into the ``WitWorld`` class componentize-py looks for in the app module::

    import weir_plugin as weir

    class HelloFilter(weir.Filter):
        def init(self, config):
            self.needle = config.get("needle", "hello").encode()

        def keep(self, event, info):
            return event.value is not None and self.needle in event.value

    WitWorld = weir.export(HelloFilter)

``weir plugin build`` runs componentize-py with the right world and paths;
``weir_plugin.testing`` runs the same class over events in plain CPython.
"""

from .packed import FLAG_VALUE_JSON, DecodeError, Event, decode, encode
from .worlds import Acl, BadInput, BatchInfo, Filter, Router, Transform, export
from . import host
from .host import log, state
from .processor import Context, Input, ProcessInfo, Processor, Window, keyed

__all__ = [
    "Acl",
    "BadInput",
    "BatchInfo",
    "Context",
    "DecodeError",
    "Event",
    "FLAG_VALUE_JSON",
    "Filter",
    "Input",
    "ProcessInfo",
    "Processor",
    "Window",
    "Router",
    "Transform",
    "decode",
    "encode",
    "export",
    "host",
    "keyed",
    "log",
    "state",
]
