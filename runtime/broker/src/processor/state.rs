//! A processor's keyed state on one input partition.
//!
//! State lives in the log's key-value store under `proc/<processor>\0<partition>` +
//! the plugin's key: one state per partition number, shared by the processor's
//! inputs (they are co-partitioned, so a join of two topics keyed alike meets its
//! keys in one state). The runtime's keys are apart: timers per partition number
//! (`proc-timer/`), watermark and open windows per input partition (`proc-sys/`,
//! with the topic's id). All are restored
//! after a restart by reading, never by replaying the input. During a batch, writes
//! are **staged**: reads see them (read-your-writes), but nothing is stored until the
//! batch's one atomic append, which takes them as key-value writes
//! ([`staged_ops`](PartitionState::staged_ops)) beside the outputs and the consumed
//! offsets. Only once that append succeeded are they [`kept`](PartitionState::kept);
//! a failed one [`discard`](PartitionState::discard)s them, and the batch runs again
//! from the committed state.
//!
//! A scan reads the whole prefix from the store (the log's key-value API has no
//! ranges yet), so paging through a large state costs a read of it per page.
//!
//! Committed values are cached (up to [`CACHE_ENTRIES`]), so a hot key costs one store
//! read per restart, not one per event.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use weir_storage::{KvOp, Log, Topic};

use crate::Result;

/// Committed values kept in memory per partition; past it the cache starts over.
pub const CACHE_ENTRIES: usize = 100_000;

/// The key-value prefix of `processor`'s keys in `space` on `partition` (of
/// `topic`, for keys kept per input partition).
fn partition_prefix(
    space: &[u8],
    processor: &str,
    topic: Option<&Topic>,
    partition: u32,
) -> Vec<u8> {
    let mut k = Vec::with_capacity(space.len() + processor.len() + 13);
    k.extend_from_slice(space);
    k.extend_from_slice(processor.as_bytes());
    k.push(0);
    if let Some(topic) = topic {
        k.extend_from_slice(&topic.id().to_be_bytes());
    }
    k.extend_from_slice(&partition.to_be_bytes());
    k
}

/// Keyed state of one processor on one input partition.
pub struct PartitionState {
    log: Arc<dyn Log>,
    prefix: Vec<u8>,
    /// Committed values read or written before (`None`: known absent).
    cache: HashMap<Vec<u8>, Option<Vec<u8>>>,
    /// This batch's writes (`None`: delete), by key.
    staged: BTreeMap<Vec<u8>, Option<Vec<u8>>>,
    /// Writes handed to an append not yet known to have succeeded.
    pending: BTreeMap<Vec<u8>, Option<Vec<u8>>>,
}

impl std::fmt::Debug for PartitionState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PartitionState")
            .field("cached", &self.cache.len())
            .field("staged", &self.staged.len())
            .finish_non_exhaustive()
    }
}

impl PartitionState {
    /// `processor`'s state on partition `partition` of its inputs, in `log`.
    pub fn new(log: Arc<dyn Log>, processor: &str, partition: u32) -> Self {
        Self::under(log, partition_prefix(b"proc/", processor, None, partition))
    }

    /// `processor`'s timers on partition `partition` of its inputs.
    pub fn timers(log: Arc<dyn Log>, processor: &str, partition: u32) -> Self {
        Self::under(
            log,
            partition_prefix(b"proc-timer/", processor, None, partition),
        )
    }

    /// What the runtime keeps for `processor` on `partition` of `topic` (watermark,
    /// open windows), apart from the plugin's keys.
    pub fn system(log: Arc<dyn Log>, processor: &str, topic: &Topic, partition: u32) -> Self {
        Self::under(
            log,
            partition_prefix(b"proc-sys/", processor, Some(topic), partition),
        )
    }

    fn under(log: Arc<dyn Log>, prefix: Vec<u8>) -> Self {
        PartitionState {
            log,
            prefix,
            cache: HashMap::new(),
            staged: BTreeMap::new(),
            pending: BTreeMap::new(),
        }
    }

    fn full_key(&self, key: &[u8]) -> Vec<u8> {
        let mut k = Vec::with_capacity(self.prefix.len() + key.len());
        k.extend_from_slice(&self.prefix);
        k.extend_from_slice(key);
        k
    }

