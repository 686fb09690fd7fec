//! generator: a source of synthetic events at a steady rate, for demos, load tests
//! and benchmarks. Event `s` is `{"seq":s,"ts":<poll time>,"key":"k<s % keys>",
//! "payload":"xxx…"}` with key `k<s % keys>`, due `s * 1000 / rate` ms after the
//! first poll.
//!
//! Guests have no clock: the broker's time comes with every poll (`now_ms`). The
//! state holds the first poll's time (`start_ms`) and the next sequence number
//! (`seq`); the number of events due is computed from them, not accumulated, so the
//! rate never drifts. After a pause (broker down, topic full) the generator catches
//! up, `max` events per poll, until it is on schedule again; `total` caps the events
//! it ever produces.

use serde::Deserialize;
use weir_sdk::connector::{Emitted, PollInfo, Source};
use weir_sdk::{state, Error, Result};

const SEQ: &[u8] = b"seq";
const START_MS: &[u8] = b"start_ms";
const MAX_PAYLOAD_BYTES: usize = 16 * 1024 * 1024;

/// The plugin's `[config]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Events per second.
    #[serde(default = "default_rate")]
    rate: u32,
    /// Number of distinct keys.
    #[serde(default = "default_keys")]
    keys: u32,
    /// Length of the filler `payload` string.
    #[serde(default = "default_payload_bytes")]
    payload_bytes: usize,
    /// Most events ever produced (unbounded when absent).
    #[serde(default)]
    total: Option<u64>,
}

fn default_rate() -> u32 {
    10
}

fn default_keys() -> u32 {
    16
}

fn default_payload_bytes() -> usize {
    64
}

/// The source.
#[derive(Debug)]
pub struct Generator {
    rate: u32,
    keys: u32,
    payload: String,
    total: u64,
}

impl Source for Generator {
    type Config = Config;

    fn init(config: Config) -> std::result::Result<Self, String> {
        if config.rate == 0 || config.keys == 0 {
            return Err("rate and keys must be greater than 0".into());
        }
        if config.payload_bytes > MAX_PAYLOAD_BYTES {
            return Err(format!("payload_bytes must be at most {MAX_PAYLOAD_BYTES}"));
        }
        Ok(Generator {
            rate: config.rate,
            keys: config.keys,
            payload: "x".repeat(config.payload_bytes),
            total: config.total.unwrap_or(u64::MAX),
        })
    }

    fn poll(&mut self, info: &PollInfo, out: &mut Emitted) -> Result<()> {
        let seq = read(SEQ)?.unwrap_or(0);
        let start = match read(START_MS)? {
            Some(start) => start,
            None => {
                state::set(START_MS, info.now_ms.to_string().as_bytes());
                info.now_ms
            }
        };
        let n = due(start, info.now_ms, self.rate)
            .saturating_sub(seq)
            .min(u64::from(info.max))
            .min(self.total.saturating_sub(seq));
        for s in seq..seq + n {
            let key = format!("k{}", s % u64::from(self.keys));
            let value = format!(
                r#"{{"seq":{s},"ts":{},"key":"{key}","payload":"{}"}}"#,
                info.now_ms, self.payload
            );
            out.json(Some(key.as_bytes()), value.as_bytes());
        }
        if n > 0 {
            state::set(SEQ, (seq + n).to_string().as_bytes());
        }
        Ok(())
    }
}

/// How many events are due by `now` since `start`: event `s` is due at
/// `start + s * 1000 / rate` (integer division), so it is the count of `s` with
/// `s * 1000 < (now - start + 1) * rate`.
fn due(start: i64, now: i64, rate: u32) -> u64 {
    if now < start {
        return 0;
    }
    let elapsed = (i128::from(now) - i128::from(start) + 1) as u128;
    let count = (elapsed * u128::from(rate)).div_ceil(1000);
    u64::try_from(count).unwrap_or(u64::MAX)
}

/// A number saved in the state.
fn read<T: std::str::FromStr>(key: &[u8]) -> Result<Option<T>> {
    state::get(key)
        .map(|v| {
            std::str::from_utf8(&v)
                .ok()
                .and_then(|s| s.parse().ok())
                .ok_or_else(|| {
                    Error::Failed(format!(
                        "state {} is not a number",
                        String::from_utf8_lossy(key)
                    ))
                })
        })
        .transpose()
}

