//! What every system under test offers the workloads: create and delete a stream,
//! publish values and wait for their acknowledgement, read a stream from its start,
//! and follow a stream as it grows.
//!
//! Each implementation drives its system the way that system's users do: Weir over
//! HTTP (or its broker in-process), JetStream with async-nats, Redis with redis-rs.

use std::future::Future;
use std::time::{SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use tokio::sync::mpsc;

/// When an acknowledgement is sent, relative to the data reaching the disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Durability {
    /// The ack waits for an fsync that covers the record (group commit allowed).
    FsyncPerAck,
    /// The ack comes before the fsync; the data is synced on a timer.
    Periodic,
}

impl Durability {
    pub fn label(self) -> &'static str {
        match self {
            Durability::FsyncPerAck => "fsync before ack",
            Durability::Periodic => "periodic fsync",
        }
    }
}

/// A connected system under test. Cloning is cheap and shares the connection(s), so
/// concurrent publishers can each hold one.
pub trait System: Clone + Send + Sync + 'static {
    /// The row label, e.g. `Weir HTTP (acks=all)`.
    fn label(&self) -> String;

    /// What an acknowledgement means with this system's settings.
    fn durability(&self) -> Durability;

    /// Whether this system is the reference the others are compared with in its
    /// durability class.
    fn is_reference(&self) -> bool {
        false
    }

    /// Creates the empty stream `stream` (a topic with one partition, a JetStream
    /// stream, a Redis stream key).
    fn create(&self, stream: &str) -> impl Future<Output = anyhow::Result<()>> + Send;

    /// Deletes `stream` and its data.
    fn delete(&self, stream: &str) -> impl Future<Output = anyhow::Result<()>> + Send;

    /// Publishes `count` copies of `value` as one unit (one request, one pipeline, one
    /// window of async publishes) and returns once every copy is acknowledged.
    fn publish(
        &self,
        stream: &str,
        value: &Bytes,
        count: usize,
    ) -> impl Future<Output = anyhow::Result<()>> + Send;

    /// Reads `stream` from its first record until `count` records have arrived, and
    /// returns the value bytes received.
    fn consume(&self, stream: &str, count: u64)
    -> impl Future<Output = anyhow::Result<u64>> + Send;

    /// Follows `stream` (fresh and empty) from its start: every record received is
    /// reported with its publish-to-receive latency, read from its [`stamped`] value.
    fn follow(&self, stream: &str) -> impl Future<Output = anyhow::Result<Follower>> + Send;
}

/// A running subscription: latencies in microseconds, one per record received.
#[derive(Debug)]
pub struct Follower {
    pub latencies: mpsc::UnboundedReceiver<u64>,
    task: tokio::task::JoinHandle<()>,
}

impl Follower {
    /// Wraps a task that sends each record's latency on `tx` until it is dropped.
    pub fn spawn<F>(make: impl FnOnce(mpsc::UnboundedSender<u64>) -> F) -> Follower
    where
        F: Future<Output = ()> + Send + 'static,
    {
        let (tx, latencies) = mpsc::unbounded_channel();
        Follower {
            latencies,
            task: tokio::spawn(make(tx)),
        }
    }
}

impl Drop for Follower {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Digits of the send time at the start of every value.
pub const STAMP_DIGITS: usize = 16;

/// A value of `len` ASCII bytes (at least [`STAMP_DIGITS`]) starting with the send
/// time `micros`, zero-padded, then `x` up to the length. Plain ASCII, so every system
/// carries it unchanged (Weir's JSON included, as a string).
pub fn stamped(len: usize, micros: u64) -> Bytes {
    let mut v = format!("{micros:0STAMP_DIGITS$}").into_bytes();
    v.resize(len.max(STAMP_DIGITS), b'x');
    Bytes::from(v)
}

/// The latency of a value made by [`stamped`], received now.
pub fn latency_of(value: &[u8]) -> Option<u64> {
    let digits = std::str::from_utf8(value.get(..STAMP_DIGITS)?).ok()?;
    let sent: u64 = digits.parse().ok()?;
    Some(micros_now().saturating_sub(sent))
}

/// Microseconds since the Unix epoch (one clock for senders and receivers, all in
/// this process).
pub fn micros_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_micros() as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stamped_values_have_the_asked_length_and_carry_their_send_time() {
        let v = stamped(100, 42);
        assert_eq!(v.len(), 100);
        assert!(v.starts_with(b"0000000000000042x"));
        let now = micros_now();
        let lat = latency_of(&stamped(1024, now)).unwrap();
        assert!(lat < 5_000_000, "{lat}");
        assert_eq!(latency_of(b"not a stamp at all"), None);
        assert_eq!(stamped(3, 1).len(), STAMP_DIGITS);
    }
}
