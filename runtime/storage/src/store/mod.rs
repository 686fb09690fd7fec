//! The store: opening and recovering the sled database, topic administration, appends
//! (through the writer) and reads.
//!
//! Split by job: opening and the background threads here; [`topics`] (create,
//! delete, find), [`append`] (appends and key-value writes), [`read`] (reads and
//! timestamp lookups), [`recover`] (offsets rebuilt at open).

mod append;
mod read;
mod recover;
#[cfg(test)]
mod tests;
mod topics;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::AtomicU32;
use std::thread::JoinHandle;
use std::time::Duration;

use dashmap::DashMap;
use parking_lot::Mutex;
use tokio::sync::{mpsc, oneshot};

use crate::checkpoint::{self, Checkpoint};
use crate::cleaner::Cleaner;
use crate::engine::open_sled;
use crate::error::{Result, StorageError};
use crate::keys;
use crate::space::{self, DiskSpace};
use crate::stats::Stats;
use crate::topic::Topic;
use crate::writer::{self, Command, WriteContext};

pub use read::{ReadLimits, ReadResult};

/// The watermark checkpoint is saved every this many free-space samples (about 1 s).
const CHECKPOINT_EVERY_TICKS: u32 = 4;

/// Options for [`Store::open`].
#[derive(Debug, Clone)]
pub struct StoreOptions {
    /// How often the cleaner applies retention and compaction.
    pub cleaner_interval: Duration,
    /// sled's page cache size.
    pub cache_bytes: u64,
    /// Depth of the queue in front of the writer; producers wait when it is full.
    pub write_queue: usize,
    /// Appends are refused with `storage_full` while the data dir's filesystem has
    /// less free space than this (0: no floor).
    pub min_free_bytes: u64,
}

impl Default for StoreOptions {
    fn default() -> Self {
        Self {
            cleaner_interval: Duration::from_secs(30),
            cache_bytes: 256 << 20,
            write_queue: 8192,
            min_free_bytes: 64 << 20,
        }
    }
}

/// Whether [`Store::create_topic`] made the topic.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Created {
    /// The topic is new.
    New,
    /// An identical topic already existed.
    Existing,
}

/// The partitioned log. Cheap to clone; all clones share one database and writer.
#[derive(Debug, Clone)]
pub struct Store {
    inner: Arc<Inner>,
}

struct Inner {
    path: PathBuf,
    ctx: Arc<WriteContext>,
    /// Shared with the cleaner.
    topics: Arc<DashMap<String, Arc<Topic>>>,
    /// Serialises topic creation so two creators of one name agree on the outcome.
    admin: Mutex<()>,
    next_topic_id: AtomicU32,
    commands: mpsc::Sender<Command>,
    threads: Mutex<Vec<JoinHandle<()>>>,
    /// Sending on (or dropping) these stops the cleaner and the housekeeping thread;
    /// both hold a clone of the store, so only `shutdown` ends them.
    stop_background: Mutex<Vec<std::sync::mpsc::Sender<()>>>,
    space: Arc<DiskSpace>,
    /// The last checkpoint saved; held while one is computed and saved so a topic
    /// deletion and the periodic save cannot interleave.
    checkpoint: Mutex<Option<Checkpoint>>,
}

impl std::fmt::Debug for Inner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store").field("path", &self.path).finish()
    }
}

impl Store {
    /// Opens (or creates) the store in `path`, recovers every topic's offsets and starts
    /// the writer, flusher and cleaner threads.
    pub fn open(path: impl AsRef<Path>, options: StoreOptions) -> Result<Store> {
        // sled panics on some damaged data instead of erring, during recovery and
        // while the topics' last chunks are read.
        crate::engine::catch_engine_panic(|| Self::open_unguarded(path.as_ref(), options))
    }

