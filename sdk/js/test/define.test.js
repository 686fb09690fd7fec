// The define* helpers natively: what the host would get back for one batch.
import { test } from "node:test";
import assert from "node:assert/strict";
import { BadInput, Event, decode, defineFilter, defineRouter, defineTransform, encode, run } from "../weir-plugin.js";

const info = { topic: "t", partitions: 1 };

test("a filter returns one flag per event", () => {
  const f = defineFilter({ keep: (e) => e.valueText() === "a" });
  f.init("");
  assert.deepEqual(f.filter(info, encode([new Event({ value: "a" }), new Event({ value: "b" })])), [true, false]);
});

test("a transform packs its outputs and counts them per input", () => {
  const t = defineTransform({ transform: (e) => (e.valueText() === "drop" ? null : [e, e]) });
  t.init("{}");
  const r = t.transform(info, encode([new Event({ value: "x" }), new Event({ value: "drop" })]));
  assert.deepEqual([...r.counts], [2, 0]);
  assert.equal(decode(r.events).length, 2);
});

test("a router names topics and keys", () => {
  const r = defineRouter({ route: (e) => [e.valueText(), { topic: "k", key: "id" }] });
  const out = run(r, [{ value: "a" }]);
  assert.deepEqual(out.map((d) => [d.event, d.topic]), [[0, "a"], [0, "k"]]);
  assert.deepEqual([...out[1].key], [...new TextEncoder().encode("id")]);
});

test("errors follow the WIT contract", () => {
  const f = defineFilter({
    keep(e) {
      if (e.valueText() === "bad") throw new BadInput("not json");
      throw new Error("boom");
    },
  });
  assert.throws(() => f.filter(info, encode([new Event({ value: "bad" })])), { tag: "bad-input", val: "not json" });
  assert.throws(() => f.filter(info, encode([new Event({ value: "x" })])), { tag: "failed", val: "Error: boom" });
  assert.throws(() => f.filter(info, new Uint8Array([1, 0])), (e) => e.tag === "failed" && e.val.includes("malformed packed events"));
  const picky = defineFilter({ init() { throw new Error("no word"); }, keep: () => true });
  assert.throws(() => picky.init("{}"), /no word/);
});
