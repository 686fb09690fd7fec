//! The write path: one writer thread and one flusher thread (group commit).
//!
//! Requests arrive on a channel with their batches already encoded. The writer drains
//! everything waiting (a *round*), assigns offsets, stamps and CRCs each batch, merges
//! the batches of each partition into one chunk, and writes the whole round with one
//! atomic sled `apply_batch`. It then hands the round to the flusher and starts the
//! next round at once, so writing and flushing overlap.
//!
//! The flusher drains all rounds waiting for it, calls `flush` once (sled writes and
//! fsyncs its log), then advances the partitions' high watermarks and answers the
//! `acks=all` requests. However many requests are in flight, they share one flush.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Instant;

use tokio::sync::{mpsc, oneshot};

use crate::batch::EncodedBatch;
use crate::error::{Result, StorageError};
use crate::fsync::SledFiles;
use crate::keys;
use crate::stats::Stats;
use crate::topic::Topic;

/// When an append is answered.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Acks {
    /// After a flush covering the append (fsync'd).
    #[default]
    All,
    /// After the in-memory append; flushed in the background right after.
    None,
}

/// Most requests merged into one round.
const MAX_ROUND_REQUESTS: usize = 4096;
/// Most bytes merged into one round.
const MAX_ROUND_BYTES: usize = 64 << 20;
/// A chunk (one sled value) is closed before it passes this size.
///
/// Why 7 KiB: sled writes any log item over ~128 KiB (a quarter of its 512 KiB
/// segment) to a blob file of its own, and that includes a whole leaf node when it
/// consolidates one (every ~10 updates). Leaves split only above 16 entries, so a leaf
/// of 17 chunks of 7 KiB stays under the threshold and no blob is ever written:
/// measured, this took 1000-record publishes from ~0.55 M to ~0.7 M records/s and cut
/// their p99 in half, because each blob costs a file and an fsync.
pub const MAX_CHUNK_BYTES: usize = 7 << 10;

pub(crate) type Reply<T> = oneshot::Sender<Result<T>>;

/// One encoded batch for one partition of one topic.
#[derive(Debug)]
pub struct TopicBatch {
    /// The topic.
    pub topic: Arc<Topic>,
    /// The partition.
    pub partition: u32,
    /// The records.
    pub batch: EncodedBatch,
}

/// One write to the key-value tree: a value to set, or `None` to remove the key.
pub type KvOp = (Vec<u8>, Option<Vec<u8>>);

/// A key-value pair written with an append whose value is `prefix` followed by the
/// base offsets the append got (8 bytes big-endian each, in batch order): a record of
/// what a request stored (an idempotency key's answer) that exists exactly when the
/// records do, though the offsets are only known inside the write.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BasesNote {
    /// The key.
    pub key: Vec<u8>,
    /// The value's bytes before the bases.
    pub prefix: Vec<u8>,
}

impl BasesNote {
    /// Splits a stored note's value into its prefix and the bases that follow it.
    pub fn split(value: &[u8], prefix_len: usize) -> Option<(&[u8], Vec<u64>)> {
        let (prefix, rest) = value.split_at_checked(prefix_len)?;
        if rest.len() % 8 != 0 {
            return None;
        }
        let bases = rest
            .chunks_exact(8)
            .map(|c| u64::from_be_bytes(c.try_into().expect("8 bytes")))
            .collect();
        Some((prefix, bases))
    }

    fn value(self, bases: &[u64]) -> (Vec<u8>, Option<Vec<u8>>) {
        let mut value = self.prefix;
        value.reserve(bases.len() * 8);
        for b in bases {
            value.extend_from_slice(&b.to_be_bytes());
        }
        (self.key, Some(value))
    }
}

/// An append written in this round, waiting to be answered, with the key-value
/// writes that commit with it, and whether all its records went into one chunk.
type PendingAppend = (Reply<Vec<u64>>, Acks, Vec<u64>, Vec<KvOp>, bool);

