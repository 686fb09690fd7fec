// A Weir filter plugin: keeps the events whose value contains `word` (its `[config]`
// in plugin.toml). Build: weir plugin build. Test: npm install && npm test
import { defineFilter } from "weir-plugin";

export const plugin = defineFilter({
  init(config) {
    this.word = String(config.word ?? "");
    if (!this.word) throw new Error("word must not be empty"); // the broker rejects the version
  },
  keep(event) {
    return event.valueText()?.includes(this.word) ?? false;
  },
});

// componentize-js calls these exports; the SDK decodes each batch and calls `keep`.
export const { init, filter } = plugin;
