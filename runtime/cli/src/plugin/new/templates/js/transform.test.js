// Runs the plugin in plain Node, without WASM: npm test
import { test } from "node:test";
import assert from "node:assert/strict";
import { run } from "weir-plugin";
import { plugin } from "./app.js";

test("adds the header", () => {
  const out = run(plugin, [{ value: "x" }], { header: "seen-by" });
  assert.equal(out.length, 1);
  assert.notEqual(out[0].header("seen-by"), null);
});
