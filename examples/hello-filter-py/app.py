"""Tutorial 1 in Python: keeps events whose value contains a word (`word` in the
`[config]` of plugin.toml). Build with `weir plugin build`, test natively with
`python3 test_app.py`."""

import weir_plugin as weir


class HelloFilter(weir.Filter):
    def init(self, config):
        self.word = config.get("word", "")
        if not self.word:
            raise ValueError("word must not be empty")  # the broker rejects the plugin
        self.needle = self.word.encode()
        print(f"hello-filter-py keeps events containing {self.word!r}")

    def keep(self, event, info):
        return event.value is not None and self.needle in event.value


# componentize-py calls this class; the SDK loops over each batch and calls `keep`.
WitWorld = weir.export(HelloFilter)
