// Runs the plugin in plain Node, without WASM: npm test
import { test } from "node:test";
import assert from "node:assert/strict";
import { run } from "weir-plugin";
import { plugin } from "./app.js";

test("routes by topic", () => {
  const routes = run(plugin, [{ value: "x" }], { prefix: "routed-" }, { topic: "events", partitions: 1 });
  assert.deepEqual(routes.map((r) => r.topic), ["routed-events"]);
});
