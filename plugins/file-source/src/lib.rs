//! file-source: Weir's first-party file source. Tails the files of a directory
//! (`*.ndjson` by default) and publishes each complete line as an event: a JSON
//! event when the line is JSON, a plain one otherwise.
//!
//! Each file's position (bytes consumed) is kept in the plugin's durable state under
//! `pos/<file name>` and read at the start of every poll. The broker commits it
//! atomically with the events of that poll, so a restart or a failed publish resumes
//! exactly after the last stored line: no gaps, no repeats. A line counts only once
//! its `\n` is written, so a writer caught mid-line is picked up on a later poll. A
//! file that shrank below its position was truncated or replaced and is read again
//! from the start.

use serde::de::IgnoredAny;
use serde::Deserialize;
use weir_sdk::connector::{files, Emitted, PollInfo, Source};
use weir_sdk::json::Pointer;
use weir_sdk::{log, state, Error, Result};

/// The plugin's `[config]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// The directory to tail (absolute, granted in `[grants] dirs`).
    dir: String,
    /// Only files whose name ends with this are read.
    #[serde(default = "default_suffix")]
    suffix: String,
    /// Field of a JSON line whose value (as text) becomes the event key (a name, or
    /// a JSON pointer `/a/b`).
    #[serde(default)]
    key_field: Option<String>,
    /// Most bytes read per file per poll (and so the longest line accepted).
    #[serde(default = "default_read_bytes")]
    read_bytes: u32,
}

fn default_suffix() -> String {
    ".ndjson".into()
}

fn default_read_bytes() -> u32 {
    1024 * 1024
}

/// The source.
#[derive(Debug)]
pub struct FileSource {
    dir: String,
    suffix: String,
    key_field: Option<Pointer>,
    read_bytes: u32,
}

impl Source for FileSource {
    type Config = Config;

    fn init(config: Config) -> std::result::Result<Self, String> {
        if !config.dir.starts_with('/') {
            return Err(format!("dir '{}' must be an absolute path", config.dir));
        }
        if config.read_bytes == 0 {
            return Err("read_bytes must be greater than 0".into());
        }
        let key_field = match config.key_field.as_deref() {
            None => None,
            Some("") => return Err("key_field must not be empty".into()),
            Some(f) if f.starts_with('/') => Some(Pointer::parse(f)?),
            Some(f) => Some(Pointer::parse(&format!(
                "/{}",
                f.replace('~', "~0").replace('/', "~1")
            ))?),
        };
        let dir = config.dir.trim_end_matches('/');
        Ok(FileSource {
            dir: if dir.is_empty() {
                "/".into()
            } else {
                dir.into()
            },
            suffix: config.suffix,
            key_field,
            read_bytes: config.read_bytes,
        })
    }

    fn poll(&mut self, info: &PollInfo, out: &mut Emitted) -> Result<()> {
        let entries =
            files::list_dir(&self.dir).map_err(|e| Error::Failed(format!("{}: {e}", self.dir)))?;
        let mut budget = info.max as usize;
        for entry in entries
            .iter()
            .filter(|e| !e.is_dir && e.name.ends_with(&self.suffix))
        {
            if budget == 0 {
                break;
            }
            let key = format!("pos/{}", entry.name);
            let saved = position(&key)?;
            let mut pos = saved;
            if entry.size < pos {
                log::warn(&format!(
                    "{} shrank below position {pos} (truncated or replaced): reading it again from the start",
                    entry.name
                ));
                pos = 0;
            }
            if entry.size > pos {
                let path = format!("{}/{}", self.dir.trim_end_matches('/'), entry.name);
                let data = files::read_at(&path, pos, self.read_bytes)
                    .map_err(|e| Error::Failed(format!("{path}: {e}")))?;
                if data.len() == self.read_bytes as usize && !data.contains(&b'\n') {
                    return Err(Error::BadInput(format!(
                        "{path}: the line at byte {pos} is longer than read_bytes ({}); \
                         raise read_bytes",
                        self.read_bytes
                    )));
                }
                let (consumed, emitted) = self.emit_lines(&data, budget, out);
                pos += consumed;
                budget -= emitted;
            }
            if pos != saved {
                state::set(key.as_bytes(), pos.to_string().as_bytes());
            }
        }
        Ok(())
    }
}

