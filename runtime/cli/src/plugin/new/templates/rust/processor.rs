//! A Weir processor plugin: counts events per key in the windows of plugin.toml's
//! `[processor]` and emits each window's count to `output` once, when it closes.

use weir_sdk::processor::{state, Context, Emit, Input, Processor, Window};
use weir_sdk::Result;

/// The `[config]` table of plugin.toml.
#[derive(serde::Deserialize)]
pub struct Config {
    output: String,
}

/// The plugin; its state lives in the broker (`state`), not in these fields.
pub struct Plugin {
    output: String,
}

impl Processor for Plugin {
    type Config = Config;

    fn init(config: Config) -> std::result::Result<Self, String> {
        Ok(Plugin {
            output: config.output,
        })
    }

    fn process(&mut self, input: &Input<'_>, _ctx: &mut Context) -> Result<()> {
        let key = input.event.key.unwrap_or_default();
        for w in input.windows {
            state::add(&w.state_key(key), 1);
        }
        Ok(())
    }

    fn close(&mut self, key: &[u8], window: Window, ctx: &mut Context) -> Result<()> {
        let count = state::take(&window.state_key(key));
        let value = format!("{{\"count\":{count}}}");
        ctx.push(Emit::json(&self.output, value).key(key).window(window));
        Ok(())
    }
}

weir_sdk::export_processor!(Plugin);

#[cfg(test)]
mod tests {
    use super::*;
    use weir_sdk::processor::testing;
    use weir_sdk::testing::TestEvent;

    #[test]
    fn counts_per_window() {
        let mut p: Plugin = testing::processor(serde_json::json!({"output": "counts"})).unwrap();
        let w = Window { start_ms: 0, end_ms: 60_000 };
        let e = TestEvent::default().key("a");
        testing::process(&mut p, "events", &[(e.clone(), 1, vec![w]), (e, 2, vec![w])]).unwrap();
        let out = testing::close(&mut p, "events", &[(b"a".to_vec(), w)]).unwrap();
        assert_eq!(out[0].value.as_deref(), Some(&b"{\"count\":2}"[..]));
    }
}
