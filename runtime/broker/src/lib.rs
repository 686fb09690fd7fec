//! weir-broker: the broker's core, between the HTTP server and the log.
//!
//! - [`partitioner`]: which partition a record goes to.
//! - [`produce`]: validating, partitioning and encoding records.
//! - `publish`: a request through its topic's pipeline into one atomic append.
//! - [`idempotence`]: retries that get the first attempt's answer and store nothing.
//! - fetching with long-poll, in [`Broker::fetch`].
//! - [`groups`]: consumer groups, assignment, committed offsets and lag.
//! - [`plugin_state`]: the plugins' durable key-value state on the store.
//! - [`pipeline`]: plugins in-line on the produce path and per subscription.
//! - [`plugins`]: the plugin host's API as the server and connectors use it.
//! - [`processor`]: stream processors' event-time windows (and, in one atomic
//!   append, their outputs, state and offsets: [`Broker::produce_committing`]).
//!
//! The broker is the one door to the domain: the server and the connector runtime
//! reach topics, records, groups and plugins through it, never storage or the host
//! directly. It reaches the log through [`Log`], which any backend implements.
//!
//! It knows no HTTP or JSON: the server turns wire formats into [`NewRecord`]s and
//! [`ReadResult`]s back into wire formats.

pub mod cluster;
mod error;
pub mod groups;
pub mod idempotence;
pub mod partitioner;
pub mod pipeline;
pub mod plugin_state;
pub mod plugins;
pub mod processor;
pub mod produce;
mod publish;
pub mod replay;

use std::sync::Arc;
use std::time::Duration;

pub use error::{BrokerError, Result};
pub use produce::{NewRecord, RecordPosition};
pub use publish::Published;
pub use weir_storage::config::{MAX_PARTITIONS, is_valid_name};
pub use weir_storage::now_ms;
pub use weir_storage::{
    Acks, CleanupPolicy, Created, Health, HistogramSnapshot, KvOp, Log, PartitionOffsets,
    ReadLimits, ReadResult, RecordView, Stats, StatsSnapshot, StorageError, Store, StoreOptions,
    Topic, TopicConfig,
};

/// Cluster mode: the log on a NATS JetStream cluster (`[cluster]` in weir.toml).
pub use weir_jetstream::{ClusterOptions, JetStreamLog};

/// Offline checks and repair of a stopped broker's store (`weir store verify|recover`).
pub mod maintenance {
    pub use weir_storage::repair::*;
}

use groups::Groups;
use partitioner::Sticky;
use pipeline::PipelineOptions;
use pipeline::chain::Pipelines;
use weir_host::Registry;

/// The broker's settings.
#[derive(Debug, Clone, Copy)]
pub struct BrokerOptions {
    /// Largest record (key + value + headers), in bytes.
    pub max_record_bytes: usize,
    /// A group member that has not fetched for this long loses its partitions.
    pub session_timeout: Duration,
    /// Bounds of the idempotent-produce state.
    pub idempotence: idempotence::IdempotenceOptions,
}

impl Default for BrokerOptions {
    fn default() -> Self {
        Self {
            max_record_bytes: 1 << 20,
            session_timeout: Duration::from_secs(30),
            idempotence: idempotence::IdempotenceOptions::default(),
        }
    }
}

/// The broker. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Broker {
    /// The log: every topic, record and key-value write goes through it.
    log: Arc<dyn Log>,
    limits: BrokerOptions,
    sticky: Arc<Sticky>,
    groups: Groups,
    pipelines: Option<Arc<Pipelines>>,
    /// What idempotent publishes remember.
    idempotence: Arc<idempotence::Idempotence>,
}

impl Broker {
    /// The log it serves (the cluster's coordination is built on it).
    pub fn log(&self) -> &Arc<dyn Log> {
        &self.log
    }

    /// A broker over an open log.
    pub fn new(log: Arc<dyn Log>, options: BrokerOptions) -> Self {
        Self {
            groups: Groups::new(log.clone(), options.session_timeout),
            idempotence: Arc::new(idempotence::Idempotence::load(&*log, options.idempotence)),
            log,
            limits: options,
            sticky: Arc::new(Sticky::default()),
            pipelines: None,
        }
    }

