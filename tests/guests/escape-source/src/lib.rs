//! A source that tries to escape its grants: on its first poll it GETs `url` and
//! reads the first 100 bytes of `path`, and emits one JSON event saying what
//! happened, `{"http": "ok <status>" | <error>, "file": "ok <bytes read>" | <error>}`.
//! Granted nothing, both errors must start with `capability_denied`. It then marks
//! itself done in its state and emits nothing more.

use weir_sdk::connector::{files, http, Emitted, PollInfo, Source};
use weir_sdk::{state, Result};

/// What to try to reach.
#[derive(serde::Deserialize)]
pub struct Config {
    url: String,
    path: String,
}

/// The source.
pub struct EscapeSource {
    url: String,
    path: String,
}

impl Source for EscapeSource {
    type Config = Config;

    fn init(config: Config) -> std::result::Result<Self, String> {
        Ok(EscapeSource {
            url: config.url,
            path: config.path,
        })
    }

    fn poll(&mut self, _info: &PollInfo, out: &mut Emitted) -> Result<()> {
        if state::get(b"done").is_some() {
            return Ok(());
        }
        let http = match http::send(&http::Request::get(&self.url)) {
            Ok(r) => format!("ok {}", r.status),
            Err(e) => e,
        };
        let file = match files::read_at(&self.path, 0, 100) {
            Ok(bytes) => format!("ok {}", bytes.len()),
            Err(e) => e,
        };
        let report = serde_json::json!({ "http": http, "file": file });
        out.json(None, report.to_string().as_bytes());
        state::set(b"done", b"1");
        Ok(())
    }
}

weir_sdk::export_source!(EscapeSource);
