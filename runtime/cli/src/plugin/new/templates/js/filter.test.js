// Runs the plugin in plain Node, without WASM: npm test
import { test } from "node:test";
import assert from "node:assert/strict";
import { run } from "weir-plugin";
import { plugin } from "./app.js";

test("keeps events with the word", () => {
  const kept = run(plugin, [{ value: "hello world" }, { value: "bye" }], { word: "hello" });
  assert.deepEqual(kept.map((e) => e.valueText()), ["hello world"]);
});
