//! Compaction in cluster mode (`cleanup_policy = "compact"`): the latest record per
//! key stays, older ones go, tombstones once older than `retention_ms` (a day by
//! default), as in the embedded store.
//!
//! A stream message cannot be rewritten in place, and a record's offset names its
//! message, so compaction works at message granularity: a message is deleted from
//! the stream once *every* record in it is superseded (or an expired tombstone), and
//! a message holding any keyless record or any latest value stays whole. With one
//! record per publish (the usual way to write a keyed table) that is exact; batches
//! of mixed keys compact as their last live record allows. The partition's last
//! message always stays, so the log end stays readable after a restart.
//!
//! Deletes are announced first (`m.c.<topic>.<partition>`, rolled up), so every node
//! drops the messages from its index before they vanish from the stream; a crash in
//! between leaves superseded records in the stream, which compaction allows.

use std::collections::HashMap;

use weir_storage::{DEFAULT_TOMBSTONE_RETENTION_MS, Log, ReadLimits, StorageError, Topic, now_ms};

use crate::JetStreamLog;
use crate::chunk::{SHIFT, base_of};
use crate::publish::OutMsg;

/// Most messages one pass deletes per partition (one announcement must fit a message).
const MAX_DELETES: usize = 20_000;

/// A partition's state after a pass: the high watermark it covered, and when its
/// oldest kept tombstone expires (the next reason to look again).
pub(crate) type Clean = (u64, Option<i64>);

/// One record as compaction needs it.
struct Seen {
    offset: u64,
    key: Option<Vec<u8>>,
    tombstone: bool,
    timestamp_ms: i64,
}

impl JetStreamLog {
    pub(crate) async fn compact(&self, topic: &Topic) -> Result<(), StorageError> {
        let now = now_ms();
        let tombstone_ms = topic
            .config()
            .retention_ms
            .unwrap_or(DEFAULT_TOMBSTONE_RETENTION_MS) as i64;
        for p in 0..topic.partition_count() {
            let part = topic.partition(p)?;
            let hw = part.high_watermark();
            let clean = self.inner.compacted.lock().get(&(topic.id(), p)).copied();
            if let Some((at_hw, next_expiry)) = clean
                && at_hw == hw
                && next_expiry.is_none_or(|t| t > now)
            {
                continue;
            }
            let seen = self.scan(topic, p, hw).await?;
            let mut latest: HashMap<&[u8], u64> = HashMap::new();
            for r in &seen {
                if let Some(k) = &r.key {
                    latest.insert(k, r.offset);
                }
            }
            let last_seq = seen.last().map_or(0, |r| r.offset >> SHIFT);
            let expired = |r: &Seen| r.tombstone && r.timestamp_ms + tombstone_ms <= now;
            // A message stays if it holds a keyless record or a key's latest record
            // (a tombstone only until it expires).
            let mut keep: HashMap<u64, bool> = HashMap::new();
            for r in &seen {
                let stays = match &r.key {
                    None => true,
                    Some(k) => latest.get(k.as_slice()) == Some(&r.offset) && !expired(r),
                };
                *keep.entry(r.offset >> SHIFT).or_default() |= stays;
            }
            // An expired tombstone must still stay while an older record of its key
            // survives in a message kept for another key's sake, or the key would
            // come back. Keeping it may keep more such records: repeat until settled.
            loop {
                let mut shadowed: std::collections::HashSet<&[u8]> = Default::default();
                for r in &seen {
                    if let Some(k) = &r.key
                        && keep[&(r.offset >> SHIFT)]
                        && latest.get(k.as_slice()) != Some(&r.offset)
                    {
                        shadowed.insert(k);
                    }
                }
                let mut changed = false;
                for r in &seen {
                    if let Some(k) = &r.key
                        && expired(r)
                        && latest.get(k.as_slice()) == Some(&r.offset)
                        && shadowed.contains(k.as_slice())
                        && !keep[&(r.offset >> SHIFT)]
                    {
                        keep.insert(r.offset >> SHIFT, true);
                        changed = true;
                    }
                }
                if !changed {
                    break;
                }
            }
            let mut next_expiry: Option<i64> = None;
            for r in seen.iter().filter(|r| r.tombstone && !expired(r)) {
                let at = r.timestamp_ms + tombstone_ms;
                next_expiry = Some(next_expiry.map_or(at, |t| t.min(at)));
            }
            let mut keep: Vec<(u64, bool)> = keep.into_iter().collect();
            keep.sort_unstable();
            let doomed: Vec<u64> = keep
                .iter()
                .filter(|(seq, stays)| !stays && *seq != last_seq)
                .map(|(seq, _)| *seq)
                .take(MAX_DELETES)
                .collect();
            if !doomed.is_empty() {
                self.delete_messages(topic, p, &doomed).await?;
            }
            self.inner
                .compacted
                .lock()
                .insert((topic.id(), p), (hw, next_expiry));
        }
        Ok(())
    }

    /// Every record of the partition below `hw`, in offset order.
    async fn scan(&self, topic: &Topic, p: u32, hw: u64) -> Result<Vec<Seen>, StorageError> {
        let mut out = Vec::new();
        let mut offset = topic.partition(p)?.log_start_offset();
        while offset < hw {
            let limits = ReadLimits {
                max_records: usize::MAX,
                max_bytes: 4 << 20,
            };
            let read = Log::read(self, topic, p, offset, limits).await?;
            for r in read.records() {
                if r.offset >= hw {
                    break;
                }
                out.push(Seen {
                    offset: r.offset,
                    key: r.key.map(<[u8]>::to_vec),
                    tombstone: r.value.is_none(),
                    timestamp_ms: r.timestamp_ms,
                });
            }
            if read.next_offset <= offset {
                break;
            }
            offset = read.next_offset;
        }
        Ok(out)
    }

    /// Announces, then deletes, messages of one partition.
    async fn delete_messages(
        &self,
        topic: &Topic,
        p: u32,
        seqs: &[u64],
    ) -> Result<(), StorageError> {
        let list: Vec<String> = seqs.iter().map(u64::to_string).collect();
        let notice =
            OutMsg::new(self.inner.subjects.compacted(topic.id(), p), list.join(",")).rollup();
        let published = self.publish(&[notice]).await.map_err(StorageError::from)?;
        self.visible(published[0]).await;
        for &seq in seqs {
            // Another node's pass may have deleted it already.
            if let Err(e) = self.inner.stream.delete_message(seq).await {
                tracing::debug!(seq, error = %e, "deleting a compacted message");
            }
        }
        tracing::debug!(
            topic = topic.name(),
            partition = p,
            messages = seqs.len(),
            from = base_of(seqs[0]),
            "compacted"
        );
        Ok(())
    }
}
