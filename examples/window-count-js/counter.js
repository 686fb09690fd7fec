// The window count's logic: per key and window, an 8-byte counter in the partition's
// keyed state (`this.keyed`), emitted as {"key","count","start","end"} when the window
// closes. With `timeField` in [config] (and event_time = "plugin" in [processor]) the
// event time is that top-level field of the JSON value.
import { BadInput } from "weir-plugin";

const text = new TextDecoder();

export const windowCount = {
  init(config) {
    this.output = config.output;
    this.timeField = config.timeField ?? null;
  },
  eventTime(event) {
    if (this.timeField === null) return null;
    const t = JSON.parse(event.valueText() ?? "null")?.[this.timeField];
    if (!Number.isInteger(t)) throw new BadInput(`no whole-number ${this.timeField}`);
    return t;
  },
  process({ event, windows, merged }) {
    const key = event.key ?? new Uint8Array();
    for (const w of windows) {
      let n = 1;
      for (const m of merged) n += this.keyed.take(m.stateKey(key));
      this.keyed.add(w.stateKey(key), n);
    }
  },
  close(key, window, ctx) {
    const count = this.keyed.take(window.stateKey(key));
    const value = { key: text.decode(key), count, start: window.startMs, end: window.endMs };
    ctx.emit(this.output, value, { key, window });
  },
};
