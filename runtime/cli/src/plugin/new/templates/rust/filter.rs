//! A Weir filter plugin: keeps the events whose value contains `word`.

use weir_sdk::{Event, Filter, Result};

/// The `[config]` table of plugin.toml.
#[derive(serde::Deserialize)]
pub struct Config {
    word: String,
}

/// The plugin, built once by `init` and used for every event.
pub struct Plugin {
    word: String,
}

impl Filter for Plugin {
    type Config = Config;

    fn init(config: Config) -> std::result::Result<Self, String> {
        Ok(Plugin { word: config.word })
    }

    fn keep(&self, event: &Event<'_>) -> Result<bool> {
        Ok(event.value_str().is_some_and(|v| v.contains(&self.word)))
    }
}

weir_sdk::export_filter!(Plugin);

#[cfg(test)]
mod tests {
    use super::*;
    use weir_sdk::testing::{run_filter, TestEvent};

    #[test]
    fn keeps_matching_events() {
        let events = [TestEvent::json(serde_json::json!("hello")), TestEvent::json(serde_json::json!("bye"))];
        assert_eq!(run_filter::<Plugin>(serde_json::json!({"word": "hello"}), &events).unwrap(), [true, false]);
    }
}
