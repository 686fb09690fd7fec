//! A plugin's stdout and stderr as lines in the broker's log.
//!
//! `print()` in Python and `console.log` in JavaScript write to WASI stdout. Each
//! complete line becomes one `tracing` event with the plugin's name and version and
//! the stream, so an operator reads it where the broker's own log goes. A plugin that
//! prints on every event must not flood that log: lines pass through a token bucket
//! shared by all instances of the version, and what it drops is counted and said once
//! the bucket refills.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use bytes::Bytes;
use parking_lot::Mutex;
use wasmtime_wasi::cli::{IsTerminal, StdoutStream};
use wasmtime_wasi::p2::{OutputStream, Pollable, StreamResult};

/// Lines per second a version may log, sustained.
const LINES_PER_SEC: f64 = 100.0;
/// Lines it may log in a burst.
const BURST: f64 = 200.0;
/// A line longer than this is cut (and said so).
const MAX_LINE: usize = 4096;
/// How much one write may carry (`check-write`'s answer).
const WRITE_BUDGET: usize = 64 << 10;

/// Which stream a line came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Stream {
    Stdout,
    Stderr,
}

/// Whose output this is, and the bucket its lines share.
#[derive(Debug)]
pub(crate) struct Attribution {
    plugin: Arc<str>,
    version: String,
    bucket: Mutex<Bucket>,
    counters: OutputCounters,
}

/// Lines a version logged and dropped (shown in the plugin's status).
#[derive(Debug, Default)]
struct OutputCounters {
    logged: AtomicU64,
    dropped: AtomicU64,
}

#[derive(Debug)]
struct Bucket {
    tokens: f64,
    refilled: Instant,
    dropped_unsaid: u64,
}

impl Attribution {
    pub(crate) fn new(plugin: Arc<str>, version: &str) -> Arc<Self> {
        Arc::new(Attribution {
            plugin,
            version: version.chars().take(12).collect(),
            bucket: Mutex::new(Bucket {
                tokens: BURST,
                refilled: Instant::now(),
                dropped_unsaid: 0,
            }),
            counters: OutputCounters::default(),
        })
    }

    /// Lines logged and lines dropped over the rate, since load.
    pub(crate) fn lines(&self) -> (u64, u64) {
        (
            self.counters.logged.load(Ordering::Relaxed),
            self.counters.dropped.load(Ordering::Relaxed),
        )
    }

    /// Logs one line, if the bucket allows.
    fn line(&self, stream: Stream, line: &[u8]) {
        let dropped_before = {
            let mut b = self.bucket.lock();
            let now = Instant::now();
            let refill = now.duration_since(b.refilled).as_secs_f64() * LINES_PER_SEC;
            b.tokens = (b.tokens + refill).min(BURST);
            b.refilled = now;
            if b.tokens < 1.0 {
                b.dropped_unsaid += 1;
                self.counters.dropped.fetch_add(1, Ordering::Relaxed);
                return;
            }
            b.tokens -= 1.0;
            std::mem::take(&mut b.dropped_unsaid)
        };
        let (plugin, version) = (&*self.plugin, &*self.version);
        if dropped_before > 0 {
            tracing::warn!(
                plugin,
                version,
                dropped = dropped_before,
                "plugin output over {LINES_PER_SEC} lines/s: {dropped_before} lines dropped"
            );
        }
        self.counters.logged.fetch_add(1, Ordering::Relaxed);
        let cut = line.len() > MAX_LINE;
        let text = String::from_utf8_lossy(&line[..line.len().min(MAX_LINE)]);
        let text = text.trim_end_matches('\r');
        let more = if cut { " [line cut at 4096 bytes]" } else { "" };
        match stream {
            Stream::Stdout => tracing::info!(plugin, version, stream = "stdout", "{text}{more}"),
            Stream::Stderr => tracing::warn!(plugin, version, stream = "stderr", "{text}{more}"),
        }
    }
}

/// The stdout or stderr a WASI context hands out.
#[derive(Debug, Clone)]
pub(crate) struct LogSink {
    who: Arc<Attribution>,
    stream: Stream,
}

impl LogSink {
    pub(crate) fn new(who: Arc<Attribution>, stream: Stream) -> Self {
        LogSink { who, stream }
    }
}

impl IsTerminal for LogSink {
    fn is_terminal(&self) -> bool {
        false
    }
}

impl StdoutStream for LogSink {
    fn p2_stream(&self) -> Box<dyn OutputStream> {
        Box::new(LineWriter {
            sink: self.clone(),
            partial: Vec::new(),
        })
    }

    /// Only WASI 0.3 asks for this, and Weir links 0.2 alone: output through it is
    /// discarded rather than half-supported.
    fn async_stream(&self) -> Box<dyn tokio::io::AsyncWrite + Send + Sync> {
        Box::new(tokio::io::sink())
    }
}

/// One handed-out stream: bytes in, whole lines out; a partial line is logged when
/// the stream is dropped.
struct LineWriter {
    sink: LogSink,
    partial: Vec<u8>,
}

impl LineWriter {
    fn emit(&self, line: &[u8]) {
        self.sink.who.line(self.sink.stream, line);
    }
}

impl Drop for LineWriter {
    fn drop(&mut self) {
        if !self.partial.is_empty() {
            let rest = std::mem::take(&mut self.partial);
            self.emit(&rest);
        }
    }
}

#[wasmtime_wasi::async_trait]
impl Pollable for LineWriter {
    /// Always ready: writing a line to the log does not wait.
    async fn ready(&mut self) {}
}

impl OutputStream for LineWriter {
    fn write(&mut self, bytes: Bytes) -> StreamResult<()> {
        let mut rest = &bytes[..];
        while let Some(i) = rest.iter().position(|&b| b == b'\n') {
            if self.partial.is_empty() {
                self.emit(&rest[..i]);
            } else {
                self.partial.extend_from_slice(&rest[..i]);
                let line = std::mem::take(&mut self.partial);
                self.emit(&line);
            }
            rest = &rest[i + 1..];
        }
        self.partial.extend_from_slice(rest);
        if self.partial.len() > MAX_LINE {
            let line = std::mem::take(&mut self.partial);
            self.emit(&line);
        }
        Ok(())
    }

    fn flush(&mut self) -> StreamResult<()> {
        Ok(())
    }

    fn check_write(&mut self) -> StreamResult<usize> {
        Ok(WRITE_BUDGET)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_are_split_joined_and_rate_limited() {
        let who = Attribution::new("p".into(), "0123456789abcdef");
        let mut w = LogSink::new(who.clone(), Stream::Stdout).p2_stream();
        w.write(Bytes::from_static(b"one\ntw")).unwrap();
        w.write(Bytes::from_static(b"o\nthree")).unwrap();
        assert_eq!(who.lines().0, 2);
        drop(w);
        assert_eq!(who.lines().0, 3);
        let mut w = LogSink::new(who.clone(), Stream::Stderr).p2_stream();
        w.write(Bytes::from(
            vec![b'x'; 1000]
                .into_iter()
                .chain([b'\n'])
                .cycle()
                .take(1001 * 500)
                .collect::<Vec<u8>>(),
        ))
        .unwrap();
        let (logged, dropped) = who.lines();
        assert_eq!(logged + dropped, 503);
        assert!(dropped >= 300 - 3, "{logged} logged, {dropped} dropped");
    }
}
