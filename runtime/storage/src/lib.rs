//! weir-storage: the partitioned, durable log under Weir: what the broker needs of it
//! ([`log::Log`]) and the embedded backend on sled ([`Store`]).
//!
//! It knows nothing of WASM or HTTP. Its parts:
//!
//! - [`log`]: the [`Log`] trait, the seam every backend implements, with each
//!   operation's atomicity and durability stated.
//! - [`batch`]: the record batch format (CRC32C per batch, offsets as deltas).
//! - [`checkpoint`]: the acknowledged watermarks, kept beside sled to catch a short
//!   recovery.
//! - [`config`]: topic configuration and name rules.
//! - [`repair`]: offline verification and truncation of a damaged store.
//! - [`store`]: opening and recovering the database, topic admin, appends, reads.
//! - `writer`: the single writer thread and the flusher thread that together give
//!   atomic multi-partition appends and group commit.
//! - `cleaner`: retention and compaction in the background.
//! - `space`: the free-space floor below which appends are refused.
//! - `fsync`: the fsyncs sled's own flush leaves out.
//! - [`topic`]: the shared in-memory offsets of each partition and long-poll wake-ups.
//!
//! Invariants: offsets in a partition are contiguous from 0 and never reused; a reader
//! sees only records below the high watermark, which moves only after a flush.

pub mod batch;
pub mod checkpoint;
mod cleaner;
pub mod config;
mod engine;
mod error;
mod fsync;
mod keys;
pub mod log;
pub mod repair;
mod space;
mod stats;
pub mod store;
pub mod topic;
mod writer;

pub use batch::{BatchBuilder, EncodedBatch, RecordView};
pub use cleaner::{CleanReport, DEFAULT_TOMBSTONE_RETENTION_MS, now_ms};
pub use config::{CleanupPolicy, TopicConfig};
pub use error::{Result, StorageError};
pub use log::{Blobs, Health, Log, LogFuture, SharedKv};
pub use space::DiskSpace;
pub use stats::{AtomicHistogram, HistogramSnapshot, Stats, StatsSnapshot};
pub use store::{Created, ReadLimits, ReadResult, Store, StoreOptions};
pub use topic::{PartitionOffsets, Topic};
pub use writer::{Acks, BasesNote, KvOp, TopicBatch};
