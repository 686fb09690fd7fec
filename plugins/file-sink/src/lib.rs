//! file-sink: Weir's first-party file sink. Appends every event it is handed to a
//! newline-delimited JSON file per topic partition, `<dir>/<topic>-<partition>.ndjson`,
//! one [`event_json`] object per line, and makes each batch durable (fsync) before
//! the broker commits its offsets. When a file reaches `max_file_bytes` it is renamed
//! to `<topic>-<partition>.<n>.ndjson` (n counting up from 1) and a fresh one starts.
//!
//! Delivery is at least once: after a failure (a full disk, a failed fsync) the broker
//! retries the batch, so a line may appear twice; its `offset` field tells them apart.

use serde::Deserialize;
use weir_sdk::connector::{event_json, files, Delivery, Sink};
use weir_sdk::{log, Error, Event, Result};

/// The plugin's `[config]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// The directory the files go to (absolute, granted in `[grants] dirs`).
    dir: String,
    /// Size at which a file is rotated.
    #[serde(default = "default_max_file_bytes")]
    max_file_bytes: u64,
    /// The only format: newline-delimited JSON.
    #[serde(default)]
    format: Format,
}

fn default_max_file_bytes() -> u64 {
    64 * 1024 * 1024
}

/// Output formats.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Format {
    /// One JSON object per line.
    #[default]
    Ndjson,
}

/// The sink.
#[derive(Debug)]
pub struct FileSink {
    dir: String,
    max_file_bytes: u64,
}

impl Sink for FileSink {
    type Config = Config;

    fn init(config: Config) -> std::result::Result<Self, String> {
        if !config.dir.starts_with('/') {
            return Err(format!("dir '{}' must be an absolute path", config.dir));
        }
        let Format::Ndjson = config.format;
        if config.max_file_bytes == 0 {
            return Err("max_file_bytes must be greater than 0".into());
        }
        let dir = config.dir.trim_end_matches('/').to_string();
        let dir = if dir.is_empty() { "/".into() } else { dir };
        files::create_dir(&dir).map_err(|e| format!("cannot create {dir}: {e}"))?;
        Ok(FileSink {
            dir,
            max_file_bytes: config.max_file_bytes,
        })
    }

    fn write(&mut self, batch: &Delivery, events: &[Event<'_>]) -> Result<()> {
        if events.is_empty() {
            return Ok(());
        }
        let mut buf = String::new();
        for (i, e) in events.iter().enumerate() {
            buf.push_str(&event_json(batch, i, e));
            buf.push('\n');
        }
        let stem = format!("{}-{}", batch.topic, batch.partition);
        let path = format!("{}/{stem}.ndjson", self.dir);
        let failed = |e: String| Error::Failed(format!("{path}: {e}"));
        let size = files::append(&path, buf.as_bytes()).map_err(failed)?;
        files::sync(&path).map_err(failed)?;
        if size >= self.max_file_bytes {
            // The batch is already durable: a failed rotation must not fail it (a
            // retry would write it twice). The next write tries again.
            if let Err(e) = self.rotate(&stem, &path) {
                log::warn(&format!("cannot rotate {path}: {e}"));
            }
        }
        Ok(())
    }
}

impl FileSink {
    /// Renames the full file to the next free `<stem>.<n>.ndjson`.
    fn rotate(&self, stem: &str, path: &str) -> std::result::Result<(), String> {
        let entries = files::list_dir(&self.dir)?;
        let n = next_index(stem, entries.iter().map(|e| e.name.as_str()));
        files::rename(path, &format!("{}/{stem}.{n}.ndjson", self.dir))
    }
}

/// One more than the largest `n` of the `<stem>.<n>.ndjson` names, 1 when none.
fn next_index<'a>(stem: &str, names: impl Iterator<Item = &'a str>) -> u64 {
    names
        .filter_map(|name| {
            let n = name
                .strip_prefix(stem)?
                .strip_prefix('.')?
                .strip_suffix(".ndjson")?;
            if n.bytes().all(|b| b.is_ascii_digit()) {
                n.parse::<u64>().ok()
            } else {
                None
            }
        })
        .max()
        .map_or(1, |n| n + 1)
}