pub(crate) enum Command {
    Append {
        /// Batches of one or more topics, stored all together or not at all.
        batches: Vec<TopicBatch>,
        /// Key-value writes stored atomically with the batches (a source's cursor).
        kv: Vec<KvOp>,
        /// A key-value pair carrying the bases, stored atomically with the batches.
        note: Option<BasesNote>,
        acks: Acks,
        reply: Reply<Vec<u64>>,
    },
    DeleteTopic {
        topic: Arc<Topic>,
        reply: Reply<()>,
    },
    /// Answered after everything before it is flushed.
    Flush {
        reply: Reply<()>,
    },
    /// Writes to the key-value tree, answered once durable.
    Kv {
        ops: Vec<KvOp>,
        reply: Reply<()>,
    },
    /// Finish the current round, then stop.
    Shutdown,
}

impl Command {
    fn bytes(&self) -> usize {
        match self {
            Command::Append { batches, .. } => batches.iter().map(|b| b.batch.len()).sum(),
            _ => 0,
        }
    }
}

/// What the flusher makes durable and visible.
#[derive(Default)]
struct FlushJob {
    /// Partitions whose high watermark moves to the given end once flushed.
    advance: Vec<(Arc<Topic>, u32, u64)>,
    /// Requests answered once flushed.
    waiters: Vec<(Reply<Vec<u64>>, Vec<u64>)>,
    barriers: Vec<Reply<()>>,
    /// Records written in the rounds this job covers.
    records: u64,
}

impl FlushJob {
    fn is_empty(&self) -> bool {
        self.advance.is_empty() && self.waiters.is_empty() && self.barriers.is_empty()
    }
}

/// Shared by the writer and the flusher.
#[derive(Debug)]
pub(crate) struct WriteContext {
    pub db: sled::Db,
    pub data: sled::Tree,
    pub meta: sled::Tree,
    /// Small durable key-value data of higher layers (group offsets, plugin state).
    pub kv: sled::Tree,
    pub stats: Arc<Stats>,
    /// The directory sled lives in.
    pub dir: std::path::PathBuf,
}

/// Runs the writer until the command channel closes; then the flusher drains and exits.
pub(crate) fn spawn(
    ctx: Arc<WriteContext>,
    commands: mpsc::Receiver<Command>,
) -> std::io::Result<Vec<std::thread::JoinHandle<()>>> {
    let (flush_tx, flush_rx) = std::sync::mpsc::channel::<FlushJob>();
    let flusher_ctx = ctx.clone();
    let flusher = std::thread::Builder::new()
        .name("weir-flusher".into())
        .spawn(move || run_flusher(&flusher_ctx, flush_rx))?;
    let writer = std::thread::Builder::new()
        .name("weir-writer".into())
        .spawn(move || run_writer(&ctx, commands, flush_tx))?;
    Ok(vec![writer, flusher])
}

fn run_writer(
    ctx: &WriteContext,
    mut commands: mpsc::Receiver<Command>,
    flush_tx: std::sync::mpsc::Sender<FlushJob>,
) {
    let mut round = Vec::new();
    let mut stopping = false;
    while let Some(first) = next_command(&mut commands) {
        let mut bytes = first.bytes();
        round.push(first);
        while round.len() < MAX_ROUND_REQUESTS && bytes < MAX_ROUND_BYTES {
            match commands.try_recv() {
                Ok(cmd) => {
                    bytes += cmd.bytes();
                    round.push(cmd);
                }
                Err(_) => break,
            }
        }
        stopping |= round.iter().any(|c| matches!(c, Command::Shutdown));
        let job = process_round(ctx, &mut round);
        if !job.is_empty() && flush_tx.send(job).is_err() {
            break;
        }
        if stopping {
            break;
        }
    }
    tracing::debug!("writer stopped");
}

