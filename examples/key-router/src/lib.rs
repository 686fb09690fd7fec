//! Tutorial 3: a router. Sends each event to `<prefix><first letter of its key>`, and
//! events without a key to `fallback`.

use weir_sdk::{BatchInfo, Event, Result, Router, Routes};

/// `[config]`.
#[derive(serde::Deserialize)]
pub struct Config {
    prefix: String,
    fallback: String,
}

/// The router.
pub struct KeyRouter {
    config: Config,
}

impl Router for KeyRouter {
    type Config = Config;

    fn init(config: Config) -> std::result::Result<Self, String> {
        Ok(KeyRouter { config })
    }

    fn route(&self, event: &Event<'_>, _info: &BatchInfo, routes: &mut Routes) -> Result<()> {
        match event.key_str().and_then(|k| k.chars().next()) {
            Some(c) if c.is_ascii_alphanumeric() => {
                routes.to(format!("{}{}", self.config.prefix, c.to_ascii_lowercase()))
            }
            _ => routes.to(self.config.fallback.clone()),
        }
        Ok(())
    }
}

weir_sdk::export_router!(KeyRouter);

#[cfg(test)]
mod tests {
    use super::*;
    use weir_sdk::testing::{run_router, TestEvent};

    #[test]
    fn routes_by_first_letter() {
        let events = [
            TestEvent::json(serde_json::json!(1)).key("Alice"),
            TestEvent::json(serde_json::json!(2)),
        ];
        let got = run_router::<KeyRouter>(
            serde_json::json!({"prefix": "users-", "fallback": "users-other"}),
            "users",
            &events,
        )
        .unwrap();
        assert_eq!(got[0].topic, "users-a");
        assert_eq!(got[1].topic, "users-other");
    }
}
