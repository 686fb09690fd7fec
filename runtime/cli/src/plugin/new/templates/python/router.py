"""A Weir router plugin: sends each event to `<prefix><topic>` (`prefix` in
`[config]`; plugin.toml's [router] destinations lists every topic it may choose).
Build: weir plugin build. Test: python3 test_app.py"""

import weir_plugin as weir


class Plugin(weir.Router):
    def init(self, config):
        self.prefix = config.get("prefix", "routed-")

    def route(self, event, info):
        # A topic, a list of topics, or (topic, key) pairs for another partition key.
        return self.prefix + info.topic


WitWorld = weir.export(Plugin)
