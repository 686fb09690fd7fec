// Runs the filter natively (no WASM): npm install && npm test
import { test } from "node:test";
import assert from "node:assert/strict";
import { run } from "weir-plugin";
import { init, filter } from "./app.js";

test("keeps events with the word", () => {
  const kept = run({ kind: "filter", init, filter }, [{ value: "hello world" }, { value: "bye" }], { word: "hello" });
  assert.deepEqual(kept.map((e) => e.valueText()), ["hello world"]);
});
