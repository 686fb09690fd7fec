"""Runs the processor natively (no WASM): python3 test_app.py"""

import json
import os
import sys
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "../../sdk/python"))

import weir_plugin as weir  # noqa: E402
from weir_plugin import Event, Window  # noqa: E402
from weir_plugin.testing import processor, run_close, run_process  # noqa: E402

from app import WindowCount  # noqa: E402


class WindowCountTest(unittest.TestCase):
    def test_counts_per_key_and_window_and_emits_on_close(self):
        p = processor(WindowCount, {"output": "counts"})
        w = Window(0, 60_000)
        a, b = Event(key=b"a"), Event(key=b"b")
        self.assertEqual(run_process(p, [(a, 1, [w]), (b, 2, [w]), (a, 3, [w])]), [])
        out = run_close(p, [(b"a", w)])
        self.assertEqual(json.loads(out[0].value)["count"], 2)
        self.assertTrue(out[0].json)
        self.assertEqual(out[0].window, w)
        self.assertEqual(weir.keyed.counter(w.state_key(b"a")), 0)

    def test_event_times_come_from_the_field(self):
        p = processor(WindowCount, {"output": "counts", "time_field": "ts"})
        self.assertEqual(p.event_time(Event(value=b'{"ts": 42}')), 42)
        with self.assertRaises(weir.BadInput):
            p.event_time(Event(value=b"{}"))


if __name__ == "__main__":
    unittest.main()
