//! [`Log`]: what the broker needs of its storage, and nothing of how a backend keeps
//! it. The embedded sled [`Store`](crate::Store) implements it; a replicated backend
//! implements the same promises over the network. Each method states what is atomic
//! and what is durable when it returns, because the broker's guarantees (an
//! acknowledged record survives a crash; a request's outputs land all or none) are
//! built from exactly these.
//!
//! Operations that may wait on disk or network return a boxed future ([`LogFuture`]),
//! so the trait is object safe and the broker holds any backend as `Arc<dyn Log>`.
//! Operations on in-memory state (topic handles, watermarks) and the few that a
//! plugin's synchronous host call needs (its key-value state) are plain methods.

use std::future::Future;
use std::path::Path;
use std::pin::Pin;
use std::sync::Arc;

use crate::config::TopicConfig;
use crate::error::Result;
use crate::stats::Stats;
use crate::store::{Created, ReadLimits, ReadResult};
use crate::topic::Topic;
use crate::writer::{Acks, BasesNote, KvOp, TopicBatch};

/// A boxed future of a log operation.
pub type LogFuture<'a, T> = Pin<Box<dyn Future<Output = Result<T>> + Send + 'a>>;

/// Whether the log can take writes, and what it has to say about its space.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Health {
    /// Why writes are refused for good (a failed write or flush), if they are.
    pub failure: Option<String>,
    /// Whether writes are refused for want of space until some is freed.
    pub full: bool,
    /// Free bytes where the log keeps its data, when known.
    pub free_bytes: Option<u64>,
    /// The free space below which writes are refused (0: no floor).
    pub floor_bytes: u64,
}

/// Compare-and-set over the key-value store of a log that several nodes serve.
pub trait SharedKv: Send + Sync {
    /// A value (`None`: absent or deleted) and its version: it changes with every
    /// write of the key, and is 0 for a key never written.
    fn get_versioned(&self, key: &[u8]) -> (Option<Vec<u8>>, u64);

    /// Applies `ops` atomically if `guard` is still at `version` when the write
    /// lands (`guard` may be one of the keys written); returns the version of the
    /// last key written (with one key: its new version). Refused with
    /// [`StorageError::VersionConflict`](crate::StorageError::VersionConflict)
    /// otherwise, after this node has tried to catch up with the write that won, so a
    /// retry usually reads fresh state. Durable when it returns.
    fn write_if<'a>(&'a self, guard: &'a [u8], version: u64, ops: Vec<KvOp>) -> LogFuture<'a, u64>;

    /// [`Log::append`] with `acks=all`, stored only if `guard` is still at `version`
    /// when it lands: how a node that holds a lease (a connector's) writes, so a node
    /// that lost the lease cannot publish or commit. Refused with
    /// [`StorageError::VersionConflict`](crate::StorageError::VersionConflict) and
    /// nothing stored otherwise.
    fn append_if<'a>(
        &'a self,
        guard: &'a [u8],
        version: u64,
        batches: Vec<TopicBatch>,
        commit: Vec<KvOp>,
    ) -> LogFuture<'a, Vec<u64>>;
}

/// Named blobs shared by every node of a cluster (plugin versions deployed through
/// any node). Content-addressed by the caller: a name is written once.
pub trait Blobs: Send + Sync {
    /// Stores `bytes` under `name` (replacing any earlier blob of that name); durable
    /// when it returns. Returns the store's SHA-256 digest of the bytes.
    fn put<'a>(&'a self, name: &'a str, bytes: Vec<u8>) -> LogFuture<'a, String>;

    /// The blob `name`, or `None` if there is none.
    fn get<'a>(&'a self, name: &'a str) -> LogFuture<'a, Option<Vec<u8>>>;
}