    /// Runs topics' pipelines with the plugins of `registry`.
    pub fn with_plugins(mut self, registry: Arc<Registry>, options: PipelineOptions) -> Self {
        self.pipelines = Some(Arc::new(Pipelines::new(
            self.log.clone(),
            registry,
            options,
        )));
        self
    }

    /// The pipelines, if plugins are enabled.
    pub fn pipelines(&self) -> Option<&Arc<Pipelines>> {
        self.pipelines.as_ref()
    }

    /// Deletes a topic with its data and its pipeline configuration.
    pub async fn delete_topic(&self, name: &str) -> Result<()> {
        let topic = self.log.topic(name)?;
        self.log.delete_topic(name).await?;
        if let Some(p) = &self.pipelines {
            p.forget(&topic).await?;
        }
        Ok(())
    }

    /// Creates topic `name`, or finds an identical one (`TopicExists` when its config
    /// differs). Durable when it returns.
    pub async fn create_topic(&self, name: &str, config: TopicConfig) -> Result<Created> {
        Ok(self.log.create_topic(name, config).await?)
    }

    /// Topic `name`, created with `partitions` partitions if it does not exist (the
    /// audit topic, dead-letter topics).
    pub async fn ensure_topic(&self, name: &str, partitions: u32) -> Result<Arc<Topic>> {
        match self.log.topic(name) {
            Ok(t) => Ok(t),
            Err(StorageError::TopicNotFound(_)) => {
                match self
                    .log
                    .create_topic(name, TopicConfig::with_partitions(partitions))
                    .await
                {
                    Ok(_) | Err(StorageError::TopicExists(_)) => Ok(self.log.topic(name)?),
                    Err(e) => Err(e.into()),
                }
            }
            Err(e) => Err(e.into()),
        }
    }

    /// Every topic, by name.
    pub fn topics(&self) -> Vec<Arc<Topic>> {
        self.log.topics()
    }

    /// The first offset of `partition` appended at or after `timestamp_ms` (the high
    /// watermark if none was).
    pub async fn offset_for_timestamp(
        &self,
        topic: &Topic,
        partition: u32,
        timestamp_ms: i64,
    ) -> Result<u64> {
        topic.partition(partition)?;
        Ok(self
            .log
            .offset_for_timestamp(topic, partition, timestamp_ms)
            .await?)
    }

    /// Whether the log takes writes, and its space.
    pub fn health(&self) -> Health {
        self.log.health()
    }

    /// The write path's counters (flushes, records, durations).
    pub fn write_stats(&self) -> StatsSnapshot {
        self.log.stats().snapshot()
    }

    /// The write path's counters and histograms, live.
    pub fn stats(&self) -> &Stats {
        self.log.stats()
    }

    /// Where the log keeps its files on this machine, if it does.
    pub fn local_path(&self) -> Option<&std::path::Path> {
        self.log.local_path()
    }

    /// A small durable record of one of the broker's components (a connector's
    /// paused or stopped state), by namespace and name.
    pub fn state(&self, namespace: &str, name: &str) -> Result<Option<Vec<u8>>> {
        Ok(self.log.kv_get(format!("{namespace}/{name}").as_bytes())?)
    }

    /// Writes (or with `None` removes) a [`state`](Self::state) record; durable when
    /// it returns.
    pub async fn save_state(
        &self,
        namespace: &str,
        name: &str,
        value: Option<Vec<u8>>,
    ) -> Result<()> {
        let key = format!("{namespace}/{name}").into_bytes();
        Ok(self.log.kv_write(vec![(key, value)]).await?)
    }

    /// Stops the log after the work queued so far, with a final flush.
    pub async fn shutdown(&self) {
        self.log.shutdown().await;
    }

    /// The consumer group coordinator.
    pub fn groups(&self) -> &Groups {
        &self.groups
    }

    /// The topic named `name` (callers resolve it once per request).
    pub fn topic(&self, name: &str) -> Result<Arc<Topic>> {
        Ok(self.log.topic(name)?)
    }

