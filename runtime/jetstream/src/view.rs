//! A node's view of the cluster, built by applying the stream in order: topics and
//! their partitions' watermarks, an index of every partition's messages (with the
//! recent ones cached), and the key-value pairs.
//!
//! Every Weir node tails the whole stream, so what one node appends moves the
//! watermarks (and wakes the long-polls) of all of them, and topic changes and
//! key-value writes reach every node in the stream's one order. Nothing here is
//! durable: a node rebuilds it at start from the stream.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use parking_lot::{Mutex, RwLock};
use serde::{Deserialize, Serialize};
use tokio::sync::Notify;
use weir_storage::{StorageError, Topic, TopicConfig};

use crate::chunk::{self, base_of};
use crate::subjects::{Subject, Subjects};

/// Headers of a record message: offsets it spans, records it holds.
pub(crate) const SPAN: &str = "Weir-Span";
pub(crate) const RECORDS: &str = "Weir-Records";
/// A key-value message that deletes its key.
pub(crate) const DELETED: &str = "Weir-Deleted";

/// A topic's entry in the stream (`<prefix>.m.t.<name>`).
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct TopicMeta {
    pub(crate) id: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) config: Option<TopicConfig>,
}

/// One message of the stream, as the view needs it.
pub(crate) struct Applied<'a> {
    pub(crate) seq: u64,
    pub(crate) subject: &'a str,
    pub(crate) time_ms: i64,
    pub(crate) header: &'a dyn Fn(&str) -> Option<String>,
    /// Payload bytes (absent when only headers were fetched).
    pub(crate) payload: Option<&'a [u8]>,
    pub(crate) payload_len: usize,
}

/// One message of a partition.
#[derive(Debug, Clone)]
pub(crate) struct Entry {
    pub(crate) seq: u64,
    pub(crate) span: u64,
    pub(crate) records: u64,
    pub(crate) bytes: u64,
    pub(crate) time_ms: i64,
    /// The chunk re-sealed at its real offsets, while cached.
    pub(crate) chunk: Option<Arc<Vec<u8>>>,
}

impl Entry {
    pub(crate) fn end(&self) -> u64 {
        base_of(self.seq) + self.span
    }
}

/// The messages of one partition still in the stream, oldest first.
#[derive(Debug, Default)]
pub(crate) struct PartIndex {
    pub(crate) entries: VecDeque<Entry>,
    cached: usize,
}

impl PartIndex {
    /// Position of the first message that ends after `offset`.
    pub(crate) fn position(&self, offset: u64) -> usize {
        self.entries.partition_point(|e| e.end() <= offset)
    }

    fn bytes(&self) -> u64 {
        self.entries.iter().map(|e| e.bytes).sum()
    }
}

#[derive(Debug)]
struct KvEntry {
    value: Option<Vec<u8>>,
    seq: u64,
}

#[derive(Debug, Default)]
struct Topics {
    by_name: HashMap<String, Arc<Topic>>,
    by_id: HashMap<u32, Arc<Topic>>,
    /// Sequence of the last message on each topic subject (create or delete), for
    /// compare-and-set.
    seqs: HashMap<String, u64>,
    next_id: u32,
    next_id_seq: u64,
}

/// One partition's index, shared by the tail that fills it and the readers.
type SharedIndex = Arc<Mutex<PartIndex>>;

/// See the module doc.
#[derive(Debug)]
pub(crate) struct View {
    subjects: Subjects,
    topics: RwLock<Topics>,
    parts: RwLock<HashMap<(u32, u32), SharedIndex>>,
    kv: RwLock<BTreeMap<Vec<u8>, KvEntry>>,
    /// Cached chunk bytes kept per partition.
    cache_per_partition: usize,
    applied: AtomicU64,
    advanced: Notify,
}

impl View {
    pub(crate) fn new(subjects: Subjects, cache_per_partition: usize) -> Self {
        View {
            subjects,
            topics: RwLock::default(),
            parts: RwLock::default(),
            kv: RwLock::default(),
            cache_per_partition,
            applied: AtomicU64::new(0),
            advanced: Notify::new(),
        }
    }

    /// The last stream sequence applied.
    pub(crate) fn applied(&self) -> u64 {
        self.applied.load(Ordering::Acquire)
    }

