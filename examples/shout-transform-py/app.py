"""Tutorial 2 in Python: upper-cases text values and adds a `shouted` header; drops
empty values; with `twice = true` emits every event two times (fan-out)."""

import weir_plugin as weir


class Shout(weir.Transform):
    def init(self, config):
        self.copies = 2 if config.get("twice") else 1

    def transform(self, event, info):
        text = event.value_str()
        if text is None:
            return event  # binary values pass through untouched
        if text in ("", '""'):
            return None  # zero outputs: the event is dropped
        loud = event.replace(value=text.upper().encode(), headers=event.headers + [("shouted", b"yes")])
        return [loud] * self.copies


WitWorld = weir.export(Shout)