    /// The value of `key`: this batch's write, else the committed one.
    pub fn get(&mut self, key: &[u8]) -> Result<Option<Vec<u8>>> {
        if let Some(written) = self.staged.get(key).or_else(|| self.pending.get(key)) {
            return Ok(written.clone());
        }
        if let Some(cached) = self.cache.get(key) {
            return Ok(cached.clone());
        }
        let value = self.log.kv_get(&self.full_key(key))?;
        self.remember(key.to_vec(), value.clone());
        Ok(value)
    }

    /// Sets `key` to `value` in this batch.
    pub fn put(&mut self, key: &[u8], value: &[u8]) {
        self.staged.insert(key.to_vec(), Some(value.to_vec()));
    }

    /// Deletes `key` in this batch.
    pub fn delete(&mut self, key: &[u8]) {
        self.staged.insert(key.to_vec(), None);
    }

    /// Up to `limit` pairs whose key starts with `prefix` and comes after `after`
    /// (to page through), in key order, this batch's writes included.
    pub fn scan(
        &mut self,
        prefix: &[u8],
        after: Option<&[u8]>,
        limit: usize,
    ) -> Result<Vec<(Vec<u8>, Vec<u8>)>> {
        let stored = self.log.kv_scan(&self.full_key(prefix))?;
        let mut merged: BTreeMap<Vec<u8>, Option<Vec<u8>>> = stored
            .into_iter()
            .map(|(k, v)| (k[self.prefix.len()..].to_vec(), Some(v)))
            .collect();
        for written in [&self.pending, &self.staged] {
            for (k, v) in written.range(prefix.to_vec()..) {
                if !k.starts_with(prefix) {
                    break;
                }
                merged.insert(k.clone(), v.clone());
            }
        }
        Ok(merged
            .into_iter()
            .filter(|(k, _)| after.is_none_or(|a| k.as_slice() > a))
            .filter_map(|(k, v)| Some((k, v?)))
            .take(limit)
            .collect())
    }

    /// This batch's writes as key-value writes for its atomic append; from here they
    /// wait for [`kept`](Self::kept) or [`discard`](Self::discard), and writes made
    /// meanwhile belong to the next batch.
    pub fn staged_ops(&mut self) -> Vec<KvOp> {
        let staged = std::mem::take(&mut self.staged);
        let ops = staged
            .iter()
            .map(|(k, v)| (self.full_key(k), v.clone()))
            .collect();
        self.pending.extend(staged);
        ops
    }

    /// How many keys the committed state holds, and their bytes (the plugin's keys
    /// and values, without the prefix). Reads through the whole state.
    pub fn size(&self) -> Result<(u64, u64)> {
        let (keys, bytes) = self.log.kv_size(&self.prefix)?;
        Ok((keys, bytes.saturating_sub(keys * self.prefix.len() as u64)))
    }

    /// Whether this batch wrote anything.
    pub fn has_staged(&self) -> bool {
        !self.staged.is_empty()
    }

    /// The batch's append succeeded: its writes are the committed state now.
    pub fn kept(&mut self) {
        for (k, v) in std::mem::take(&mut self.pending) {
            self.remember(k, v);
        }
    }

    /// The batch's append failed, or the batch is abandoned: its writes never
    /// happened.
    pub fn discard(&mut self) {
        self.staged.clear();
        self.pending.clear();
    }

    /// Stages the delete of every key of this partition's state (a reset, stored
    /// with the reset's offsets in one append): reads see none from here.
    pub fn stage_clear(&mut self) -> Result<()> {
        let stored = self.log.kv_scan(&self.prefix)?;
        let mut keys: Vec<Vec<u8>> = stored
            .into_iter()
            .map(|(k, _)| k[self.prefix.len()..].to_vec())
            .collect();
        keys.extend(self.pending.keys().cloned());
        keys.extend(self.cache.keys().cloned());
        for key in keys {
            self.staged.insert(key, None);
        }
        Ok(())
    }

    fn remember(&mut self, key: Vec<u8>, value: Option<Vec<u8>>) {
        if self.cache.len() >= CACHE_ENTRIES && !self.cache.contains_key(&key) {
            self.cache.clear();
        }
        self.cache.insert(key, value);
    }
}

#[cfg(test)]
mod tests;