    /// Reads from one partition; at the end of the log waits up to `wait` for records
    /// (woken by the flush that makes them visible). With `max_records` 0 it answers
    /// at once with no records (a position probe).
    pub async fn fetch(
        &self,
        topic: &Topic,
        partition: u32,
        offset: u64,
        limits: ReadLimits,
        wait: Duration,
    ) -> Result<ReadResult> {
        let part = topic.partition(partition)?;
        let result = self.log.read(topic, partition, offset, limits).await?;
        if result.count > 0
            || wait.is_zero()
            || limits.max_records == 0
            || result.next_offset < result.high_watermark
        {
            return Ok(result);
        }
        part.wait_beyond(offset, wait).await;
        Ok(self.log.read(topic, partition, offset, limits).await?)
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
        let broker = Broker::new(Arc::new(store.clone()), BrokerOptions::default());
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

    fn value(v: &str) -> NewRecord<'_> {
        NewRecord {
            value: Some(Cow::Borrowed(v.as_bytes())),
            ..NewRecord::default()
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn outputs_state_and_consumed_offsets_are_stored_together_or_not_at_all() {
        let dir = tempfile::tempdir().unwrap();
        let group = "processor.count";
        {
            let store = Store::open(dir.path(), StoreOptions::default()).unwrap();
            for (name, partitions) in [("in", 1), ("out-a", 2), ("out-b", 1)] {
                store
                    .create_topic(name, TopicConfig::with_partitions(partitions))
                    .unwrap();
            }
            let broker = Broker::new(Arc::new(store.clone()), BrokerOptions::default());
            let input = broker.topic("in").unwrap();
            let records = [value("1"), value("2"), value("3")];
            broker.produce(&input, &records, Acks::All).await.unwrap();
            let outputs = vec![
                (
                    broker.topic("out-a").unwrap(),
                    vec![value("a1"), value("a2")],
                ),
                (broker.topic("out-b").unwrap(), vec![value("b1")]),
            ];

            // An offset past the input's end refuses the whole step.
            let past_end = broker.groups().commit_ops(group, &[("in".into(), 0, 4)]);
            assert!(matches!(
                past_end,
                Err(BrokerError::Storage(StorageError::OffsetOutOfRange { .. }))
            ));

            // The step's writes: the consumed offset and a state value.
            let commit = |state: &[u8]| {
                let mut ops = broker
                    .groups()
                    .commit_ops(group, &[("in".into(), 0, 3)])
                    .unwrap();
                ops.push((b"state/count".to_vec(), Some(state.to_vec())));
                ops
            };
            let positions = broker
                .produce_committing(&outputs, commit(b"3"), Acks::All, None)
                .await
                .unwrap();
            assert_eq!(positions.len(), 2);
            assert_eq!(positions[0].len(), 2);
            assert_eq!(positions[1].len(), 1);

            // One output topic deleted meanwhile: the next step stores nothing, not
            // its other output, its state or its offset.
            store.delete_topic("out-b").await.unwrap();
            let failed = broker
                .produce_committing(&outputs, commit(b"stale"), Acks::All, None)
                .await;
            assert!(
                matches!(
                    failed,
                    Err(BrokerError::Storage(StorageError::TopicNotFound(_)))
                ),
                "{failed:?}"
            );
            store.shutdown().await;
        }
        // Reopened: the outputs, the state and the offset are all there.
        let store = Store::open(dir.path(), StoreOptions::default()).unwrap();
        let broker = Broker::new(Arc::new(store.clone()), BrokerOptions::default());
        let count = |name: &str| {
            let t = broker.topic(name).unwrap();
            (0..t.partition_count())
                .map(|p| t.partition(p).unwrap().high_watermark())
                .sum::<u64>()
        };
        assert_eq!(count("out-a"), 2);
        assert!(broker.topic("out-b").is_err());
        let input = broker.topic("in").unwrap();
        let committed = broker.groups().committed(group, &input, 0).unwrap();
        assert_eq!(committed.map(|(offset, _)| offset), Some(3));
        assert_eq!(
            store.kv_get(b"state/count").unwrap().as_deref(),
            Some(&b"3"[..])
        );
        store.shutdown().await;
    }
}
