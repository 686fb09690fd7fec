//! The store: opening and recovering the sled database, topic administration, appends
//! (through the writer) and reads.

use std::ops::Bound;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

use dashmap::DashMap;
use parking_lot::Mutex;
use serde::{Deserialize, Serialize};
use tokio::sync::{mpsc, oneshot};

use crate::batch::{self, EncodedBatch, RecordView};
use crate::checkpoint::{self, Checkpoint};
use crate::cleaner;
use crate::config::{CleanupPolicy, TopicConfig, validate_topic_name};
use crate::error::{Result, StorageError};
use crate::keys;
use crate::space::{self, DiskSpace};
use crate::stats::Stats;
use crate::topic::Topic;
use crate::writer::{self, Acks, Command, KvOp, TopicBatch, WriteContext};

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

/// Limits of one read.
#[derive(Debug, Clone, Copy)]
pub struct ReadLimits {
    /// Most records returned.
    pub max_records: usize,
    /// Stop after this many bytes of keys, values and headers (at least one record is
    /// returned, so a large record never blocks a reader).
    pub max_bytes: usize,
}

impl Default for ReadLimits {
    fn default() -> Self {
        Self {
            max_records: 1000,
            max_bytes: 4 << 20,
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

/// The persisted form of a topic.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct TopicRecord {
    pub(crate) id: u32,
    pub(crate) config: TopicConfig,
}

/// The partitioned log. Cheap to clone; all clones share one database and writer.
#[derive(Debug, Clone)]
pub struct Store {
    inner: Arc<Inner>,
}

struct Inner {
    path: PathBuf,
    ctx: Arc<WriteContext>,
    topics: DashMap<String, Arc<Topic>>,
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
        catch_engine_panic(|| Self::open_unguarded(path.as_ref(), options))
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
        let recovered = recover_topics(&ctx)?;
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
        let topics = DashMap::new();
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
        let cleaner_store = store.clone();
        let interval = options.cleaner_interval;
        threads.push(
            std::thread::Builder::new()
                .name("weir-cleaner".into())
                .spawn(move || cleaner::run(&cleaner_store, interval, stop_rx))
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

    /// Creates a topic. Creating an identical topic again is not an error
    /// ([`Created::Existing`]); a different config for an existing name is.
    pub fn create_topic(&self, name: &str, config: TopicConfig) -> Result<Created> {
        validate_topic_name(name)?;
        config.validate()?;
        let _guard = self.inner.admin.lock();
        if let Some(existing) = self.inner.topics.get(name) {
            return if existing.config == config {
                Ok(Created::Existing)
            } else {
                Err(StorageError::TopicExists(name.to_string()))
            };
        }
        let id = self.inner.next_topic_id.fetch_add(1, Ordering::AcqRel);
        let record = TopicRecord {
            id,
            config: config.clone(),
        };
        let json =
            serde_json::to_vec(&record).map_err(|e| StorageError::InvalidConfig(e.to_string()))?;
        let mut meta = sled::Batch::default();
        meta.insert(keys::topic_meta(name), json);
        meta.insert(keys::NEXT_TOPIC_ID, &(id + 1).to_be_bytes());
        let ctx = self.ctx();
        ctx.meta.apply_batch(meta)?;
        ctx.db.flush()?;
        self.inner.topics.insert(
            name.to_string(),
            Arc::new(Topic::new(id, name.to_string(), config)),
        );
        tracing::info!(topic = name, id, "topic created");
        Ok(Created::New)
    }

    /// Deletes a topic and all its data, after every append queued before it.
    pub async fn delete_topic(&self, name: &str) -> Result<()> {
        let topic = self.topic(name)?;
        // The checkpoint forgets the topic before its data goes, so a crash in between
        // is not mistaken for lost data. Only this very topic: a concurrent delete, or
        // a delete and a create of the same name, must not remove another.
        if !self.forget_topic(&topic) {
            return Err(StorageError::TopicNotFound(name.to_string()));
        }
        let (reply, rx) = oneshot::channel();
        self.send(Command::DeleteTopic { topic, reply }).await?;
        rx.await.map_err(|_| StorageError::ShuttingDown)??;
        tracing::info!(topic = name, "topic deleted");
        Ok(())
    }

    /// Takes `topic` out of the map and the checkpoint (under the checkpoint's lock, so
    /// the periodic save cannot put it back). False if it was no longer there.
    fn forget_topic(&self, topic: &Arc<Topic>) -> bool {
        let mut last = self.inner.checkpoint.lock();
        let removed = self
            .inner
            .topics
            .remove_if(&topic.name, |_, t| Arc::ptr_eq(t, topic))
            .is_some();
        if removed {
            self.save_checkpoint_locked(&mut last);
        }
        removed
    }

    /// Saves the watermark checkpoint if it changed.
    fn save_checkpoint(&self) {
        let mut last = self.inner.checkpoint.lock();
        self.save_checkpoint_locked(&mut last);
    }

    fn save_checkpoint_locked(&self, last: &mut Option<Checkpoint>) {
        let now = Checkpoint::of(
            self.inner
                .topics
                .iter()
                .map(|t| t.value().clone())
                .collect::<Vec<_>>()
                .iter(),
        );
        if last.as_ref() == Some(&now) {
            return;
        }
        match now.save(&self.inner.path) {
            Ok(()) => *last = Some(now),
            Err(e) => {
                // A stale checkpoint could lead the store (a deleted topic still in it):
                // better none, which checks nothing, until a save succeeds. Unlinking
                // needs no free space.
                tracing::warn!(error = %e, "cannot save the watermark checkpoint; removed it until a save succeeds");
                let _ = std::fs::remove_file(self.inner.path.join(checkpoint::FILE));
                *last = None;
            }
        }
    }

    /// The topic named `name`.
    pub fn topic(&self, name: &str) -> Result<Arc<Topic>> {
        self.inner
            .topics
            .get(name)
            .map(|t| t.clone())
            .ok_or_else(|| StorageError::TopicNotFound(name.to_string()))
    }

    /// All topics, sorted by name.
    pub fn topics(&self) -> Vec<Arc<Topic>> {
        let mut all: Vec<_> = self.inner.topics.iter().map(|t| t.clone()).collect();
        all.sort_by(|a, b| a.name.cmp(&b.name));
        all
    }

    /// Appends batches atomically: every batch of the call is stored, or none is.
    /// Returns each batch's base offset, in the order given. With [`Acks::All`] it
    /// returns once a flush covers the batches.
    pub async fn append(
        &self,
        topic: &Arc<Topic>,
        batches: Vec<(u32, EncodedBatch)>,
        acks: Acks,
    ) -> Result<Vec<u64>> {
        let batches = batches
            .into_iter()
            .map(|(partition, batch)| TopicBatch {
                topic: topic.clone(),
                partition,
                batch,
            })
            .collect();
        self.append_many(batches, acks).await
    }

    /// Appends batches of any number of topics atomically: they land in one sled
    /// batch, so after a crash either all of them exist or none does, and they are
    /// acknowledged together. Returns each batch's base offset, in the order given.
    pub async fn append_many(&self, batches: Vec<TopicBatch>, acks: Acks) -> Result<Vec<u64>> {
        self.append_committing(batches, Vec::new(), acks).await
    }

    /// [`append_many`](Self::append_many) plus key-value writes committed atomically
    /// with the batches: after a crash either the records and the writes exist, or
    /// neither does. With no batches, the writes alone are made durable.
    pub async fn append_committing(
        &self,
        batches: Vec<TopicBatch>,
        kv: Vec<KvOp>,
        acks: Acks,
    ) -> Result<Vec<u64>> {
        let mut bytes = 0u64;
        for b in &batches {
            b.topic.partition(b.partition)?;
            bytes += b.batch.len() as u64;
        }
        if batches.is_empty() {
            self.kv_write(kv).await?;
            return Ok(Vec::new());
        }
        // Before anything is queued, so a refusal writes nothing. Key-value writes
        // alone (offset commits, plugin state) are small and use the floor's headroom.
        self.inner.space.admit(bytes)?;
        let (reply, rx) = oneshot::channel();
        self.send(Command::Append {
            batches,
            kv,
            acks,
            reply,
        })
        .await?;
        rx.await.map_err(|_| StorageError::ShuttingDown)?
    }

    /// Writes to the key-value tree atomically; returns once they are durable (they
    /// share the flush of concurrent appends).
    pub async fn kv_write(&self, ops: Vec<KvOp>) -> Result<()> {
        if ops.is_empty() {
            return Ok(());
        }
        let (reply, rx) = oneshot::channel();
        self.send(Command::Kv { ops, reply }).await?;
        rx.await.map_err(|_| StorageError::ShuttingDown)?
    }

    /// Writes one key-value pair now, without waiting for durability: it becomes
    /// durable with the next flush (every acknowledged append is one). For callers that
    /// cannot wait, such as a plugin's synchronous `state-set` inside a batch call: the
    /// batch's own records are flushed before they are acknowledged, and this write
    /// was made before them.
    pub fn kv_put_now(&self, key: &[u8], value: Option<&[u8]>) -> Result<()> {
        match value {
            Some(v) => self.ctx().kv.insert(key, v)?,
            None => self.ctx().kv.remove(key)?,
        };
        Ok(())
    }

    /// A value of the key-value tree.
    pub fn kv_get(&self, key: &[u8]) -> Result<Option<Vec<u8>>> {
        catch_engine_panic(|| Ok(self.ctx().kv.get(key)?.map(|v| v.to_vec())))
    }

    /// Every key-value pair whose key starts with `prefix`, in key order.
    pub fn kv_scan(&self, prefix: &[u8]) -> Result<Vec<(Vec<u8>, Vec<u8>)>> {
        catch_engine_panic(|| {
            self.ctx()
                .kv
                .scan_prefix(prefix)
                .map(|item| {
                    let (k, v) = item?;
                    Ok((k.to_vec(), v.to_vec()))
                })
                .collect()
        })
    }

    /// The first offset whose record has a timestamp at or after `timestamp_ms`, or the
    /// high watermark if there is none. Timestamps are the broker's append times, so
    /// they grow with offsets and a binary search over chunks finds the spot.
    pub fn offset_for_timestamp(
        &self,
        topic: &Topic,
        partition: u32,
        timestamp_ms: i64,
    ) -> Result<u64> {
        catch_engine_panic(|| self.offset_for_timestamp_unguarded(topic, partition, timestamp_ms))
    }

    fn offset_for_timestamp_unguarded(
        &self,
        topic: &Topic,
        partition: u32,
        timestamp_ms: i64,
    ) -> Result<u64> {
        let part = topic.partition(partition)?;
        let hw = part.high_watermark();
        let data = &self.ctx().data;
        let first = keys::data_key(topic.id, partition, 0);
        let end = keys::data_key(topic.id, partition, hw);
        // Chunks before `lo` are entirely older than the target.
        let mut lo = part.log_start_offset();
        let mut hi = hw;
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            let probe = keys::data_key(topic.id, partition, mid);
            let chunk = data
                .range::<&[u8], _>((Bound::Included(&first[..]), Bound::Included(&probe[..])))
                .next_back()
                .transpose()?;
            let Some((key, chunk)) = chunk else {
                break;
            };
            let base = keys::base_offset_of(&key);
            let mut chunk_end = base;
            let mut newest = i64::MIN;
            for b in batch::batches(&chunk) {
                let h = b?.header;
                chunk_end = chunk_end.max(h.end_offset());
                if h.record_count > 0 {
                    newest = newest.max(h.max_timestamp_ms);
                }
            }
            if newest < timestamp_ms {
                lo = chunk_end.max(mid + 1);
            } else {
                hi = base.min(hi);
                if base <= lo {
                    break;
                }
            }
        }
        // Scan forward from `lo` to the first record at or after the timestamp.
        let start = keys::data_key(topic.id, partition, lo.min(hw));
        let containing = data
            .range::<&[u8], _>((Bound::Included(&first[..]), Bound::Included(&start[..])))
            .next_back()
            .transpose()?;
        let later =
            data.range::<&[u8], _>((Bound::Excluded(&start[..]), Bound::Excluded(&end[..])));
        for item in containing.into_iter().map(Ok).chain(later) {
            let (_, chunk) = item?;
            for b in batch::batches(&chunk) {
                for r in b?.records() {
                    let r = r?;
                    if r.offset >= hw {
                        return Ok(hw);
                    }
                    if r.offset >= lo && r.timestamp_ms >= timestamp_ms {
                        return Ok(r.offset);
                    }
                }
            }
        }
        Ok(hw)
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

    /// Reads records of one partition from `offset` on, up to the high watermark.
    ///
    /// `offset` must lie in `[log_start_offset, high_watermark]`; at the high watermark
    /// the result is empty. Offsets removed by compaction are skipped. Every batch
    /// touched is CRC-checked; damage is an error, never a short read.
    pub fn read(
        &self,
        topic: &Topic,
        partition: u32,
        offset: u64,
        limits: ReadLimits,
    ) -> Result<ReadResult> {
        // sled loads pages lazily and panics on some damaged ones instead of erring.
        catch_engine_panic(|| self.read_unguarded(topic, partition, offset, limits))
    }

    fn read_unguarded(
        &self,
        topic: &Topic,
        partition: u32,
        offset: u64,
        limits: ReadLimits,
    ) -> Result<ReadResult> {
        let part = topic.partition(partition)?;
        let high_watermark = part.high_watermark();
        let log_start_offset = part.log_start_offset();
        if offset < log_start_offset || offset > high_watermark {
            return Err(StorageError::OffsetOutOfRange {
                offset,
                log_start_offset,
                high_watermark,
            });
        }
        let mut result = ReadResult {
            chunks: Vec::new(),
            from: offset,
            next_offset: high_watermark,
            count: 0,
            high_watermark,
            log_start_offset,
        };
        if offset == high_watermark || limits.max_records == 0 {
            result.next_offset = offset;
            return Ok(result);
        }
        let data = &self.ctx().data;
        let start_key = keys::data_key(topic.id, partition, offset);
        let first = keys::data_key(topic.id, partition, 0);
        // The chunk holding `offset` starts at or before it.
        let containing = data
            .range::<&[u8], _>((Bound::Included(&first[..]), Bound::Included(&start_key[..])))
            .next_back()
            .transpose()?;
        let end_key = keys::data_key(topic.id, partition, high_watermark);
        let later = data.range::<&[u8], _>((
            Bound::Excluded(&start_key[..]),
            Bound::Excluded(&end_key[..]),
        ));
        let mut bytes = 0usize;
        // Where the next batch must start. Batches keep their spans through compaction,
        // but compaction drops emptied chunks, so only `delete` topics are gap-free;
        // every topic's stored batches reach the high watermark.
        let gap_free = topic.config.cleanup_policy == CleanupPolicy::Delete;
        let mut expect = offset;
        let missing = |from: u64, to: u64| {
            // Retention may have deleted chunks while this read walked them: that is
            // an offset out of range now, not damage.
            let log_start_offset = part.log_start_offset();
            if log_start_offset > from {
                return StorageError::OffsetOutOfRange {
                    offset,
                    log_start_offset,
                    high_watermark,
                };
            }
            StorageError::corrupt(format!(
                "topic '{}' partition {partition}: offsets [{from}, {to}) are missing from the store",
                topic.name
            ))
        };
        for item in containing.into_iter().map(Ok).chain(later) {
            let (_, chunk) = item?;
            let mut full = false;
            let mut used = false;
            'batches: for b in batch::batches(&chunk) {
                let b = b?;
                if b.header.end_offset() <= offset {
                    continue;
                }
                if gap_free && b.header.base_offset > expect {
                    return Err(missing(expect, b.header.base_offset));
                }
                expect = expect.max(b.header.end_offset());
                for r in b.records() {
                    let r = r?;
                    if r.offset < offset {
                        continue;
                    }
                    if r.offset >= high_watermark {
                        break 'batches;
                    }
                    let size = record_size(&r);
                    if result.count > 0
                        && (result.count >= limits.max_records || bytes + size > limits.max_bytes)
                    {
                        result.next_offset = r.offset;
                        full = true;
                        break 'batches;
                    }
                    bytes += size;
                    result.count += 1;
                    used = true;
                }
            }
            if used {
                result.chunks.push(chunk);
            }
            if full {
                return Ok(result);
            }
        }
        if expect < high_watermark {
            return Err(missing(expect, high_watermark));
        }
        Ok(result)
    }

    /// Sizes of every stored chunk of a topic (for tests of the chunking policy).
    #[doc(hidden)]
    pub fn chunk_sizes(&self, topic: &Topic) -> Vec<usize> {
        self.ctx()
            .data
            .scan_prefix(keys::topic_prefix(topic.id))
            .values()
            .filter_map(|v| v.ok().map(|v| v.len()))
            .collect()
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

/// What a read returned: the chunks it touched and the offsets it covers.
#[derive(Debug)]
pub struct ReadResult {
    chunks: Vec<sled::IVec>,
    from: u64,
    /// Where the next read should start.
    pub next_offset: u64,
    /// Number of records returned.
    pub count: usize,
    /// The partition's high watermark at the time of the read.
    pub high_watermark: u64,
    /// The partition's log start offset at the time of the read.
    pub log_start_offset: u64,
}

impl ReadResult {
    /// The records, in offset order, borrowing from the stored chunks.
    pub fn records(&self) -> impl Iterator<Item = RecordView<'_>> {
        let (from, to) = (self.from, self.next_offset);
        self.chunks
            .iter()
            .flat_map(|c| batch::batches(c))
            // The read verified every batch and record it returns.
            .filter_map(|b| b.ok())
            .flat_map(|b| b.records())
            .filter_map(|r| r.ok())
            .filter(move |r| r.offset >= from && r.offset < to)
    }
}

/// Opens sled, turning a panic in its recovery into a `storage_corrupt` error.
///
/// Why: sled 0.34 indexes out of bounds on some damaged logs (a truncated segment, for
/// one) instead of returning an error; a broker must refuse such a store with a clear
/// message, not crash with a backtrace.
pub(crate) fn open_sled(config: sled::Config) -> Result<sled::Db> {
    catch_engine_panic(|| Ok(config.open()?))
}

/// Runs `f`, turning a panic inside sled into a `storage_corrupt` error.
pub(crate) fn catch_engine_panic<T>(f: impl FnOnce() -> Result<T>) -> Result<T> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)).unwrap_or_else(|panic| {
        let msg = panic
            .downcast_ref::<String>()
            .map(String::as_str)
            .or_else(|| panic.downcast_ref::<&str>().copied())
            .unwrap_or("no message");
        Err(StorageError::corrupt(format!(
            "the storage engine failed on damaged data ({msg})"
        )))
    })
}