    fn open_unguarded(path: &Path, options: StoreOptions) -> Result<Store> {
        let path = path.to_path_buf();
        let db = open_sled(
            sled::Config::new()
                .path(&path)
                .cache_capacity(options.cache_bytes)
                // Durability comes from the flusher's explicit flushes, not a timer.
                .flush_every_ms(None),
        )?;
        // After a crash, sled recovers what reached the page cache, fsynced or not; make
        // it durable before anything (the checkpoint) treats it as acknowledged.
        crate::fsync::SledFiles::open(&path)
            .and_then(|mut f| f.sync())
            .map_err(sled::Error::Io)?;
        let data = db.open_tree("data")?;
        let meta = db.open_tree("meta")?;
        let kv = db.open_tree("kv")?;
        let ctx = Arc::new(WriteContext {
            db,
            data,
            meta,
            kv,
            stats: Arc::new(Stats::default()),
            dir: path.clone(),
        });
        let (recovered, orphans) = recover::recover_topics(&ctx)?;
        let checkpoint = Checkpoint::load(&path)?;
        if let Some(c) = &checkpoint {
            let short = c.shortfalls(&recovered);
            if !short.is_empty() {
                let what: Vec<String> = short.iter().map(ToString::to_string).collect();
                return Err(StorageError::corrupt(format!(
                    "the storage engine recovered less than was acknowledged ({}): {}",
                    checkpoint::FILE,
                    what.join("; ")
                )));
            }
        }
        // Past every acknowledged offset (or the checkpoint would have refused): safe
        // to remove before the writer can reuse those offsets.
        for o in &orphans {
            o.remove(&ctx)?;
        }
        let topics = Arc::new(DashMap::new());
        for topic in recovered {
            topics.insert(topic.name.clone(), Arc::new(topic));
        }
        let next_topic_id = match ctx.meta.get(keys::NEXT_TOPIC_ID)? {
            Some(v) => u32::from_be_bytes(
                v.as_ref()
                    .try_into()
                    .map_err(|_| StorageError::corrupt("bad next_topic_id"))?,
            ),
            None => 1,
        };
        let space = Arc::new(DiskSpace::new(options.min_free_bytes));
        space.sample(&path);
        let (tx, rx) = mpsc::channel(options.write_queue.max(1));
        let mut threads = writer::spawn(ctx.clone(), rx).map_err(sled::Error::Io)?;
        let store = Store {
            inner: Arc::new(Inner {
                path,
                ctx,
                topics,
                admin: Mutex::new(()),
                next_topic_id: AtomicU32::new(next_topic_id),
                commands: tx,
                threads: Mutex::new(Vec::new()),
                stop_background: Mutex::new(Vec::new()),
                space: space.clone(),
                checkpoint: Mutex::new(checkpoint),
            }),
        };
        let (stop_tx, stop_rx) = std::sync::mpsc::channel();
        let cleaner = Cleaner::new(store.inner.ctx.clone(), store.inner.topics.clone());
        let interval = options.cleaner_interval;
        threads.push(
            std::thread::Builder::new()
                .name("weir-cleaner".into())
                .spawn(move || cleaner.run(interval, stop_rx))
                .map_err(sled::Error::Io)?,
        );
        let (stop_sampler, sampler_rx) = std::sync::mpsc::channel::<()>();
        let keeper = store.clone();
        threads.push(
            std::thread::Builder::new()
                .name("weir-housekeeping".into())
                .spawn(move || {
                    let mut tick = 0u32;
                    while let Err(std::sync::mpsc::RecvTimeoutError::Timeout) =
                        sampler_rx.recv_timeout(space::SAMPLE_INTERVAL)
                    {
                        space.sample(keeper.path());
                        tick += 1;
                        if tick.is_multiple_of(CHECKPOINT_EVERY_TICKS) {
                            keeper.save_checkpoint();
                        }
                    }
                })
                .map_err(sled::Error::Io)?,
        );
        *store.inner.threads.lock() = threads;
        *store.inner.stop_background.lock() = vec![stop_tx, stop_sampler];
        Ok(store)
    }

    /// The data directory.
    pub fn path(&self) -> &Path {
        &self.inner.path
    }

    /// Write-path counters.
    pub fn stats(&self) -> &Stats {
        &self.inner.ctx.stats
    }

    /// The free-space floor and the latest free-space estimate.
    pub fn space(&self) -> &DiskSpace {
        &self.inner.space
    }

    pub(crate) fn ctx(&self) -> &WriteContext {
        &self.inner.ctx
    }

    /// Returns once everything appended before the call is durable.
    pub async fn flush(&self) -> Result<()> {
        let (reply, rx) = oneshot::channel();
        self.send(Command::Flush { reply }).await?;
        rx.await.map_err(|_| StorageError::ShuttingDown)?
    }

    async fn send(&self, cmd: Command) -> Result<()> {
        self.inner
            .commands
            .send(cmd)
            .await
            .map_err(|_| StorageError::ShuttingDown)
    }

    /// Stops the threads after the work queued so far, with a final flush. Appends
    /// after this fail with `ShuttingDown`.
    pub async fn shutdown(&self) {
        for stop in std::mem::take(&mut *self.inner.stop_background.lock()) {
            let _ = stop.send(());
        }
        let _ = self.send(Command::Shutdown).await;
        let threads = std::mem::take(&mut *self.inner.threads.lock());
        for t in threads {
            let _ = t.join();
        }
        match self.ctx().db.flush() {
            Ok(_) if self.stats().failure().is_none() => self.save_checkpoint(),
            Ok(_) => {}
            Err(e) => tracing::error!(error = %e, "final flush failed"),
        }
    }
}
