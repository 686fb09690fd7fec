"""Runs the filter natively (no WASM): python3 test_app.py"""

import os
import sys
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "../../sdk/python"))

from weir_plugin import Event  # noqa: E402
from weir_plugin.testing import run  # noqa: E402

from app import HelloFilter  # noqa: E402


class HelloFilterTest(unittest.TestCase):
    def test_keeps_events_with_the_word(self):
        kept = run(HelloFilter, [Event(value=b"hello world"), Event(value=b"bye")], {"word": "hello"})
        self.assertEqual([e.value for e in kept], [b"hello world"])

    def test_an_empty_word_is_rejected(self):
        with self.assertRaises(ValueError):
            run(HelloFilter, [], {"word": ""})


if __name__ == "__main__":
    unittest.main()