/// The next command; yields the CPU a few times before sleeping, so a steady stream
/// of appends does not pay a thread wake-up per round: single-record publishes at
/// `acks=none` went from ~47 K to ~56 K/s with it (a sleeping thread's wake-up on
/// two busy cores is the round's longest wait). Idle, it costs [`SPIN_YIELDS`]
/// `sched_yield` calls per round.
fn next_command(commands: &mut mpsc::Receiver<Command>) -> Option<Command> {
    for _ in 0..SPIN_YIELDS {
        match commands.try_recv() {
            Ok(cmd) => return Some(cmd),
            Err(mpsc::error::TryRecvError::Disconnected) => return None,
            Err(mpsc::error::TryRecvError::Empty) => std::thread::yield_now(),
        }
    }
    commands.blocking_recv()
}

/// How many times the writer yields before it sleeps.
const SPIN_YIELDS: usize = 64;

/// The chunks being assembled for one partition in this round.
struct ChunkBuild {
    topic: Arc<Topic>,
    partition: u32,
    /// Closed chunks: (base offset, bytes).
    closed: Vec<(u64, Vec<u8>)>,
    first_base: u64,
    next: u64,
    buf: Vec<u8>,
    /// Bytes of all chunks, closed and open.
    bytes: u64,
}

impl ChunkBuild {
    fn add(&mut self, batch: &EncodedBatch) -> u64 {
        if !self.buf.is_empty() && self.buf.len() + batch.len() > MAX_CHUNK_BYTES {
            let full = std::mem::take(&mut self.buf);
            self.closed.push((self.first_base, full));
            self.first_base = self.next;
        }
        let base = self.next;
        batch.seal_into(base, &mut self.buf);
        self.next += batch.offset_span();
        self.bytes += batch.len() as u64;
        base
    }
}

fn process_round(ctx: &WriteContext, round: &mut Vec<Command>) -> FlushJob {
    let mut job = FlushJob::default();
    let mut chunks: HashMap<(u32, u32), ChunkBuild> = HashMap::new();
    let mut pending: Vec<PendingAppend> = Vec::new();
    let mut kv = sled::Batch::default();
    let mut kv_replies: Vec<Reply<()>> = Vec::new();
    for cmd in round.drain(..) {
        match cmd {
            Command::Append {
                batches,
                kv: mut side,
                note,
                acks,
                reply,
            } => {
                if let Some(err) = ctx.stats.failure() {
                    let _ = reply.send(Err(StorageError::Failed(err)));
                    continue;
                }
                if let Some(gone) = batches.iter().find(|b| b.topic.is_deleted()) {
                    let _ = reply.send(Err(StorageError::TopicNotFound(gone.topic.name.clone())));
                    continue;
                }
                let mut bases = Vec::with_capacity(batches.len());
                // The chunk (one sled key) each batch went into: an append wholly in
                // one chunk is atomic with a plain insert.
                let mut chunk_key: Option<(u32, u32, u64)> = None;
                let mut one_chunk = true;
                for b in &batches {
                    let (topic, p) = (&b.topic, b.partition);
                    let chunk = chunks.entry((topic.id, p)).or_insert_with(|| {
                        let start = topic.partitions[p as usize].log_end.load(Ordering::Acquire);
                        ChunkBuild {
                            topic: topic.clone(),
                            partition: p,
                            closed: Vec::new(),
                            first_base: start,
                            next: start,
                            buf: Vec::new(),
                            bytes: 0,
                        }
                    });
                    bases.push(chunk.add(&b.batch));
                    let key = (topic.id, p, chunk.first_base);
                    one_chunk &= chunk_key.is_none_or(|k| k == key);
                    chunk_key = Some(key);
                }
                if let Some(note) = note {
                    side.push(note.value(&bases));
                }
                pending.push((reply, acks, bases, side, one_chunk));
            }
            Command::DeleteTopic { topic, reply } => {
                // Write what came before, so order is kept, then delete.
                write_chunks(ctx, &mut chunks, &mut pending, &mut job);
                let _ = reply.send(delete_topic(ctx, &topic));
            }
            Command::Flush { reply } => job.barriers.push(reply),
            Command::Kv { ops, reply } => {
                for (key, value) in ops {
                    match value {
                        Some(v) => kv.insert(key, v),
                        None => kv.remove(key),
                    }
                }
                kv_replies.push(reply);
            }
            Command::Shutdown => {}
        }
    }
    write_chunks(ctx, &mut chunks, &mut pending, &mut job);
    if !kv_replies.is_empty() {
        match ctx.kv.apply_batch(kv) {
            Ok(()) => job.barriers.extend(kv_replies),
            Err(e) => {
                for reply in kv_replies {
                    let _ = reply.send(Err(StorageError::Engine(e.clone())));
                }
            }
        }
    }
    job
}