fn record_size(r: &RecordView<'_>) -> usize {
    r.key.map_or(0, <[u8]>::len)
        + r.value.map_or(0, <[u8]>::len)
        + r.headers().map(|(n, v)| n.len() + v.len()).sum::<usize>()
}

fn recover_topics(ctx: &WriteContext) -> Result<Vec<Topic>> {
    let mut topics = Vec::new();
    for item in ctx.meta.scan_prefix(keys::TOPIC_META_PREFIX) {
        let (key, value) = item?;
        let name = String::from_utf8_lossy(&key[keys::TOPIC_META_PREFIX.len()..]).into_owned();
        let record: TopicRecord = serde_json::from_slice(&value)
            .map_err(|e| StorageError::corrupt(format!("topic '{name}' metadata: {e}")))?;
        let topic = Topic::new(record.id, name, record.config);
        for (p, part) in topic.partitions.iter().enumerate() {
            let p = p as u32;
            let start = match ctx.meta.get(keys::log_start(topic.id, p))? {
                Some(v) => u64::from_be_bytes(
                    v.as_ref()
                        .try_into()
                        .map_err(|_| StorageError::corrupt("bad log start offset"))?,
                ),
                None => 0,
            };
            let mut end = start;
            let mut size = 0u64;
            let prefix = keys::partition_prefix(topic.id, p);
            let mut last = None;
            for chunk in ctx.data.scan_prefix(prefix) {
                let (key, value) = chunk?;
                size += value.len() as u64;
                last = Some((key, value));
            }
            if let Some((key, value)) = last {
                for b in batch::batches(&value) {
                    let b = b.map_err(|e| {
                        StorageError::corrupt(format!(
                            "topic '{}' partition {p} chunk at offset {}: {e}",
                            topic.name,
                            keys::base_offset_of(&key)
                        ))
                    })?;
                    end = end.max(b.header.end_offset());
                }
            }
            part.log_start.store(start, Ordering::Release);
            part.log_end.store(end, Ordering::Release);
            part.high_watermark.store(end, Ordering::Release);
            part.size_bytes.store(size, Ordering::Release);
        }
        topics.push(topic);
    }
    Ok(topics)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::batch::BatchBuilder;

    fn batch_of(values: &[&str]) -> EncodedBatch {
        let mut b = BatchBuilder::default();
        for v in values {
            b.push(1, 0, None, Some(v.as_bytes()), std::iter::empty())
                .unwrap();
        }
        b.finish()
    }

    /// A store in `dir` with a topic "t" of `partitions` partitions.
    fn with_topic(dir: &Path, partitions: u32) -> (Store, Arc<Topic>) {
        let store = Store::open(dir, StoreOptions::default()).unwrap();
        store
            .create_topic("t", TopicConfig::with_partitions(partitions))
            .unwrap();
        let t = store.topic("t").unwrap();
        (store, t)
    }

    /// A store with topic "t" whose one partition holds three chunks, one record each
    /// (separate acknowledged appends are separate rounds): "first", "second", "third".
    async fn with_three_chunks(dir: &Path) -> (Store, Arc<Topic>) {
        let (store, t) = with_topic(dir, 1);
        for v in ["first", "second", "third"] {
            store
                .append(&t, vec![(0, batch_of(&[v]))], Acks::All)
                .await
                .unwrap();
        }
        (store, t)
    }

    fn values(r: &ReadResult) -> Vec<(u64, String)> {
        r.records()
            .map(|r| {
                (
                    r.offset,
                    String::from_utf8(r.value.unwrap().to_vec()).unwrap(),
                )
            })
            .collect()
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn multi_partition_appends_get_contiguous_offsets_and_survive_reopen() {
        let dir = tempfile::tempdir().unwrap();
        {
            let (store, t) = with_topic(dir.path(), 2);
            let bases = store
                .append(
                    &t,
                    vec![(0, batch_of(&["a", "b"])), (1, batch_of(&["c"]))],
                    Acks::All,
                )
                .await
                .unwrap();
            assert_eq!(bases, [0, 0]);
            let bases = store
                .append(&t, vec![(0, batch_of(&["d"]))], Acks::None)
                .await
                .unwrap();
            assert_eq!(bases, [2]);
            store.flush().await.unwrap();
            let r = store.read(&t, 0, 1, ReadLimits::default()).unwrap();
            assert_eq!(values(&r), [(1, "b".into()), (2, "d".into())]);
            store.shutdown().await;
        }
        let store = Store::open(dir.path(), StoreOptions::default()).unwrap();
        let t = store.topic("t").unwrap();
        assert_eq!(t.partition(0).unwrap().high_watermark(), 3);
        assert_eq!(t.partition(1).unwrap().high_watermark(), 1);
        let r = store.read(&t, 1, 0, ReadLimits::default()).unwrap();
        assert_eq!(values(&r), [(0, "c".into())]);
        store.shutdown().await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn damaged_chunks_are_errors_never_short_reads() {
        let dir = tempfile::tempdir().unwrap();
        let (store, t) = with_three_chunks(dir.path()).await;
        // Flip one bit in the middle chunk's value bytes.
        let key = keys::data_key(t.id, 0, 1);
        let mut chunk = store.ctx().data.get(key).unwrap().unwrap().to_vec();
        let at = chunk.len() - 2;
        chunk[at] ^= 0x10;
        store.ctx().data.insert(key, chunk).unwrap();
        // Reads that touch it fail; reads past it still work.
        for from in [0, 1] {
            let err = store.read(&t, 0, from, ReadLimits::default()).unwrap_err();
            assert_eq!(err.code(), "storage_corrupt", "{err}");
        }
        let r = store.read(&t, 0, 2, ReadLimits::default()).unwrap();
        assert_eq!(values(&r), [(2, "third".into())]);
        store.shutdown().await;
        drop(store);

        // verify finds it; recover truncates to the last good batch and says so.
        let found = crate::repair::verify(dir.path()).unwrap();
        assert!(!found.is_clean());
        let p = &found.partitions[0];
        assert_eq!((p.good_end, p.stored_end, p.records), (1, 3, 1));
        assert!(p.damage.as_ref().unwrap().contains("CRC mismatch"), "{p:?}");
        let (_, dropped) = crate::repair::recover(dir.path()).unwrap();
        assert_eq!(dropped.len(), 1);
        assert_eq!((dropped[0].truncated_to, dropped[0].dropped_to), (1, 3));
        assert_eq!(dropped[0].chunks, 2);
        assert!(crate::repair::verify(dir.path()).unwrap().is_clean());
        let store = Store::open(dir.path(), StoreOptions::default()).unwrap();
        let t = store.topic("t").unwrap();
        // Offsets are not reused: [1, 3) is an empty span now.
        assert_eq!(t.partitions[0].high_watermark(), 3);
        let r = store.read(&t, 0, 0, ReadLimits::default()).unwrap();
        assert_eq!(values(&r), [(0, "first".into())]);
        assert_eq!(r.next_offset, 3);
        let base = store
            .append(&t, vec![(0, batch_of(&["again"]))], Acks::All)
            .await
            .unwrap();
        assert_eq!(base, [3]);
        let r = store.read(&t, 0, 1, ReadLimits::default()).unwrap();
        assert_eq!(values(&r), [(3, "again".into())]);
        store.shutdown().await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_missing_chunk_is_an_error_never_a_skip() {
        let dir = tempfile::tempdir().unwrap();
        let (store, t) = with_three_chunks(dir.path()).await;
        store.ctx().data.remove(keys::data_key(t.id, 0, 1)).unwrap();
        let err = store.read(&t, 0, 0, ReadLimits::default()).unwrap_err();
        assert!(
            err.to_string().contains("offsets [1, 2) are missing"),
            "{err}"
        );
        let err = store.read(&t, 0, 1, ReadLimits::default()).unwrap_err();
        assert_eq!(err.code(), "storage_corrupt");
        store.shutdown().await;
        drop(store);
        let found = crate::repair::verify(dir.path()).unwrap();
        assert_eq!(found.partitions[0].good_end, 1);
        assert!(
            found.partitions[0]
                .damage
                .as_ref()
                .unwrap()
                .contains("missing")
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_store_recovered_short_of_the_checkpoint_refuses_to_open() {
        let dir = tempfile::tempdir().unwrap();
        let (store, t) = with_three_chunks(dir.path()).await;
        store.shutdown().await;
        drop(store);
        // What sled does with a damaged log tail: recover less, silently.
        {
            let db = sled::open(dir.path()).unwrap();
            let data = db.open_tree("data").unwrap();
            data.remove(keys::data_key(t.id, 0, 2)).unwrap();
            db.flush().unwrap();
        }
        let err = Store::open(dir.path(), StoreOptions::default()).unwrap_err();
        assert!(err.is_damage());
        assert!(
            err.to_string().contains(
                "topic 't' partition 0 ends at offset 2 but offsets up to 3 were acknowledged"
            ),
            "{err}"
        );
        let (_, dropped) = crate::repair::recover(dir.path()).unwrap();
        assert_eq!((dropped[0].truncated_to, dropped[0].dropped_to), (2, 3));
        let store = Store::open(dir.path(), StoreOptions::default()).unwrap();
        assert_eq!(store.topic("t").unwrap().partitions[0].high_watermark(), 3);
        store.shutdown().await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_appends_share_flushes() {
        let dir = tempfile::tempdir().unwrap();
        let (store, t) = with_topic(dir.path(), 1);
        let mut tasks = Vec::new();
        for _ in 0..64 {
            let (store, t) = (store.clone(), t.clone());
            tasks.push(tokio::spawn(async move {
                for _ in 0..20 {
                    store
                        .append(&t, vec![(0, batch_of(&["x"]))], Acks::All)
                        .await
                        .unwrap();
                }
            }));
        }
        for task in tasks {
            task.await.unwrap();
        }
        let stats = store.stats().snapshot();
        assert_eq!(stats.requests_flushed, 64 * 20);
        assert!(
            stats.flushes < 64 * 20 / 2,
            "{} flushes for {} requests: no group commit",
            stats.flushes,
            64 * 20
        );
        let all = store
            .read(
                &t,
                0,
                0,
                ReadLimits {
                    max_records: 10_000,
                    max_bytes: usize::MAX,
                },
            )
            .unwrap();
        let offsets: Vec<u64> = all.records().map(|r| r.offset).collect();
        assert_eq!(offsets, (0..64 * 20).collect::<Vec<_>>());
        store.shutdown().await;
    }
}
