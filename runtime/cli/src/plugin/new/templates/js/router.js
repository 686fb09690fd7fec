// A Weir router plugin: sends each event to `<prefix><topic>` (`prefix` in
// `[config]`; plugin.toml's [router] destinations lists every topic it may choose).
// Build: weir plugin build. Test: npm install && npm test
import { defineRouter } from "weir-plugin";

export const plugin = defineRouter({
  init(config) {
    this.prefix = config.prefix ?? "routed-";
  },
  route(event, info) {
    // A topic, or an array of topics and { topic, key } objects.
    return this.prefix + info.topic;
  },
});

export const { init, route } = plugin;
