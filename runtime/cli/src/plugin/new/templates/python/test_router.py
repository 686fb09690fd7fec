"""Runs the plugin in plain CPython, without WASM: python3 test_app.py"""

import unittest

from weir_plugin import Event
from weir_plugin.testing import run

from app import Plugin


class PluginTest(unittest.TestCase):
    def test_routes_by_topic(self):
        routes = run(Plugin, [Event(value=b"x")], {"prefix": "routed-"}, topic="events")
        self.assertEqual(routes, [(0, "routed-events", None)])


if __name__ == "__main__":
    unittest.main()