weir_sdk::export_sink!(FileSink);

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{json, Value};
    use weir_sdk::connector::testing;
    use weir_sdk::testing::TestEvent;

    /// A fresh directory removed when the guard drops, and its path as the config
    /// takes it.
    fn temp_dir() -> (tempfile::TempDir, String) {
        let dir = tempfile::Builder::new()
            .prefix("weir-file-sink-")
            .tempdir()
            .unwrap();
        let path = dir.path().display().to_string();
        (dir, path)
    }

    fn lines(path: &str) -> Vec<Value> {
        std::fs::read_to_string(path)
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }

    #[test]
    fn appends_one_line_per_event() {
        let (_guard, dir) = temp_dir();
        let mut sink = testing::sink::<FileSink>(json!({ "dir": dir })).unwrap();
        let events = [
            TestEvent::json(json!({"a": 1})).key("k"),
            TestEvent::json(json!(2)),
        ];
        testing::write(&mut sink, "orders", 10, &events).unwrap();
        testing::write(&mut sink, "orders", 12, &[TestEvent::json(json!("x"))]).unwrap();
        let got = lines(&format!("{dir}/orders-0.ndjson"));
        assert_eq!(got.len(), 3);
        assert_eq!(got[0]["offset"], 10);
        assert_eq!(got[0]["key"], "k");
        assert_eq!(got[0]["value"], json!({"a": 1}));
        assert_eq!(got[2]["offset"], 12);
        assert_eq!(got[2]["topic"], "orders");
        // An empty batch writes nothing (and creates no file).
        testing::write(&mut sink, "empty", 0, &[]).unwrap();
        assert!(!std::path::Path::new(&format!("{dir}/empty-0.ndjson")).exists());
    }

    #[test]
    fn rotates_full_files_with_increasing_indexes() {
        let (_guard, dir) = temp_dir();
        let mut sink =
            testing::sink::<FileSink>(json!({ "dir": dir, "max_file_bytes": 10 })).unwrap();
        for offset in 0..3 {
            testing::write(&mut sink, "t", offset, &[TestEvent::json(json!(offset))]).unwrap();
        }
        let names: Vec<String> = files::list_dir(&dir)
            .unwrap()
            .into_iter()
            .map(|e| e.name)
            .collect();
        assert_eq!(names, ["t-0.1.ndjson", "t-0.2.ndjson", "t-0.3.ndjson"]);
        assert_eq!(lines(&format!("{dir}/t-0.3.ndjson"))[0]["offset"], 2);
    }

    #[test]
    fn next_index_ignores_other_files() {
        let names = [
            "t-0.ndjson",
            "t-0.2.ndjson",
            "t-0.10.ndjson",
            "t-0.x.ndjson",
            "t-01.5.ndjson",
            "t-0.-3.ndjson",
        ];
        assert_eq!(next_index("t-0", names.into_iter()), 11);
        assert_eq!(next_index("t-1", names.into_iter()), 1);
    }

    #[test]
    fn config_is_checked() {
        assert!(testing::sink::<FileSink>(json!({ "dir": "relative" })).is_err());
        assert!(testing::sink::<FileSink>(json!({})).is_err());
        let (_guard, dir) = temp_dir();
        assert!(testing::sink::<FileSink>(json!({ "dir": dir, "format": "csv" })).is_err());
        assert!(testing::sink::<FileSink>(json!({ "dir": dir, "max_file_bytes": 0 })).is_err());
    }

    #[test]
    fn file_errors_are_retryable() {
        let (_guard, dir) = temp_dir();
        let mut sink = testing::sink::<FileSink>(json!({ "dir": dir })).unwrap();
        std::fs::remove_dir_all(&dir).unwrap();
        let err = testing::write(&mut sink, "t", 0, &[TestEvent::json(json!(1))]).unwrap_err();
        assert!(err.starts_with("failed:"), "{err}");
    }
}
