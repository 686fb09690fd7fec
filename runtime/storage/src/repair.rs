//! Offline checking and repair of a stopped store (`weir store verify` and
//! `weir store recover`).
//!
//! [`verify`] reads every chunk of every partition, checks each batch's CRC and that
//! the batches follow each other without gaps or overlaps, and compares where each
//! partition ends with the watermark checkpoint. [`recover`] then truncates every
//! damaged partition back to the end of its last good batch and says exactly what
//! went; what sled itself lost before the checkpoint is reported as lost, since no
//! copy of it exists. Both open sled directly, so they need the broker stopped (sled
//! holds a lock on the directory).

use std::path::Path;

use crate::batch::{self, BatchBuilder};
use crate::checkpoint::{Checkpoint, TopicMark};
use crate::config::CleanupPolicy;
use crate::engine::catch_engine_panic;
use crate::error::{Result, StorageError};
use crate::keys;
use crate::topic::TopicRecord;

/// What [`verify`] found in one partition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartitionCheck {
    /// Topic name.
    pub topic: String,
    /// Partition index.
    pub partition: u32,
    /// The first offset kept (retention).
    pub log_start: u64,
    /// One past the last offset of the intact prefix: where `recover` truncates to.
    pub good_end: u64,
    /// Where the stored batches claim the partition ends, as far as they can be read.
    pub stored_end: u64,
    /// The high watermark the checkpoint recorded, if any.
    pub acknowledged: Option<u64>,
    /// Chunks read.
    pub chunks: u64,
    /// Records verified in the intact prefix.
    pub records: u64,
    /// The first damage found, if any.
    pub damage: Option<String>,
}

impl PartitionCheck {
    /// Whether anything is wrong with the partition.
    pub fn is_damaged(&self) -> bool {
        self.damage.is_some() || self.acknowledged.is_some_and(|a| a > self.good_end)
    }
}

/// What [`verify`] found in the whole store.
#[derive(Debug, Clone, Default)]
pub struct StoreCheck {
    /// Every partition of every readable topic.
    pub partitions: Vec<PartitionCheck>,
    /// Damage outside partitions: unreadable topic metadata, topics that are gone.
    pub problems: Vec<String>,
    /// Topics whose metadata does not parse (`recover` removes them).
    pub unreadable_topics: Vec<String>,
    /// sled's derived files `recover` moved aside so sled could open the store.
    pub set_aside: Vec<String>,
}

impl StoreCheck {
    /// Whether the store is intact.
    pub fn is_clean(&self) -> bool {
        self.problems.is_empty() && !self.partitions.iter().any(PartitionCheck::is_damaged)
    }
}

/// What [`recover`] dropped from one partition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dropped {
    /// Topic name.
    pub topic: String,
    /// Partition index.
    pub partition: u32,
    /// The records kept end here; `[truncated_to, dropped_to)` is now an empty span
    /// and the next append gets `dropped_to`.
    pub truncated_to: u64,
    /// Offsets `[truncated_to, dropped_to)` were removed or lost.
    pub dropped_to: u64,
    /// Chunks removed or rewritten.
    pub chunks: u64,
    /// Stored bytes removed.
    pub bytes: u64,
    /// Why.
    pub reason: String,
}

/// Checks every batch of the store in `dir`. An error means sled could not open or
/// read the store at all.
pub fn verify(dir: &Path) -> Result<StoreCheck> {
    catch_engine_panic(|| {
        let db = open(dir)?;
        check(dir, &db)
    })
}

/// Truncates every damaged partition of the store in `dir` back to its last good
/// batch and saves a new checkpoint. Returns the check made before and what went.
pub fn recover(dir: &Path) -> Result<(StoreCheck, Vec<Dropped>)> {
    catch_engine_panic(|| recover_unguarded(dir))
}

