//! Passes on the first event of each id within `window_ms` and drops the repeats.
//!
//! The state holds one key per id seen in the window, each with a timer that deletes
//! it when the window is over, so the state stays as large as the window's distinct
//! ids. Events are partitioned by key: give repeats the same key (or one partition).

use serde::Deserialize;
use weir_sdk::json::Pointer;
use weir_sdk::processor::{state, Context, Emit, Input, Processor};
use weir_sdk::{Error, Result};

/// The processor.
pub struct Dedup {
    field: Pointer,
    output: String,
    window_ms: i64,
}

/// `[config]`.
#[derive(Deserialize)]
pub struct Config {
    /// JSON pointer to the id in the value.
    field: String,
    /// The topic first sightings go to.
    output: String,
    /// How long an id is remembered (ms).
    window_ms: i64,
}

fn seen_key(id: &str) -> Vec<u8> {
    [b"seen/", id.as_bytes()].concat()
}

impl Processor for Dedup {
    type Config = Config;

    fn init(config: Config) -> std::result::Result<Self, String> {
        if config.window_ms <= 0 {
            return Err("window_ms must be positive".into());
        }
        Ok(Dedup {
            field: Pointer::parse(&config.field)?,
            output: config.output,
            window_ms: config.window_ms,
        })
    }

    fn process(&mut self, input: &Input<'_>, ctx: &mut Context) -> Result<()> {
        let event = input.event;
        let value = event.value.unwrap_or_default();
        let id = self
            .field
            .find(value)
            .map_err(|e| Error::BadInput(format!("the value is not JSON: {e}")))?
            .ok_or_else(|| Error::BadInput("the event has no id field".into()))?;
        let key = seen_key(id);
        if state::get(&key).is_some() {
            return Ok(());
        }
        state::put(&key, b"");
        state::set_timer(&key, ctx.info().now_ms + self.window_ms);
        ctx.push(Emit {
            topic: self.output.clone(),
            key: event.key.map(<[u8]>::to_vec),
            value: event.value.map(<[u8]>::to_vec),
            json: event.value_is_json(),
            headers: event
                .headers()
                .map(|(n, v)| (n.to_string(), v.to_vec()))
                .collect(),
            window: None,
        });
        Ok(())
    }

    fn fire(&mut self, key: &[u8], _ctx: &mut Context) -> Result<()> {
        state::delete(key);
        Ok(())
    }
}

weir_sdk::export_processor!(Dedup);

#[cfg(test)]
mod tests {
    use weir_sdk::processor::testing;
    use weir_sdk::testing::TestEvent;

    use super::*;

    #[test]
    fn repeats_are_dropped_until_the_timer_forgets_the_id() {
        let config = serde_json::json!({"field": "/id", "output": "out", "window_ms": 1000});
        let mut p: Dedup = testing::processor(config).unwrap();
        let e = |id: &str| (TestEvent::json(serde_json::json!({ "id": id })), 0, vec![]);
        let out = testing::process(&mut p, "in", &[e("1"), e("2"), e("1")]).unwrap();
        assert_eq!(out.len(), 2);
        assert_eq!(testing::timers().len(), 2);
        p.fire(&seen_key("\"1\""), &mut Context::default()).unwrap();
        let out = testing::process(&mut p, "in", &[e("1")]).unwrap();
        assert_eq!(out.len(), 1, "forgotten after the window");
        let missing = (TestEvent::json(serde_json::json!({})), 0, vec![]);
        assert!(testing::process(&mut p, "in", &[missing]).is_err());
    }
}