fn write_chunks(
    ctx: &WriteContext,
    chunks: &mut HashMap<(u32, u32), ChunkBuild>,
    pending: &mut Vec<PendingAppend>,
    job: &mut FlushJob,
) {
    if chunks.is_empty() {
        return;
    }
    let mut batch_inserts: Vec<(Vec<u8>, Vec<u8>)> = Vec::new();
    let mut records = 0u64;
    for c in chunks.values_mut() {
        records += c.next - c.closed.first().map_or(c.first_base, |(b, _)| *b);
        for (base, bytes) in c.closed.drain(..) {
            batch_inserts.push((
                keys::data_key(c.topic.id, c.partition, base).to_vec(),
                bytes,
            ));
        }
        let last = std::mem::take(&mut c.buf);
        batch_inserts.push((
            keys::data_key(c.topic.id, c.partition, c.first_base).to_vec(),
            last,
        ));
    }
    let mut side = sled::Batch::default();
    let mut has_side = false;
    let each_in_one_chunk = pending.iter().all(|p| p.4);
    for (_, _, _, ops, _) in pending.iter_mut() {
        for (key, value) in ops.drain(..) {
            has_side = true;
            match value {
                Some(v) => side.insert(key, v),
                None => side.remove(key),
            }
        }
    }
    let started = Instant::now();
    let result = if !has_side && each_in_one_chunk {
        // Every append lies in one chunk: inserting the chunks one by one keeps each
        // append all-or-nothing. sled's `apply_batch` takes a global write lock that
        // waits for a running `flush` (which holds the read side through its I/O);
        // `insert` takes the read side, so the next round is written while the
        // previous one is being flushed, as this thread and the flusher intend.
        batch_inserts
            .into_iter()
            .try_for_each(|(key, value)| ctx.data.insert(key, value).map(|_| ()))
    } else if has_side {
        // Records and the key-value writes that go with them (a source's cursor) in
        // one multi-tree transaction: after a crash both exist or neither does.
        let batch = as_sled_batch(batch_inserts);
        sled::Transactional::transaction(&(&ctx.data, &ctx.kv), |(data, kv)| {
            data.apply_batch(&batch)?;
            kv.apply_batch(&side)?;
            Ok::<_, sled::transaction::ConflictableTransactionError<()>>(())
        })
        .map_err(|e| match e {
            sled::transaction::TransactionError::Storage(e) => e,
            sled::transaction::TransactionError::Abort(()) => {
                sled::Error::Unsupported("transaction aborted".into())
            }
        })
    } else {
        ctx.data.apply_batch(as_sled_batch(batch_inserts))
    };
    ctx.stats.record_write(started.elapsed(), records);
    match result {
        Ok(()) => {
            job.records += records;
            for (_, c) in chunks.drain() {
                let part = &c.topic.partitions[c.partition as usize];
                part.log_end.store(c.next, Ordering::Release);
                part.size_bytes.fetch_add(c.bytes, Ordering::Relaxed);
                job.advance.push((c.topic, c.partition, c.next));
            }
            for (reply, acks, bases, _, _) in pending.drain(..) {
                match acks {
                    Acks::None => {
                        let _ = reply.send(Ok(bases));
                    }
                    Acks::All => job.waiters.push((reply, bases)),
                }
            }
        }
        Err(e) => {
            // sled may have applied part of the round in memory before the I/O error;
            // later rounds would reuse its offsets. Refuse writes instead, like a
            // failed flush.
            tracing::error!(error = %e, "writing a round of appends failed; nothing of it was acknowledged; refusing further writes");
            ctx.stats.set_failure(format!("write failed: {e}"));
            chunks.clear();
            for (reply, _, _, _, _) in pending.drain(..) {
                let _ = reply.send(Err(StorageError::Engine(e.clone())));
            }
        }
    }
}