/// A partitioned, durable log of record batches, with a small key-value store
/// beside it (consumer offsets, pipeline configurations, plugin and connector state).
pub trait Log: Send + Sync + std::fmt::Debug + 'static {
    /// Creates topic `name`, or finds it: `Existing` when one with an identical
    /// config exists, `TopicExists` when its config differs. Durable when it returns.
    fn create_topic(&self, name: &str, config: TopicConfig) -> LogFuture<'_, Created>;

    /// Deletes a topic and its data. Its id is never reused, so a topic created
    /// again under the name starts empty. Durable when it returns.
    fn delete_topic<'a>(&'a self, name: &'a str) -> LogFuture<'a, ()>;

    /// The topic's handle: its config and partitions with their watermarks, which
    /// move (and wake waiters) as appends become visible.
    fn topic(&self, name: &str) -> Result<Arc<Topic>>;

    /// Every topic, by name.
    fn topics(&self) -> Vec<Arc<Topic>>;

    /// Appends batches to any partitions of any topics and applies `commit` to the
    /// key-value store, **atomically**: after a crash either all of it exists or none
    /// of it does. Returns each batch's base offset, in the order given. With
    /// [`Acks::All`] it returns once all of it is durable (and visible to readers);
    /// with [`Acks::None`] once it is written and will become durable without further
    /// calls. A refusal (no space, a failed store) writes nothing.
    fn append(
        &self,
        batches: Vec<TopicBatch>,
        commit: Vec<KvOp>,
        acks: Acks,
    ) -> LogFuture<'_, Vec<u64>>;

    /// [`append`](Self::append) plus `note`, a key-value pair whose value ends with
    /// the bases the batches got, in the same atomic write: the durable record of what
    /// a request stored (its idempotency key's answer). Refused with
    /// [`StorageError::Unsupported`](crate::StorageError::Unsupported) by a log that
    /// cannot, and nothing is stored then.
    fn append_noting(
        &self,
        batches: Vec<TopicBatch>,
        commit: Vec<KvOp>,
        note: BasesNote,
        acks: Acks,
    ) -> LogFuture<'_, Vec<u64>> {
        let _ = (batches, commit, note, acks);
        Box::pin(async {
            Err(crate::StorageError::Unsupported(
                "this log cannot store a request's answer with its records".into(),
            ))
        })
    }

    /// Records of one partition from `offset` up to the high watermark (only durable
    /// records are visible), within `limits`. Damage is an error, never a short read.
    fn read<'a>(
        &'a self,
        topic: &'a Topic,
        partition: u32,
        offset: u64,
        limits: ReadLimits,
    ) -> LogFuture<'a, ReadResult>;

    /// The first offset whose record was appended at or after `timestamp_ms`, or the
    /// high watermark if none was.
    fn offset_for_timestamp<'a>(
        &'a self,
        topic: &'a Topic,
        partition: u32,
        timestamp_ms: i64,
    ) -> LogFuture<'a, u64>;

    /// Applies key-value writes atomically; durable when it returns.
    fn kv_write(&self, ops: Vec<KvOp>) -> LogFuture<'_, ()>;

    /// One key-value pair written now, durable with the next append's flush: for a
    /// plugin's synchronous `state-set` inside a batch call, whose records are made
    /// durable after it.
    fn kv_put_now(&self, key: &[u8], value: Option<&[u8]>) -> Result<()>;

    /// A value of the key-value store.
    fn kv_get(&self, key: &[u8]) -> Result<Option<Vec<u8>>>;

    /// Every pair whose key starts with `prefix`, in key order.
    fn kv_scan(&self, prefix: &[u8]) -> Result<Vec<(Vec<u8>, Vec<u8>)>>;

    /// How many pairs have keys starting with `prefix`, and their bytes (keys and
    /// values): a size, without holding them all in memory where the log can.
    fn kv_size(&self, prefix: &[u8]) -> Result<(u64, u64)> {
        let pairs = self.kv_scan(prefix)?;
        let bytes = pairs.iter().map(|(k, v)| (k.len() + v.len()) as u64).sum();
        Ok((pairs.len() as u64, bytes))
    }

    /// Records stored in `[from, to)` of a partition, for lag. Offsets are dense in
    /// the embedded store, so it is `to - from` there; a log whose offsets have gaps
    /// counts what it holds.
    fn records_between(&self, topic: &Topic, partition: u32, from: u64, to: u64) -> u64 {
        let _ = (topic, partition);
        to.saturating_sub(from)
    }

    /// Key-value pairs that several broker nodes change at once, with
    /// compare-and-set; `None` when one node owns the log (the embedded store), and
    /// the broker keeps such state (a consumer group's members) in its own memory.
    fn shared_kv(&self) -> Option<&dyn SharedKv> {
        None
    }

    /// Blobs every node sees (`None` on the embedded store: one node, one plugin
    /// directory).
    fn blobs(&self) -> Option<&dyn Blobs> {
        None
    }

    /// Whether writes are taken, and the space.
    fn health(&self) -> Health;

    /// Counters of the write path (flushes, records, durations).
    fn stats(&self) -> &Stats;

    /// Where the log keeps its files, if it keeps any on this machine.
    fn local_path(&self) -> Option<&Path>;

    /// Stops after the work queued so far, with a final flush; later writes fail.
    fn shutdown(&self) -> Pin<Box<dyn Future<Output = ()> + Send + '_>>;
}

