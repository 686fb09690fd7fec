//! A Weir transform plugin: adds a header to every event.

use weir_sdk::{Event, Output, Result, Transform};

/// The `[config]` table of plugin.toml.
#[derive(serde::Deserialize)]
pub struct Config {
    header: String,
}

/// The plugin.
pub struct Plugin {
    header: String,
}

impl Transform for Plugin {
    type Config = Config;

    fn init(config: Config) -> std::result::Result<Self, String> {
        Ok(Plugin { header: config.header })
    }

    fn transform(&self, event: &Event<'_>, out: &mut Output) -> Result<()> {
        let mut headers: Vec<(&str, &[u8])> = event.headers().collect();
        headers.push((self.header.as_str(), b"yes"));
        out.emit(event.key, event.value, event.value_is_json(), headers, event.timestamp_ms);
        Ok(())
    }
}

weir_sdk::export_transform!(Plugin);