fn recover_unguarded(dir: &Path) -> Result<(StoreCheck, Vec<Dropped>)> {
    let (db, set_aside) = open_for_repair(dir)?;
    let mut found = check(dir, &db)?;
    found.set_aside = set_aside;
    let data = db.open_tree("data")?;
    let mut dropped = Vec::new();
    let mut checkpoint = Checkpoint::default();
    for p in &found.partitions {
        let id = topic_id(&db, &p.topic)?;
        let mark = checkpoint
            .topics
            .entry(p.topic.clone())
            .or_insert_with(|| TopicMark {
                id,
                high_watermarks: Vec::new(),
            });
        mark.high_watermarks.push(
            p.good_end
                .max(p.stored_end)
                .max(p.acknowledged.unwrap_or(0)),
        );
        if !p.is_damaged() {
            continue;
        }
        let mut removal = sled::Batch::default();
        let (mut chunks, mut bytes) = (0, 0);
        for item in data.scan_prefix(keys::partition_prefix(id, p.partition)) {
            let (key, chunk) = item?;
            let keep = intact_prefix_len(&chunk, p.good_end);
            if keep == chunk.len() {
                continue;
            }
            chunks += 1;
            bytes += (chunk.len() - keep) as u64;
            if keep == 0 {
                removal.remove(key);
            } else {
                removal.insert(key, &chunk[..keep]);
            }
        }
        // Offsets are never reused: an empty batch spans what was dropped, so the next
        // append continues where the partition ended before, and a consumer that had
        // already read or committed past the damage does not skip new records.
        let dropped_to = p.stored_end.max(p.acknowledged.unwrap_or(0));
        let mut base = p.good_end;
        while base < dropped_to {
            let span = (dropped_to - base).min(u64::from(u32::MAX));
            let filler = BatchBuilder::default()
                .finish_with_last_delta((span - 1) as u32)
                .seal(base);
            removal.insert(&keys::data_key(id, p.partition, base), filler);
            base += span;
        }
        data.apply_batch(removal)?;
        dropped.push(Dropped {
            topic: p.topic.clone(),
            partition: p.partition,
            truncated_to: p.good_end,
            dropped_to: dropped_to.max(p.good_end),
            chunks,
            bytes,
            reason: p.damage.clone().unwrap_or_else(|| {
                "the storage engine recovered less than was acknowledged".into()
            }),
        });
    }
    if !found.unreadable_topics.is_empty() {
        let meta = db.open_tree("meta")?;
        for name in &found.unreadable_topics {
            meta.remove(keys::topic_meta(name))?;
        }
    }
    db.flush()?;
    drop(data);
    drop(db);
    checkpoint
        .save(dir)
        .map_err(|e| StorageError::Engine(sled::Error::Io(e)))?;
    Ok((found, dropped))
}

fn open(dir: &Path) -> Result<sled::Db> {
    if !dir.join("db").exists() && !has_snapshot(dir) {
        return Err(StorageError::corrupt(format!(
            "{} holds no store (no sled files)",
            dir.display()
        )));
    }
    crate::engine::open_sled(sled::Config::new().path(dir))
}

/// Where `recover` moves files sled cannot use, inside the data dir.
pub const QUARANTINE_DIR: &str = "recover-quarantine";

/// Opens sled for repair. When it refuses, moves aside what it can rebuild: first its
/// snapshot (sled then rebuilds its page table by scanning the whole log), then its
/// settings file (sled writes a new one; Weir always uses sled's default layout).
fn open_for_repair(dir: &Path) -> Result<(sled::Db, Vec<String>)> {
    let first = match open(dir) {
        Ok(db) => return Ok((db, Vec::new())),
        Err(e) => e,
    };
    let mut moved = Vec::new();
    let quarantine = dir.join(QUARANTINE_DIR);
    let io = |e: std::io::Error| StorageError::Engine(sled::Error::Io(e));
    let snapshots: Vec<_> = std::fs::read_dir(dir)
        .map_err(io)?
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().starts_with("snap."))
        .collect();
    for step in [Step::Snapshots, Step::Settings] {
        let names: Vec<std::ffi::OsString> = match step {
            Step::Snapshots => snapshots.iter().map(|e| e.file_name()).collect(),
            Step::Settings if dir.join("conf").exists() => vec!["conf".into()],
            Step::Settings => Vec::new(),
        };
        if names.is_empty() {
            continue;
        }
        std::fs::create_dir_all(&quarantine).map_err(io)?;
        for name in names {
            std::fs::rename(dir.join(&name), quarantine.join(&name)).map_err(io)?;
            moved.push(format!(
                "moved sled's {} '{}' to {}",
                step.what(),
                name.to_string_lossy(),
                quarantine.display()
            ));
        }
        if let Ok(db) = open(dir) {
            return Ok((db, moved));
        }
    }
    Err(first)
}

#[derive(Clone, Copy)]
enum Step {
    Snapshots,
    Settings,
}

impl Step {
    fn what(self) -> &'static str {
        match self {
            Step::Snapshots => "snapshot (rebuilt from its log)",
            Step::Settings => "settings file (written again)",
        }
    }
}

fn has_snapshot(dir: &Path) -> bool {
    std::fs::read_dir(dir).is_ok_and(|entries| {
        entries
            .filter_map(|e| e.ok())
            .any(|e| e.file_name().to_string_lossy().starts_with("snap."))
    })
}

fn topic_id(db: &sled::Db, name: &str) -> Result<u32> {
    let meta = db.open_tree("meta")?;
    let value = meta
        .get(keys::topic_meta(name))?
        .ok_or_else(|| StorageError::TopicNotFound(name.into()))?;
    let record: TopicRecord = serde_json::from_slice(&value)
        .map_err(|e| StorageError::corrupt(format!("topic '{name}' metadata: {e}")))?;
    Ok(record.id)
}

