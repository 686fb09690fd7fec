"""A Weir filter plugin: keeps the events whose value contains `word` (its
`[config]` in plugin.toml). Build: weir plugin build. Test: python3 test_app.py"""

import weir_plugin as weir


class Plugin(weir.Filter):
    def init(self, config):
        self.word = str(config.get("word", "")).encode()
        if not self.word:
            raise ValueError("word must not be empty")  # the broker rejects the version

    def keep(self, event, info):
        return event.value is not None and self.word in event.value


# componentize-py calls this class; the SDK decodes each batch and calls `keep`.
WitWorld = weir.export(Plugin)
