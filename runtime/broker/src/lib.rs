//! weir-broker: the broker's core, between the HTTP server and the log.
//!
//! - [`partitioner`]: which partition a record goes to.
//! - [`produce`]: validating, partitioning and encoding records, then one atomic append.
//! - fetching with long-poll, in [`Broker::fetch`].
//! - [`groups`]: consumer groups, assignment, committed offsets and lag.
//! - [`plugin_state`]: the plugins' durable key-value state on the store.
//!
//! It knows no HTTP or JSON: the server turns wire formats into [`NewRecord`]s and
//! [`ReadResult`]s back into wire formats. Later: pipelines, groups, ACLs, connectors.

mod error;
pub mod groups;
pub mod partitioner;
pub mod plugin_state;
pub mod produce;

use std::sync::Arc;
use std::time::Duration;

pub use error::{BrokerError, Result};
pub use produce::{NewRecord, RecordPosition};
pub use weir_storage::now_ms;
pub use weir_storage::{
    Acks, CleanupPolicy, Created, PartitionOffsets, ReadLimits, ReadResult, RecordView,
    StatsSnapshot, StorageError, Store, StoreOptions, Topic, TopicConfig,
};

use groups::Groups;
use partitioner::Sticky;

/// The broker's settings.
#[derive(Debug, Clone, Copy)]
pub struct BrokerOptions {
    /// Largest record (key + value + headers), in bytes.
    pub max_record_bytes: usize,
    /// A group member that has not fetched for this long loses its partitions.
    pub session_timeout: Duration,
}

impl Default for BrokerOptions {
    fn default() -> Self {
        Self {
            max_record_bytes: 1 << 20,
            session_timeout: Duration::from_secs(30),
        }
    }
}

/// The broker. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Broker {
    store: Store,
    limits: BrokerOptions,
    sticky: Arc<Sticky>,
    groups: Groups,
}

impl Broker {
    /// A broker over an open store.
    pub fn new(store: Store, options: BrokerOptions) -> Self {
        Self {
            groups: Groups::new(store.clone(), options.session_timeout),
            store,
            limits: options,
            sticky: Arc::new(Sticky::default()),
        }
    }

    /// The underlying store (topic admin goes straight to it).
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// The consumer group coordinator.
    pub fn groups(&self) -> &Groups {
        &self.groups
    }

    /// The topic named `name` (callers resolve it once per request).
    pub fn topic(&self, name: &str) -> Result<Arc<Topic>> {
        Ok(self.store.topic(name)?)
    }

    /// Publishes `records` to `topic` atomically: all are stored or none. Returns each
    /// record's partition and offset in request order, once `acks` is satisfied. A
    /// topic deleted meanwhile fails with `topic_not_found`.
    pub async fn produce(
        &self,
        topic: &Arc<Topic>,
        records: &[NewRecord<'_>],
        acks: Acks,
    ) -> Result<Vec<RecordPosition>> {
        if records.is_empty() {
            return Ok(Vec::new());
        }
        let produce::Encoded { batches, placement } = produce::encode(
            topic,
            records,
            &self.sticky,
            weir_storage::now_ms(),
            self.limits.max_record_bytes,
        )?;
        // A request's batches for one partition get consecutive offsets, so each
        // record's offset is its partition's first base plus its index.
        let mut first_base: Vec<(u32, usize)> = Vec::new();
        for (i, (p, _)) in batches.iter().enumerate() {
            if !first_base.iter().any(|(q, _)| q == p) {
                first_base.push((*p, i));
            }
        }
        let bases = self.store.append(topic, batches, acks).await?;
        Ok(placement
            .into_iter()
            .map(|(p, index)| {
                let slot = first_base
                    .iter()
                    .find(|(q, _)| *q == p)
                    .map_or(0, |(_, i)| *i);
                RecordPosition {
                    partition: p,
                    offset: bases[slot] + u64::from(index),
                }
            })
            .collect())
    }

    /// Reads from one partition; at the end of the log waits up to `wait` for records
    /// (woken by the flush that makes them visible).
    pub async fn fetch(
        &self,
        topic: &Topic,
        partition: u32,
        offset: u64,
        limits: ReadLimits,
        wait: Duration,
    ) -> Result<ReadResult> {
        let part = topic.partition(partition)?;
        let result = self.store.read(topic, partition, offset, limits)?;
        if result.count > 0 || wait.is_zero() || result.next_offset < result.high_watermark {
            return Ok(result);
        }
        part.wait_beyond(offset, wait).await;
        Ok(self.store.read(topic, partition, offset, limits)?)
    }
}

#[cfg(test)]
mod tests {
    use std::borrow::Cow;

    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn large_requests_split_into_batches_keep_request_order_offsets() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path(), StoreOptions::default()).unwrap();
        store
            .create_topic("t", TopicConfig::with_partitions(3))
            .unwrap();
        let broker = Broker::new(store.clone(), BrokerOptions::default());
        let values: Vec<String> = (0..5000).map(|i| format!("{i:0>200}")).collect();
        let records: Vec<NewRecord<'_>> = values
            .iter()
            .enumerate()
            .map(|(i, v)| NewRecord {
                key: Some(Cow::Owned(format!("k{}", i % 7).into_bytes())),
                value: Some(Cow::Borrowed(v.as_bytes())),
                ..NewRecord::default()
            })
            .collect();
        let topic = broker.topic("t").unwrap();
        let positions = broker.produce(&topic, &records, Acks::All).await.unwrap();
        let limits = ReadLimits {
            max_records: 1,
            max_bytes: usize::MAX,
        };
        for (i, pos) in positions.iter().enumerate() {
            let r = store
                .read(&topic, pos.partition, pos.offset, limits)
                .unwrap();
            let first = r.records().next().unwrap();
            assert_eq!(first.offset, pos.offset);
            assert_eq!(first.value, Some(values[i].as_bytes()));
        }
        // The data was spread over many chunks, none far over the chunk size.
        let chunks = store.chunk_sizes(&topic);
        assert!(chunks.len() > 10, "{} chunks", chunks.len());
        assert!(chunks.iter().all(|&n| n <= 8 << 10), "{chunks:?}");
        store.shutdown().await;
    }
}
