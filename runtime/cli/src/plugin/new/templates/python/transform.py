"""A Weir transform plugin: adds a header (`header` in `[config]`) naming this
plugin to every event. Build: weir plugin build. Test: python3 test_app.py"""

import weir_plugin as weir


class Plugin(weir.Transform):
    def init(self, config):
        self.header = config.get("header", "seen-by")

    def transform(self, event, info):
        # One output per input; return a list to fan out, None to drop.
        return event.replace(headers=event.headers + [(self.header, b"NAME")])


WitWorld = weir.export(Plugin)
