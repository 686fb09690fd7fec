//! header-router: picks the destination topic from a header.

use std::collections::HashMap;

use serde::Deserialize;
use weir_sdk::{BatchInfo, Event, Result, Router, Routes};

/// The plugin's `[config]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    header: String,
    #[serde(default)]
    routes: HashMap<String, String>,
    default: Option<String>,
}

/// The router.
pub struct HeaderRouter {
    config: Config,
}

impl Router for HeaderRouter {
    type Config = Config;

    fn init(config: Config) -> std::result::Result<Self, String> {
        if config.header.is_empty() {
            return Err("header must not be empty".into());
        }
        if config.routes.is_empty() && config.default.is_none() {
            return Err("give routes, a default, or both".into());
        }
        Ok(HeaderRouter { config })
    }

    fn route(&self, event: &Event<'_>, _info: &BatchInfo, routes: &mut Routes) -> Result<()> {
        let value = event
            .header(&self.config.header)
            .and_then(|v| std::str::from_utf8(v).ok());
        match value
            .and_then(|v| self.config.routes.get(v))
            .or(self.config.default.as_ref())
        {
            Some(topic) => routes.to(topic.clone()),
            None => {}
        }
        Ok(())
    }
}

weir_sdk::export_router!(HeaderRouter);

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use weir_sdk::testing::{run_router, TestEvent};

    #[test]
    fn routes_by_header() {
        let events = [
            TestEvent::json(json!(1)).header("region", "eu"),
            TestEvent::json(json!(2)).header("region", "mars"),
            TestEvent::json(json!(3)),
        ];
        let config = json!({"header": "region", "routes": {"eu": "t-eu"}, "default": "t-other"});
        let got = run_router::<HeaderRouter>(config, "in", &events).unwrap();
        let topics: Vec<_> = got.iter().map(|r| (r.event, r.topic.as_str())).collect();
        assert_eq!(topics, [(0, "t-eu"), (1, "t-other"), (2, "t-other")]);
    }
}