impl Log for crate::Store {
    fn create_topic(&self, name: &str, config: TopicConfig) -> LogFuture<'_, Created> {
        // Creating a topic writes and flushes the metadata: off the async threads.
        let (store, name) = (self.clone(), name.to_string());
        Box::pin(async move {
            tokio::task::spawn_blocking(move || store.create_topic(&name, config))
                .await
                .unwrap_or_else(|e| {
                    Err(crate::StorageError::Failed(format!(
                        "topic creation did not finish: {e}"
                    )))
                })
        })
    }

    fn delete_topic<'a>(&'a self, name: &'a str) -> LogFuture<'a, ()> {
        Box::pin(crate::Store::delete_topic(self, name))
    }

    fn topic(&self, name: &str) -> Result<Arc<Topic>> {
        crate::Store::topic(self, name)
    }

    fn topics(&self) -> Vec<Arc<Topic>> {
        crate::Store::topics(self)
    }

    fn append(
        &self,
        batches: Vec<TopicBatch>,
        commit: Vec<KvOp>,
        acks: Acks,
    ) -> LogFuture<'_, Vec<u64>> {
        Box::pin(self.append_committing(batches, commit, acks))
    }

    fn append_noting(
        &self,
        batches: Vec<TopicBatch>,
        commit: Vec<KvOp>,
        note: BasesNote,
        acks: Acks,
    ) -> LogFuture<'_, Vec<u64>> {
        Box::pin(crate::Store::append_noting(
            self,
            batches,
            commit,
            Some(note),
            acks,
        ))
    }

    fn read<'a>(
        &'a self,
        topic: &'a Topic,
        partition: u32,
        offset: u64,
        limits: ReadLimits,
    ) -> LogFuture<'a, ReadResult> {
        // Reads come from sled's page cache: answered at once.
        let read = crate::Store::read(self, topic, partition, offset, limits);
        Box::pin(async move { read })
    }

    fn offset_for_timestamp<'a>(
        &'a self,
        topic: &'a Topic,
        partition: u32,
        timestamp_ms: i64,
    ) -> LogFuture<'a, u64> {
        let offset = crate::Store::offset_for_timestamp(self, topic, partition, timestamp_ms);
        Box::pin(async move { offset })
    }

    fn kv_write(&self, ops: Vec<KvOp>) -> LogFuture<'_, ()> {
        Box::pin(crate::Store::kv_write(self, ops))
    }

    fn kv_put_now(&self, key: &[u8], value: Option<&[u8]>) -> Result<()> {
        crate::Store::kv_put_now(self, key, value)
    }

    fn kv_get(&self, key: &[u8]) -> Result<Option<Vec<u8>>> {
        crate::Store::kv_get(self, key)
    }

    fn kv_scan(&self, prefix: &[u8]) -> Result<Vec<(Vec<u8>, Vec<u8>)>> {
        crate::Store::kv_scan(self, prefix)
    }

    fn kv_size(&self, prefix: &[u8]) -> Result<(u64, u64)> {
        crate::Store::kv_size(self, prefix)
    }

    fn health(&self) -> Health {
        Health {
            failure: self.stats().failure(),
            full: self.space().is_full(),
            free_bytes: fs2::available_space(self.path()).ok(),
            floor_bytes: self.space().floor(),
        }
    }

    fn stats(&self) -> &Stats {
        crate::Store::stats(self)
    }

    fn local_path(&self) -> Option<&Path> {
        Some(self.path())
    }

    fn shutdown(&self) -> Pin<Box<dyn Future<Output = ()> + Send + '_>> {
        Box::pin(crate::Store::shutdown(self))
    }
}
