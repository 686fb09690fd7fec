// The window count natively (no WASM): npm test
import { test } from "node:test";
import assert from "node:assert/strict";
import { Event, Window, defineProcessor, encode, memoryKeyed } from "weir-plugin";
import { windowCount } from "./counter.js";

const info = { topic: "clicks", partition: 0, partitions: 1, nowMs: 0n };

test("counts per key and window and emits on close", () => {
  const p = defineProcessor(windowCount, memoryKeyed());
  p.init(JSON.stringify({ output: "counts" }));
  const w = { startMs: 0n, endMs: 60000n };
  const events = encode([new Event({ key: "a" }), new Event({ key: "b" }), new Event({ key: "a" })]);
  const windows = [0, 1, 2].map((event) => ({ event, window: w, merged: false }));
  assert.deepEqual(p.process(info, events, [1n, 2n, 3n], windows), []);
  const out = p.closeWindows(info, [{ key: new TextEncoder().encode("a"), window: w }]);
  assert.equal(JSON.parse(new TextDecoder().decode(out[0].value)).count, 2);
  assert.equal(out[0].json, true);
  assert.equal(windowCount.keyed.counter(new Window(0, 60000).stateKey("a")), 0);
});

test("event times come from the field", () => {
  const p = defineProcessor(windowCount, memoryKeyed());
  p.init(JSON.stringify({ output: "counts", timeField: "ts" }));
  assert.deepEqual(p.eventTimes(encode([new Event({ value: '{"ts":42}' })])), [42n]);
  assert.throws(() => p.eventTimes(encode([new Event({ value: "{}" })])), (e) => e.tag === "bad-input");
});
