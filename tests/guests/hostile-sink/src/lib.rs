//! A sink that misbehaves on request, by each event's value: one containing `trap`
//! panics (a trap), `loop` never returns, `fail` returns a retryable error. Anything
//! else is accepted. With config `dir`, every batch accepted whole is appended to
//! `<dir>/delivered.ndjson` (one `event_json` line per event), so tests can see
//! exactly what was delivered, and how often.

use weir_sdk::connector::{event_json, files, Delivery, Sink};
use weir_sdk::{Error, Event, Result};

/// Where to record deliveries, if anywhere.
#[derive(serde::Deserialize)]
pub struct Config {
    #[serde(default)]
    dir: Option<String>,
}

/// The sink.
pub struct HostileSink {
    dir: Option<String>,
}

impl Sink for HostileSink {
    type Config = Config;

    fn init(config: Config) -> std::result::Result<Self, String> {
        if let Some(dir) = &config.dir {
            files::create_dir(dir)?;
        }
        Ok(HostileSink { dir: config.dir })
    }

    fn write(&mut self, batch: &Delivery, events: &[Event<'_>]) -> Result<()> {
        for e in events {
            let text = String::from_utf8_lossy(e.value.unwrap_or_default());
            if text.contains("trap") {
                panic!("the sink traps on purpose");
            }
            if text.contains("loop") {
                let mut n: u64 = 0;
                loop {
                    n = std::hint::black_box(n.wrapping_add(1));
                }
            }
            if text.contains("fail") {
                return Err(Error::Failed("asked to fail".into()));
            }
        }
        if let Some(dir) = &self.dir {
            let mut lines = String::new();
            for (i, e) in events.iter().enumerate() {
                lines.push_str(&event_json(batch, i, e));
                lines.push('\n');
            }
            files::append(&format!("{dir}/delivered.ndjson"), lines.as_bytes())
                .map_err(Error::Failed)?;
        }
        Ok(())
    }
}

weir_sdk::export_sink!(HostileSink);
