//! Counts events per key and window, and emits `{"key","count","start","end"}` once
//! per window, when it closes.
//!
//! State: one 8-byte counter per (window, key), deleted when the window closes, so
//! the state holds only the open windows. Session windows work too: the counts of the
//! sessions an event merges move into its window.
//!
//! Event time is the record's timestamp, or with `time_field` (a JSON pointer) and
//! `event_time = "plugin"` in `[processor]`, a number of milliseconds in the value.

use serde::Deserialize;
use weir_sdk::json::Pointer;
use weir_sdk::processor::{state, Context, Emit, Input, Processor, Window};
use weir_sdk::{Error, Event, Result};

/// The processor.
pub struct WindowCount {
    output: String,
    time_field: Option<Pointer>,
}

/// `[config]`.
#[derive(Deserialize)]
pub struct Config {
    /// The topic the counts go to.
    output: String,
    /// Where the event time is in the value (ms since the epoch), if not the
    /// record's timestamp.
    #[serde(default)]
    time_field: Option<String>,
}

impl Processor for WindowCount {
    type Config = Config;

    fn init(config: Config) -> std::result::Result<Self, String> {
        Ok(WindowCount {
            output: config.output,
            time_field: config
                .time_field
                .as_deref()
                .map(Pointer::parse)
                .transpose()?,
        })
    }

    fn event_time(&self, event: &Event<'_>) -> Result<Option<i64>> {
        let Some(field) = &self.time_field else {
            return Ok(None);
        };
        let value = event.value.unwrap_or_default();
        let raw = field
            .find(value)
            .map_err(|e| Error::BadInput(format!("the value is not JSON: {e}")))?
            .ok_or_else(|| Error::BadInput("the event has no time field".into()))?;
        raw.parse()
            .map(Some)
            .map_err(|_| Error::BadInput(format!("the time field is not a whole number: {raw}")))
    }

    fn process(&mut self, input: &Input<'_>, _ctx: &mut Context) -> Result<()> {
        let key = input.event.key.unwrap_or_default();
        for w in input.windows {
            let mut n = 1;
            for merged in input.merged {
                n += state::take(&merged.state_key(key));
            }
            state::add(&w.state_key(key), n);
        }
        Ok(())
    }

    fn close(&mut self, key: &[u8], window: Window, ctx: &mut Context) -> Result<()> {
        let count = state::take(&window.state_key(key));
        let value = serde_json::json!({
            "key": String::from_utf8_lossy(key),
            "count": count,
            "start": window.start_ms,
            "end": window.end_ms,
        });
        ctx.push(
            Emit::json(&self.output, value.to_string())
                .key(key)
                .window(window),
        );
        Ok(())
    }
}

weir_sdk::export_processor!(WindowCount);

#[cfg(test)]
mod tests {
    use weir_sdk::processor::testing;
    use weir_sdk::testing::TestEvent;

    use super::*;

    #[test]
    fn counts_per_key_and_window_and_emits_on_close() {
        let mut p: WindowCount =
            testing::processor(serde_json::json!({"output": "counts"})).unwrap();
        let w = Window {
            start_ms: 0,
            end_ms: 60_000,
        };
        let a = TestEvent::default().key("a");
        let b = TestEvent::default().key("b");
        let batch = [(a.clone(), 1, vec![w]), (b, 2, vec![w]), (a, 3, vec![w])];
        assert!(testing::process(&mut p, "clicks", &batch)
            .unwrap()
            .is_empty());
        let out = testing::close(&mut p, "clicks", &[(b"a".to_vec(), w)]).unwrap();
        let value: serde_json::Value =
            serde_json::from_slice(out[0].value.as_ref().unwrap()).unwrap();
        assert_eq!(value["count"], 2);
        assert_eq!(out[0].window, Some(w));
        assert_eq!(
            state::counter(&w.state_key(b"a")),
            0,
            "closed windows leave no state"
        );
    }
}
