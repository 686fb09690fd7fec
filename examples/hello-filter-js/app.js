// Tutorial 1 in JavaScript: keeps events whose value contains a word (`word` in the
// `[config]` of plugin.toml). Build with `weir plugin build`; test natively with
// `node --test`.
import { defineFilter } from "weir-plugin";

export const { init, filter } = defineFilter({
  init(config) {
    this.word = config.word ?? "";
    if (!this.word) throw new Error("word must not be empty"); // the broker rejects the plugin
    console.log(`hello-filter-js keeps events containing ${JSON.stringify(this.word)}`);
  },
  keep(event) {
    return event.valueText()?.includes(this.word) ?? false;
  },
});