weir_sdk::export_source!(Generator);

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{json, Value};
    use weir_sdk::connector::testing;

    fn poll(g: &mut Generator, now_ms: i64, max: u32) -> Vec<Value> {
        let info = PollInfo {
            topic: "t".into(),
            partitions: 1,
            max,
            now_ms,
        };
        testing::poll(g, &info)
            .unwrap()
            .into_iter()
            .map(|e| {
                let v: Value = serde_json::from_slice(e.value.as_deref().unwrap()).unwrap();
                assert!(e.json);
                assert_eq!(
                    e.key.as_deref(),
                    Some(v["key"].as_str().unwrap().as_bytes())
                );
                v
            })
            .collect()
    }

    fn seqs(events: &[Value]) -> Vec<u64> {
        events.iter().map(|v| v["seq"].as_u64().unwrap()).collect()
    }

    #[test]
    fn due_counts_events_without_drift() {
        assert_eq!(due(1000, 1000, 10), 1);
        assert_eq!(due(1000, 1099, 10), 1);
        assert_eq!(due(1000, 1100, 10), 2);
        assert_eq!(due(1000, 999, 10), 0);
        assert_eq!(due(0, 3_600_000, 3), 10_801);
        // 3 per second: due at 0, 333, 666, 1000 ms.
        assert_eq!(
            [332, 333, 666, 999, 1000].map(|t| due(0, t, 3)),
            [1, 2, 3, 3, 4]
        );
        assert_eq!(due(i64::MIN, i64::MAX, u32::MAX), u64::MAX);
    }

    #[test]
    fn emits_at_the_rate_and_keeps_its_place_in_state() {
        let mut g =
            testing::source::<Generator>(json!({"rate": 10, "keys": 3, "payload_bytes": 5}))
                .unwrap();
        let first = poll(&mut g, 5000, 100);
        assert_eq!(
            first,
            [json!({"seq": 0, "ts": 5000, "key": "k0", "payload": "xxxxx"})]
        );
        assert!(poll(&mut g, 5099, 100).is_empty());
        assert_eq!(seqs(&poll(&mut g, 5350, 100)), [1, 2, 3]);
        assert_eq!(poll(&mut g, 5350, 100).len(), 0);
        // Catching up after a pause, at most `max` per poll.
        let caught = poll(&mut g, 6350, 4);
        assert_eq!(seqs(&caught), [4, 5, 6, 7]);
        assert_eq!(caught[3]["key"], "k1");
        assert_eq!(seqs(&poll(&mut g, 6350, 100)), [8, 9, 10, 11, 12, 13]);
        // A new instance (a restart) continues from the state.
        let mut g =
            testing::source::<Generator>(json!({"rate": 10, "keys": 3, "payload_bytes": 5}))
                .unwrap();
        assert_eq!(seqs(&poll(&mut g, 6450, 100)), [14]);
        assert_eq!(state::get(SEQ).unwrap(), b"15");
        assert_eq!(state::get(START_MS).unwrap(), b"5000");
    }

    #[test]
    fn total_caps_everything_ever_produced() {
        let mut g = testing::source::<Generator>(json!({"rate": 1000, "total": 5})).unwrap();
        assert_eq!(poll(&mut g, 0, 3).len(), 1);
        assert_eq!(poll(&mut g, 100, 3).len(), 3);
        assert_eq!(poll(&mut g, 200, 3).len(), 1);
        assert!(poll(&mut g, 10_000, 3).is_empty());
    }

    #[test]
    fn config_is_checked() {
        assert!(testing::source::<Generator>(json!({"rate": 0})).is_err());
        assert!(testing::source::<Generator>(json!({"keys": 0})).is_err());
        assert!(testing::source::<Generator>(json!({"payload_bytes": 1usize << 30})).is_err());
        assert!(testing::source::<Generator>(json!({"rate": 1.5})).is_err());
        let g = testing::source::<Generator>(json!({})).unwrap();
        assert_eq!(
            (g.rate, g.keys, g.payload.len(), g.total),
            (10, 16, 64, u64::MAX)
        );
    }
}
