"""The packed-batch conformance vectors shared with the Rust and JS SDKs."""

import json
import os
import sys
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, ".."))

from weir_plugin.packed import DecodeError, Event, decode, encode  # noqa: E402

with open(os.path.join(HERE, "../../vectors/packed.json")) as f:
    VECTORS = json.load(f)


def unhex(v):
    return None if v is None else bytes.fromhex(v)


class PackedVectors(unittest.TestCase):
    def test_valid_vectors_encode_and_decode(self):
        for v in VECTORS["valid"]:
            events = [
                Event(e["timestamp_ms"], e["flags"], unhex(e["key"]), unhex(e["value"]),
                      [(n, bytes.fromhex(h)) for n, h in e["headers"]])
                for e in v["events"]
            ]
            self.assertEqual(encode(events).hex(), v["packed"], v["name"])
            self.assertEqual(decode(bytes.fromhex(v["packed"])), events, v["name"])

    def test_malformed_vectors_are_refused_with_their_reason(self):
        for v in VECTORS["malformed"]:
            with self.assertRaises(DecodeError, msg=v["name"]) as caught:
                decode(bytes.fromhex(v["packed"]))
            self.assertEqual(caught.exception.reason, v["error"], v["name"])


if __name__ == "__main__":
    unittest.main()