impl FileSource {
    /// Emits the complete, non-empty lines of `data`, at most `max`: the bytes
    /// consumed (through the newline of the last line emitted) and the events emitted.
    fn emit_lines(&self, data: &[u8], max: usize, out: &mut Emitted) -> (u64, usize) {
        let (mut consumed, mut emitted) = (0, 0);
        let mut rest = data;
        while emitted < max {
            let Some(nl) = rest.iter().position(|&b| b == b'\n') else {
                break;
            };
            let line = &rest[..nl];
            let line = line.strip_suffix(b"\r").unwrap_or(line);
            rest = &rest[nl + 1..];
            consumed += nl as u64 + 1;
            if line.iter().all(u8::is_ascii_whitespace) {
                continue;
            }
            self.push(line, out);
            emitted += 1;
        }
        (consumed, emitted)
    }

    /// Adds one line as an event.
    fn push(&self, line: &[u8], out: &mut Emitted) {
        match &self.key_field {
            Some(pointer) => match pointer.find(line) {
                Ok(raw) => {
                    let key = raw.map(|raw| match serde_json::from_str::<String>(raw) {
                        Ok(text) => text,
                        Err(_) => raw.to_string(),
                    });
                    out.json(key.as_deref().map(str::as_bytes), line);
                }
                Err(_) => out.bytes(None, line),
            },
            None if serde_json::from_slice::<IgnoredAny>(line).is_ok() => out.json(None, line),
            None => out.bytes(None, line),
        }
    }
}

/// The position saved under `key` (0 when none).
fn position(key: &str) -> Result<u64> {
    match state::get(key.as_bytes()) {
        None => Ok(0),
        Some(v) => std::str::from_utf8(&v)
            .ok()
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| Error::Failed(format!("state {key} is not a number"))),
    }
}