fn as_sled_batch(inserts: Vec<(Vec<u8>, Vec<u8>)>) -> sled::Batch {
    let mut batch = sled::Batch::default();
    for (key, value) in inserts {
        batch.insert(key, value);
    }
    batch
}

fn delete_topic(ctx: &WriteContext, topic: &Topic) -> Result<()> {
    topic.deleted.store(true, Ordering::Release);
    let mut batch = sled::Batch::default();
    for key in ctx.data.scan_prefix(keys::topic_prefix(topic.id)).keys() {
        batch.remove(key?);
    }
    ctx.data.apply_batch(batch)?;
    // The name may already belong to a topic created since: remove the definition only
    // while it is still this topic's.
    let key = keys::topic_meta(&topic.name);
    if let Some(current) = ctx.meta.get(&key)? {
        let same = serde_json::from_slice::<crate::topic::TopicRecord>(&current)
            .is_ok_and(|r| r.id == topic.id);
        if same {
            let _ = ctx
                .meta
                .compare_and_swap(&key, Some(&current), None::<&[u8]>)?;
        }
    }
    let mut meta = sled::Batch::default();
    for key in ctx
        .meta
        .scan_prefix(keys::log_start_topic_prefix(topic.id))
        .keys()
    {
        meta.remove(key?);
    }
    ctx.meta.apply_batch(meta)?;
    ctx.db.flush()?;
    Ok(())
}

fn run_flusher(ctx: &WriteContext, jobs: std::sync::mpsc::Receiver<FlushJob>) {
    let mut files = match SledFiles::open(&ctx.dir) {
        Ok(f) => Some(f),
        Err(e) => {
            let msg = format!("cannot open sled's log file for fsync: {e}");
            tracing::error!(error = %e, "cannot open sled's log file for fsync; refusing writes");
            ctx.stats.set_failure(msg);
            None
        }
    };
    while let Ok(mut job) = jobs.recv() {
        while let Ok(more) = jobs.try_recv() {
            job.advance.extend(more.advance);
            job.waiters.extend(more.waiters);
            job.barriers.extend(more.barriers);
            job.records += more.records;
        }
        let started = Instant::now();
        let result = ctx
            .db
            .flush()
            .map_err(|e| e.to_string())
            .and_then(|_| match files.as_mut() {
                Some(f) => f.sync().map_err(|e| format!("fsync: {e}")),
                None => Err("sled's log file is not open for fsync".to_string()),
            });
        ctx.stats
            .record_flush(started.elapsed(), job.waiters.len() as u64, job.records);
        match result {
            Ok(()) => {
                for (topic, p, end) in &job.advance {
                    topic.partitions[*p as usize].advance_to(*end);
                }
                for (reply, bases) in job.waiters {
                    let _ = reply.send(Ok(bases));
                }
                for reply in job.barriers {
                    let _ = reply.send(Ok(()));
                }
            }
            Err(e) => {
                // Never retry and then acknowledge: after a failed fsync the kernel may
                // have dropped the dirty pages ("fsyncgate"). Fail loudly instead.
                let msg = format!("flush failed: {e}");
                tracing::error!(error = %e, "flush failed; refusing further writes");
                ctx.stats.set_failure(msg.clone());
                for (reply, _) in job.waiters {
                    let _ = reply.send(Err(StorageError::Failed(msg.clone())));
                }
                for reply in job.barriers {
                    let _ = reply.send(Err(StorageError::Failed(msg.clone())));
                }
            }
        }
    }
    tracing::debug!("flusher stopped");
}
