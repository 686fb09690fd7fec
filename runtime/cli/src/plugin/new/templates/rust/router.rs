//! A Weir router plugin: sends each event to `<prefix><topic>`.

use weir_sdk::{BatchInfo, Event, Result, Router, Routes};

/// The `[config]` table of plugin.toml.
#[derive(serde::Deserialize)]
pub struct Config {
    prefix: String,
}

/// The plugin.
pub struct Plugin {
    prefix: String,
}

impl Router for Plugin {
    type Config = Config;

    fn init(config: Config) -> std::result::Result<Self, String> {
        Ok(Plugin { prefix: config.prefix })
    }

    fn route(&self, _event: &Event<'_>, info: &BatchInfo, routes: &mut Routes) -> Result<()> {
        routes.to(format!("{}{}", self.prefix, info.topic));
        Ok(())
    }
}

weir_sdk::export_router!(Plugin);
