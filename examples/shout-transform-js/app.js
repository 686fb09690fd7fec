// Tutorial 2 in JavaScript: upper-cases text values and adds a `shouted` header; drops
// empty values; with `twice = true` emits every event two times (fan-out).
import { defineTransform } from "weir-plugin";

const encoder = new TextEncoder();

export const { init, transform } = defineTransform({
  init(config) {
    this.copies = config.twice ? 2 : 1;
  },
  transform(event) {
    let text;
    try {
      text = new TextDecoder("utf-8", { fatal: true }).decode(event.value ?? undefined);
    } catch {
      return event; // binary values pass through untouched
    }
    if (event.value === null) return event;
    if (text === "" || text === '""') return null; // zero outputs: the event is dropped
    const loud = event.with({
      value: encoder.encode(text.toUpperCase()),
      headers: [...event.headers, ["shouted", encoder.encode("yes")]],
    });
    return Array(this.copies).fill(loud);
  },
});
