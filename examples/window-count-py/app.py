"""Counts events per key and window; emits {"key","count","start","end"} once per
window, when it closes. With ``time_field`` in [config] (and ``event_time =
"plugin"`` in [processor]) the event time is that top-level field of the JSON value."""

import json

import weir_plugin as weir


class WindowCount(weir.Processor):
    def init(self, config):
        self.output = config["output"]
        self.time_field = config.get("time_field")

    def event_time(self, event):
        if self.time_field is None:
            return None
        try:
            return int(json.loads(event.value)[self.time_field])
        except (TypeError, ValueError, KeyError) as e:
            raise weir.BadInput(f"no whole-number {self.time_field}: {e}") from None

    def process(self, input, ctx):
        key = input.event.key or b""
        for w in input.windows:
            n = 1 + sum(weir.keyed.take(m.state_key(key)) for m in input.merged)
            weir.keyed.add(w.state_key(key), n)

    def close(self, key, window, ctx):
        count = weir.keyed.take(window.state_key(key))
        value = {"key": key.decode(errors="replace"), "count": count,
                 "start": window.start_ms, "end": window.end_ms}
        ctx.emit(self.output, value, key=key, window=window)


WitWorld = weir.export(WindowCount)
