// The packed-batch conformance vectors shared with the Rust and Python SDKs.
import { test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { DecodeError, Event, decode, encode } from "../weir-plugin.js";

const vectors = JSON.parse(readFileSync(new URL("../../vectors/packed.json", import.meta.url)));
const unhex = (h) => (h === null ? null : Uint8Array.from(Buffer.from(h, "hex")));
const hex = (b) => Buffer.from(b).toString("hex");

test("valid vectors encode and decode", () => {
  for (const v of vectors.valid) {
    const events = v.events.map(
      (e) => new Event({ timestampMs: e.timestamp_ms, flags: e.flags, key: unhex(e.key), value: unhex(e.value),
        headers: e.headers.map(([n, h]) => [n, unhex(h)]) }),
    );
    assert.equal(hex(encode(events)), v.packed, v.name);
    const decoded = decode(unhex(v.packed));
    assert.equal(decoded.length, events.length, v.name);
    decoded.forEach((d, i) => {
      assert.equal(d.timestampMs, events[i].timestampMs, v.name);
      assert.equal(d.flags, events[i].flags, v.name);
      assert.deepEqual(d.key && hex(d.key), events[i].key && hex(events[i].key), v.name);
      assert.deepEqual(d.value && hex(d.value), events[i].value && hex(events[i].value), v.name);
      assert.deepEqual(d.headers.map(([n, b]) => [n, hex(b)]), events[i].headers.map(([n, b]) => [n, hex(b)]), v.name);
    });
  }
});

test("malformed vectors are refused with their reason", () => {
  for (const v of vectors.malformed) {
    assert.throws(() => decode(unhex(v.packed)), (e) => e instanceof DecodeError && e.reason === v.error, v.name);
  }
});
