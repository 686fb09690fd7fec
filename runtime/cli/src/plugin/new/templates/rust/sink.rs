//! A Weir sink plugin: logs every event it is handed, with its offset. A real sink
//! writes to a system granted in plugin.toml (`[grants] http` or `dirs`) through
//! `weir_sdk::connector::http` or `files`.

use weir_sdk::connector::{event_json, Delivery, Sink};
use weir_sdk::{log, Event, Result};

/// The `[config]` table of plugin.toml.
#[derive(serde::Deserialize)]
pub struct Config {
    prefix: String,
}

/// The plugin.
pub struct Plugin {
    prefix: String,
}

impl Sink for Plugin {
    type Config = Config;

    fn init(config: Config) -> std::result::Result<Self, String> {
        Ok(Plugin { prefix: config.prefix })
    }

    fn write(&mut self, batch: &Delivery, events: &[Event<'_>]) -> Result<()> {
        for (i, e) in events.iter().enumerate() {
            log::info(&format!("{} {}", self.prefix, event_json(batch, i, e)));
        }
        Ok(())
    }
}

weir_sdk::export_sink!(Plugin);
