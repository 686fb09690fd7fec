"""Runs the plugin in plain CPython, without WASM: python3 test_app.py"""

import unittest

from weir_plugin import Event
from weir_plugin.testing import run

from app import Plugin


class PluginTest(unittest.TestCase):
    def test_keeps_events_with_the_word(self):
        kept = run(Plugin, [Event(value=b"hello world"), Event(value=b"bye")], {"word": "hello"})
        self.assertEqual([e.value for e in kept], [b"hello world"])


if __name__ == "__main__":
    unittest.main()