    /// Waits until everything up to `seq` is applied, or `timeout` passes.
    pub(crate) async fn wait_applied(&self, seq: u64, timeout: std::time::Duration) -> bool {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let notified = self.advanced.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if self.applied() >= seq {
                return true;
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                return self.applied() >= seq;
            }
        }
    }

    /// Marks the stream applied up to `seq` (messages in between that the view does
    /// not keep, or that a filtered load skipped, count as applied).
    pub(crate) fn mark_applied(&self, seq: u64) {
        if self.applied.fetch_max(seq, Ordering::AcqRel) < seq {
            self.advanced.notify_waiters();
        }
    }

    /// Applies one message; an older copy of what the view already has is ignored,
    /// so the start-up load and the tail may overlap.
    pub(crate) fn apply(&self, m: &Applied<'_>) -> Result<(), StorageError> {
        match self.subjects.parse(m.subject) {
            Subject::Records { topic, partition } => self.apply_records(topic, partition, m)?,
            Subject::Topic { name } => self.apply_topic(name, m),
            Subject::NextTopicId => {
                let mut t = self.topics.write();
                if m.seq > t.next_id_seq {
                    t.next_id_seq = m.seq;
                    let text = m.payload.map(String::from_utf8_lossy).unwrap_or_default();
                    t.next_id = t.next_id.max(text.trim().parse().unwrap_or(0));
                }
            }
            Subject::LogStart { topic, partition } => {
                let text = m.payload.map(String::from_utf8_lossy).unwrap_or_default();
                if let Ok(start) = text.trim().parse::<u64>() {
                    self.apply_log_start(topic, partition, start);
                }
            }
            Subject::Compacted { topic, partition } => {
                let text = m.payload.map(String::from_utf8_lossy).unwrap_or_default();
                let seqs: Vec<u64> = text.split(',').filter_map(|s| s.parse().ok()).collect();
                self.apply_compacted(topic, partition, &seqs);
            }
            Subject::Kv { key } => {
                let mut kv = self.kv.write();
                if kv.get(&key).is_none_or(|e| e.seq < m.seq) {
                    let value = match (m.header)(DELETED) {
                        Some(_) => None,
                        None => Some(m.payload.unwrap_or_default().to_vec()),
                    };
                    kv.insert(key, KvEntry { value, seq: m.seq });
                }
            }
            Subject::Other => {}
        }
        Ok(())
    }

    fn apply_topic(&self, name: String, m: &Applied<'_>) {
        let Some(meta) = m
            .payload
            .and_then(|p| serde_json::from_slice::<TopicMeta>(p).ok())
        else {
            tracing::warn!(subject = m.subject, "unreadable topic entry in the stream");
            return;
        };
        let mut t = self.topics.write();
        if t.seqs.get(&name).is_some_and(|s| *s >= m.seq) {
            return;
        }
        t.seqs.insert(name.clone(), m.seq);
        t.next_id = t.next_id.max(meta.id + 1);
        match meta.config {
            Some(config) => {
                let same = t.by_name.get(&name).is_some_and(|old| old.id() == meta.id);
                if !same {
                    let topic = Arc::new(Topic::new(meta.id, name.clone(), config));
                    t.by_id.insert(meta.id, topic.clone());
                    if let Some(old) = t.by_name.insert(name, topic) {
                        self.forget(&mut t, &old);
                    }
                }
            }
            None => {
                if let Some(old) = t.by_name.remove(&name) {
                    self.forget(&mut t, &old);
                }
            }
        }
    }

    fn forget(&self, t: &mut Topics, old: &Topic) {
        old.mark_deleted();
        t.by_id.remove(&old.id());
        self.parts.write().retain(|(id, _), _| *id != old.id());
    }

    fn topic_by_id(&self, id: u32) -> Option<Arc<Topic>> {
        self.topics.read().by_id.get(&id).cloned()
    }

    fn apply_records(&self, id: u32, p: u32, m: &Applied<'_>) -> Result<(), StorageError> {
        let Some(topic) = self.topic_by_id(id) else {
            // A deleted topic's leftovers, purged soon.
            return Ok(());
        };
        let Ok(part) = topic.partition(p) else {
            return Ok(());
        };
        let num = |name| (m.header)(name).and_then(|v| v.parse::<u64>().ok());
        let (Some(span), Some(records)) = (num(SPAN), num(RECORDS)) else {
            return Err(StorageError::corrupt(format!(
                "message {} on {} lacks its {SPAN}/{RECORDS} headers",
                m.seq, m.subject
            )));
        };
        let index = self.index(id, p);
        let mut index = index.lock();
        if index.entries.back().is_some_and(|e| e.seq >= m.seq) {
            return Ok(());
        }
        let chunk = match m.payload {
            Some(payload) => Some(Arc::new(chunk::rebase(payload, m.seq)?)),
            None => None,
        };
        if let Some(c) = &chunk {
            index.cached += c.len();
        }
        let entry = Entry {
            seq: m.seq,
            span,
            records,
            bytes: m.payload_len as u64,
            time_ms: m.time_ms,
            chunk,
        };
        let end = entry.end();
        index.entries.push_back(entry);
        // Keep the newest chunks within the budget.
        let mut i = 0;
        while index.cached > self.cache_per_partition && i + 1 < index.entries.len() {
            if let Some(c) = index.entries[i].chunk.take() {
                index.cached -= c.len();
            }
            i += 1;
        }
        part.set_extent(part.log_start_offset(), index.bytes());
        part.advance_to(end);
        Ok(())
    }

    fn apply_log_start(&self, id: u32, p: u32, start: u64) {
        let Some(topic) = self.topic_by_id(id) else {
            return;
        };
        let Ok(part) = topic.partition(p) else {
            return;
        };
        // Log starts only move forward.
        let start = start.max(part.log_start_offset());
        let index = self.index(id, p);
        let mut index = index.lock();
        while index.entries.front().is_some_and(|e| e.end() <= start) {
            if let Some(c) = index.entries.pop_front().and_then(|e| e.chunk) {
                index.cached -= c.len();
            }
        }
        part.set_extent(start, index.bytes());
        part.advance_to(start);
    }

    /// Drops messages compaction is deleting (never the last: it holds the log end).
    fn apply_compacted(&self, id: u32, p: u32, seqs: &[u64]) {
        let Some(topic) = self.topic_by_id(id) else {
            return;
        };
        let Ok(part) = topic.partition(p) else {
            return;
        };
        let index = self.index(id, p);
        let mut index = index.lock();
        let last = index.entries.back().map(|e| e.seq);
        let doomed: std::collections::HashSet<u64> = seqs.iter().copied().collect();
        let mut freed = 0;
        index.entries.retain(|e| {
            let gone = doomed.contains(&e.seq) && Some(e.seq) != last;
            if gone {
                freed += e.chunk.as_ref().map_or(0, |c| c.len());
            }
            !gone
        });
        index.cached -= freed;
        part.set_extent(part.log_start_offset(), index.bytes());
    }

    /// The index of one partition.
    pub(crate) fn index(&self, topic: u32, partition: u32) -> SharedIndex {
        if let Some(i) = self.parts.read().get(&(topic, partition)) {
            return i.clone();
        }
        self.parts
            .write()
            .entry((topic, partition))
            .or_default()
            .clone()
    }

    pub(crate) fn topic(&self, name: &str) -> Result<Arc<Topic>, StorageError> {
        self.topics
            .read()
            .by_name
            .get(name)
            .cloned()
            .ok_or_else(|| StorageError::TopicNotFound(name.to_string()))
    }

    pub(crate) fn topics(&self) -> Vec<Arc<Topic>> {
        let mut all: Vec<_> = self.topics.read().by_name.values().cloned().collect();
        all.sort_by(|a, b| a.name().cmp(b.name()));
        all
    }

    /// Sequence of the last message on a topic's subject (0: none), and the next
    /// topic id with the sequence of its subject: what a create compares against.
    pub(crate) fn topic_versions(&self, name: &str) -> (u64, u32, u64) {
        let t = self.topics.read();
        (
            t.seqs.get(name).copied().unwrap_or(0),
            t.next_id.max(1),
            t.next_id_seq,
        )
    }

    pub(crate) fn kv_get(&self, key: &[u8]) -> Option<Vec<u8>> {
        self.kv.read().get(key).and_then(|e| e.value.clone())
    }

    /// A value and the sequence of its key's last message (0: never written), read
    /// together, for compare-and-set.
    pub(crate) fn kv_get_versioned(&self, key: &[u8]) -> (Option<Vec<u8>>, u64) {
        match self.kv.read().get(key) {
            Some(e) => (e.value.clone(), e.seq),
            None => (None, 0),
        }
    }

    pub(crate) fn kv_scan(&self, prefix: &[u8]) -> Vec<(Vec<u8>, Vec<u8>)> {
        self.kv
            .read()
            .range(prefix.to_vec()..)
            .take_while(|(k, _)| k.starts_with(prefix))
            .filter_map(|(k, e)| e.value.clone().map(|v| (k.clone(), v)))
            .collect()
    }

    /// A value written by this node ahead of the stream (a plugin's state set inside
    /// a call), visible here at once; the stream's copy replaces it when it arrives.
    pub(crate) fn kv_put_local(&self, key: &[u8], value: Option<&[u8]>) {
        let mut kv = self.kv.write();
        let seq = kv.get(key).map_or(0, |e| e.seq);
        kv.insert(
            key.to_vec(),
            KvEntry {
                value: value.map(<[u8]>::to_vec),
                seq,
            },
        );
    }
}
