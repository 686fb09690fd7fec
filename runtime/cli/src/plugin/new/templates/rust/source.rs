//! A Weir source plugin: publishes `{"n": 0}`, `{"n": 1}`, ... up to `count` events.
//! Its position lives in state and is read at the start of every poll: the broker
//! commits what a poll writes there together with the events it returns.

use weir_sdk::connector::{Emitted, PollInfo, Source};
use weir_sdk::{state, Result};

/// The `[config]` table of plugin.toml.
#[derive(serde::Deserialize)]
pub struct Config {
    count: u64,
}

/// The plugin.
pub struct Plugin {
    count: u64,
}

impl Source for Plugin {
    type Config = Config;

    fn init(config: Config) -> std::result::Result<Self, String> {
        Ok(Plugin { count: config.count })
    }

    fn poll(&mut self, info: &PollInfo, out: &mut Emitted) -> Result<()> {
        let next = state::get(b"next")
            .and_then(|v| String::from_utf8(v).ok()?.parse::<u64>().ok())
            .unwrap_or(0);
        let end = self.count.min(next + u64::from(info.max));
        for n in next..end {
            out.json(None, format!("{{\"n\":{n}}}").as_bytes());
        }
        state::set(b"next", end.to_string().as_bytes());
        Ok(())
    }
}

weir_sdk::export_source!(Plugin);
