//! Tutorial 2: a transform. Upper-cases text values and adds a header; drops empty
//! values; and with `twice = true` emits every event two times (fan-out).

use weir_sdk::{Event, Output, Result, Transform};

/// `[config]`.
#[derive(serde::Deserialize, Default)]
#[serde(default)]
pub struct Config {
    twice: bool,
}

/// The transform.
pub struct Shout {
    twice: bool,
}

impl Transform for Shout {
    type Config = Config;

    fn init(config: Config) -> std::result::Result<Self, String> {
        Ok(Shout {
            twice: config.twice,
        })
    }

    fn transform(&self, event: &Event<'_>, out: &mut Output) -> Result<()> {
        let Some(text) = event.value_str() else {
            out.keep(event); // binary values pass through untouched
            return Ok(());
        };
        if text.is_empty() || text == "\"\"" {
            return Ok(()); // zero outputs: the event is dropped
        }
        let loud = text.to_uppercase();
        let mut headers: Vec<(&str, &[u8])> = event.headers().collect();
        headers.push(("shouted", b"yes"));
        for _ in 0..if self.twice { 2 } else { 1 } {
            out.emit(
                event.key,
                Some(loud.as_bytes()),
                event.value_is_json(),
                headers.iter().copied(),
                event.timestamp_ms,
            );
        }
        Ok(())
    }
}

weir_sdk::export_transform!(Shout);

#[cfg(test)]
mod tests {
    use super::*;
    use weir_sdk::testing::{run_transform, TestEvent};

    #[test]
    fn shouts_drops_and_fans_out() {
        let events = [
            TestEvent::json(serde_json::json!("hi")),
            TestEvent::json(serde_json::json!("")),
        ];
        let out = run_transform::<Shout>(serde_json::json!({"twice": true}), &events).unwrap();
        assert_eq!(out[0].len(), 2);
        assert_eq!(out[0][0].value.as_deref(), Some(b"\"HI\"".as_slice()));
        assert!(out[1].is_empty());
    }
}