weir_sdk::export_source!(FileSource);

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use weir_sdk::connector::testing;
    use weir_sdk::testing::TestEvent;

    /// A fresh directory removed when the guard drops, and its path as the config
    /// takes it.
    fn temp_dir() -> (tempfile::TempDir, String) {
        let dir = tempfile::Builder::new()
            .prefix("weir-file-source-")
            .tempdir()
            .unwrap();
        let path = dir.path().display().to_string();
        (dir, path)
    }

    fn info(max: u32) -> PollInfo {
        PollInfo {
            topic: "t".into(),
            partitions: 1,
            max,
            now_ms: 0,
        }
    }

    fn values(events: &[TestEvent]) -> Vec<String> {
        events
            .iter()
            .map(|e| String::from_utf8(e.value.clone().unwrap()).unwrap())
            .collect()
    }

    fn append(path: &str, text: &str) {
        files::append(path, text.as_bytes()).unwrap();
    }

    #[test]
    fn emits_complete_lines_and_resumes_from_state() {
        let (_guard, dir) = temp_dir();
        let file = format!("{dir}/a.ndjson");
        append(&file, "{\"n\":1}\nplain text\n\n{\"n\":2");
        append(&format!("{dir}/ignored.txt"), "nope\n");
        let mut s = testing::source::<FileSource>(json!({ "dir": dir })).unwrap();
        let got = testing::poll(&mut s, &info(100)).unwrap();
        assert_eq!(values(&got), ["{\"n\":1}", "plain text"]);
        assert!(got[0].json && !got[1].json);
        // The partial line waits; the empty line was consumed with the others.
        assert_eq!(state::get(b"pos/a.ndjson").unwrap(), b"20");
        assert!(testing::poll(&mut s, &info(100)).unwrap().is_empty());
        append(&file, "}\r\n{\"n\":3}\n");
        // A fresh instance (a restart) carries on from the saved position.
        let mut s = testing::source::<FileSource>(json!({ "dir": dir })).unwrap();
        let got = testing::poll(&mut s, &info(100)).unwrap();
        assert_eq!(values(&got), ["{\"n\":2}", "{\"n\":3}"]);
        assert!(got.iter().all(|e| e.json));
    }

    #[test]
    fn stops_at_max_across_files() {
        let (_guard, dir) = temp_dir();
        append(&format!("{dir}/a.ndjson"), "1\n2\n3\n");
        append(&format!("{dir}/b.ndjson"), "4\n5\n");
        let mut s = testing::source::<FileSource>(json!({ "dir": dir })).unwrap();
        assert_eq!(
            values(&testing::poll(&mut s, &info(2)).unwrap()),
            ["1", "2"]
        );
        assert_eq!(state::get(b"pos/a.ndjson").unwrap(), b"4");
        assert_eq!(
            values(&testing::poll(&mut s, &info(2)).unwrap()),
            ["3", "4"]
        );
        assert_eq!(values(&testing::poll(&mut s, &info(2)).unwrap()), ["5"]);
        assert!(testing::poll(&mut s, &info(2)).unwrap().is_empty());
    }

    #[test]
    fn truncated_files_restart_from_zero() {
        let (_guard, dir) = temp_dir();
        let file = format!("{dir}/a.ndjson");
        append(&file, "one\ntwo\n");
        let mut s = testing::source::<FileSource>(json!({ "dir": dir })).unwrap();
        assert_eq!(testing::poll(&mut s, &info(10)).unwrap().len(), 2);
        std::fs::write(&file, "new\n").unwrap();
        assert_eq!(values(&testing::poll(&mut s, &info(10)).unwrap()), ["new"]);
        assert_eq!(state::get(b"pos/a.ndjson").unwrap(), b"4");
    }

    #[test]
    fn keys_come_from_the_key_field() {
        let (_guard, dir) = temp_dir();
        append(
            &format!("{dir}/a.log"),
            "{\"user\":\"ann\"}\n{\"user\":{\"id\":7}}\n{\"x\":1}\nnot json\n",
        );
        let mut s = testing::source::<FileSource>(
            json!({ "dir": dir, "suffix": ".log", "key_field": "user" }),
        )
        .unwrap();
        let got = testing::poll(&mut s, &info(10)).unwrap();
        let keys: Vec<Option<&[u8]>> = got.iter().map(|e| e.key.as_deref()).collect();
        assert_eq!(
            keys,
            [Some(&b"ann"[..]), Some(&b"{\"id\":7}"[..]), None, None]
        );
        assert_eq!(
            got.iter().map(|e| e.json).collect::<Vec<_>>(),
            [true, true, true, false]
        );
    }

    #[test]
    fn overlong_lines_are_reported() {
        let (_guard, dir) = temp_dir();
        append(&format!("{dir}/a.ndjson"), "0123456789\n");
        let mut s = testing::source::<FileSource>(json!({ "dir": dir, "read_bytes": 4 })).unwrap();
        let err = testing::poll(&mut s, &info(10)).unwrap_err();
        assert!(err.contains("read_bytes"), "{err}");
    }

    #[test]
    fn config_and_state_are_checked() {
        assert!(testing::source::<FileSource>(json!({ "dir": "rel" })).is_err());
        assert!(testing::source::<FileSource>(json!({ "dir": "/x", "read_bytes": 0 })).is_err());
        assert!(testing::source::<FileSource>(json!({ "dir": "/x", "key_field": "" })).is_err());
        let (_guard, dir) = temp_dir();
        append(&format!("{dir}/a.ndjson"), "1\n");
        state::set(b"pos/a.ndjson", b"junk");
        let mut s = testing::source::<FileSource>(json!({ "dir": dir })).unwrap();
        assert!(testing::poll(&mut s, &info(10))
            .unwrap_err()
            .starts_with("failed:"));
    }
}
