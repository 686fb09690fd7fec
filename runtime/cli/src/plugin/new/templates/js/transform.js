// A Weir transform plugin: adds a header (`header` in `[config]`) naming this plugin
// to every event. Build: weir plugin build. Test: npm install && npm test
import { defineTransform } from "weir-plugin";

export const plugin = defineTransform({
  init(config) {
    this.header = config.header ?? "seen-by";
  },
  transform(event) {
    // One output per input; return an array to fan out, null to drop.
    return event.with({ headers: [...event.headers, [this.header, "NAME"]] });
  },
});

export const { init, transform } = plugin;
