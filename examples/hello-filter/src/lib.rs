//! Tutorial 1: the smallest useful filter. Keeps events whose value contains a word
//! (`word` in the `[config]` of `plugin.toml`, beside this crate).

use weir_sdk::{Event, Filter, Result};

/// `[config]` of plugin.toml, deserialised for us by the SDK.
#[derive(serde::Deserialize)]
pub struct Config {
    word: String,
}

/// The plugin's state: built once by `init`, used for every event.
pub struct HelloFilter {
    word: String,
}

impl Filter for HelloFilter {
    type Config = Config;

    fn init(config: Config) -> std::result::Result<Self, String> {
        if config.word.is_empty() {
            return Err("word must not be empty".into()); // the broker rejects the plugin
        }
        Ok(HelloFilter { word: config.word })
    }

    fn keep(&self, event: &Event<'_>) -> Result<bool> {
        Ok(event.value_str().is_some_and(|v| v.contains(&self.word)))
    }
}

// One line registers the plugin: the SDK loops over each batch and calls `keep`.
weir_sdk::export_filter!(HelloFilter);

#[cfg(test)]
mod tests {
    use super::*;
    use weir_sdk::testing::{run_filter, TestEvent};

    #[test]
    fn keeps_only_matching_events() {
        let events = [
            TestEvent::json(serde_json::json!("hello world")),
            TestEvent::json(serde_json::json!("bye")),
        ];
        let kept =
            run_filter::<HelloFilter>(serde_json::json!({"word": "hello"}), &events).unwrap();
        assert_eq!(kept, [true, false]);
    }
}
