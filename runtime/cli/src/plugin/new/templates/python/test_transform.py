"""Runs the plugin in plain CPython, without WASM: python3 test_app.py"""

import unittest

from weir_plugin import Event
from weir_plugin.testing import run

from app import Plugin


class PluginTest(unittest.TestCase):
    def test_adds_the_header(self):
        out = run(Plugin, [Event(value=b"x")], {"header": "seen-by"})
        self.assertEqual(len(out), 1)
        self.assertIsNotNone(out[0].header("seen-by"))


if __name__ == "__main__":
    unittest.main()
