"""The world base classes natively, through weir_plugin.testing."""

import os
import sys
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

import weir_plugin as weir  # noqa: E402
from weir_plugin import Event  # noqa: E402
from weir_plugin.testing import run  # noqa: E402


class Twice(weir.Transform):
    def transform(self, event, info):
        if event.value == b"drop":
            return None
        return [event, event.replace(key=b"copy")]


class ByHeader(weir.Router):
    def route(self, event, info):
        return [event.header("to").decode(), ("keyed", "k1")]


class Worlds(unittest.TestCase):
    def test_a_transform_fans_out_and_drops(self):
        out = run(Twice, [Event(value=b"x"), Event(value=b"drop")])
        self.assertEqual([(e.key, e.value) for e in out], [(None, b"x"), (b"copy", b"x")])

    def test_a_router_names_topics_and_keys(self):
        routes = run(ByHeader, [Event(value=b"x", headers=[("to", b"a")])])
        self.assertEqual(routes, [(0, "a", None), (0, "keyed", b"k1")])

    def test_export_outside_a_component_is_the_class(self):
        self.assertIs(weir.export(Twice), Twice)


if __name__ == "__main__":
    unittest.main()