fn check(dir: &Path, db: &sled::Db) -> Result<StoreCheck> {
    let meta = db.open_tree("meta")?;
    let data = db.open_tree("data")?;
    let mut out = StoreCheck::default();
    let checkpoint = Checkpoint::load(dir).unwrap_or_else(|e| {
        out.problems.push(format!(
            "{e}; partitions are checked without it (recover writes a new one)"
        ));
        None
    });
    let mut seen = Vec::new();
    for item in meta.scan_prefix(keys::TOPIC_META_PREFIX) {
        let (key, value) = item?;
        let name = String::from_utf8_lossy(&key[keys::TOPIC_META_PREFIX.len()..]).into_owned();
        let record: TopicRecord = match serde_json::from_slice(&value) {
            Ok(r) => r,
            Err(e) => {
                out.problems
                    .push(format!("topic '{name}': metadata does not parse: {e}"));
                out.unreadable_topics.push(name);
                continue;
            }
        };
        let mark = checkpoint
            .as_ref()
            .and_then(|c| c.topics.get(&name))
            .filter(|m| m.id == record.id);
        for p in 0..record.config.partitions {
            let log_start = match meta.get(keys::log_start(record.id, p))? {
                Some(v) => match <[u8; 8]>::try_from(v.as_ref()) {
                    Ok(b) => u64::from_be_bytes(b),
                    Err(_) => {
                        out.problems.push(format!(
                            "topic '{name}' partition {p}: log start offset does not parse"
                        ));
                        0
                    }
                },
                None => 0,
            };
            let gap_free = record.config.cleanup_policy == CleanupPolicy::Delete;
            let mut check = check_partition(&data, record.id, p, log_start, gap_free)?;
            check.topic = name.clone();
            check.acknowledged = mark.and_then(|m| m.high_watermarks.get(p as usize).copied());
            if check.damage.is_none()
                && let Some(ack) = check.acknowledged.filter(|&a| a > check.good_end)
            {
                check.damage = Some(format!(
                    "ends at offset {} but offsets up to {ack} were acknowledged: the storage \
                     engine lost them",
                    check.good_end
                ));
            }
            out.partitions.push(check);
        }
        seen.push(name);
    }
    if let Some(c) = &checkpoint {
        for (name, mark) in &c.topics {
            let acknowledged: u64 = mark.high_watermarks.iter().sum();
            if acknowledged > 0 && !seen.contains(name) {
                out.problems.push(format!(
                    "topic '{name}' is missing; {acknowledged} offsets of it were acknowledged"
                ));
            }
        }
    }
    Ok(out)
}

fn check_partition(
    data: &sled::Tree,
    topic_id: u32,
    partition: u32,
    log_start: u64,
    gap_free: bool,
) -> Result<PartitionCheck> {
    let mut c = PartitionCheck {
        topic: String::new(),
        partition,
        log_start,
        good_end: log_start,
        stored_end: log_start,
        acknowledged: None,
        chunks: 0,
        records: 0,
        damage: None,
    };
    let mut pos = log_start;
    for item in data.scan_prefix(keys::partition_prefix(topic_id, partition)) {
        let (key, chunk) = item?;
        c.chunks += 1;
        // Past the first damage, only learn where the stored data claims to end.
        if c.damage.is_some() {
            if let Some(end) = batch::batches(&chunk)
                .map_while(|b| b.ok())
                .map(|b| b.header.end_offset())
                .last()
            {
                c.stored_end = c.stored_end.max(end);
            }
            continue;
        }
        let key_base = keys::base_offset_of(&key);
        if key_base < log_start {
            // Retention moves the log start before it deletes whole chunks: this one is
            // already gone as far as readers know.
            continue;
        }
        for (i, b) in batch::batches(&chunk).enumerate() {
            let b = match b {
                Ok(b) => b,
                Err(e) => {
                    c.damage = Some(format!("chunk at offset {key_base}: {e}"));
                    break;
                }
            };
            let h = b.header;
            c.stored_end = c.stored_end.max(h.end_offset());
            if i == 0 && h.base_offset != key_base {
                c.damage = Some(format!(
                    "chunk at offset {key_base} starts with a batch at offset {}",
                    h.base_offset
                ));
                break;
            }
            if h.end_offset() <= pos {
                continue; // before the log start: retention is removing it
            }
            if h.base_offset < pos && pos > log_start {
                c.damage = Some(format!(
                    "batch at offset {} overlaps offsets before {pos}",
                    h.base_offset
                ));
                break;
            }
            if gap_free && h.base_offset > pos {
                c.damage = Some(format!("offsets [{pos}, {}) are missing", h.base_offset));
                break;
            }
            if let Some(e) = b.records().find_map(|r| r.err()) {
                c.damage = Some(format!("batch at offset {}: {e}", h.base_offset));
                break;
            }
            c.records += u64::from(h.record_count);
            pos = h.end_offset();
            c.good_end = pos;
        }
    }
    Ok(c)
}

/// Bytes of `chunk` made of whole, intact batches that end at or before `end`.
fn intact_prefix_len(chunk: &[u8], end: u64) -> usize {
    let mut len = 0;
    for b in batch::batches(chunk) {
        match b {
            Ok(b) if b.header.end_offset() <= end => len += b.header.len,
            _ => break,
        }
    }
    len
}
