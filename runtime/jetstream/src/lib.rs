//! Cluster mode: Weir's partitioned log on a NATS JetStream cluster.
//!
//! Weir does not replicate anything itself. Every topic, record, consumer offset and
//! piece of plugin state lives in one replicated JetStream stream (R3 by default; a
//! server fsyncs before it acknowledges when run with `sync_interval: always`, which
//! is the server's setting, not Weir's), and any number of stateless Weir
//! nodes serve it: each node follows the stream into an in-memory [view](view) and
//! writes with atomic batches. [`JetStreamLog`] implements the same
//! [`Log`](weir_storage::Log) trait as the embedded sled store, so the broker, the
//! HTTP API and the plugins do not know which one they run on.
//!
//! Code map: [`subjects`] (what lives where in the stream), [`chunk`] (offsets and
//! message payloads), [`publish`] (atomic, exactly-once appends), [`view`] and
//! [`tail`] (a node's state and how it follows the stream), [`read`], [`topics`]
//! (create and delete), [`append`], [`retention`], [`connect`] (options and the
//! checks at start).

use std::path::Path;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use async_nats::Client;
use async_nats::jetstream::stream::Stream;
use parking_lot::Mutex;
use weir_storage::{
    Acks, Created, Health, KvOp, Log, LogFuture, ReadLimits, ReadResult, SharedKv, Stats,
    StorageError, Topic, TopicBatch, TopicConfig,
};

mod append;
mod blobs;
mod chunk;
mod commit;
mod compaction;
mod connect;
mod publish;
mod read;
mod retention;
mod shared;
mod subjects;
mod tail;
mod topics;
mod view;

pub use connect::ClusterOptions;

use subjects::Subjects;
use view::View;

/// The log on a JetStream cluster. Cheap to clone.
#[derive(Debug, Clone)]
pub struct JetStreamLog {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    client: Client,
    stream: Stream,
    stream_name: String,
    subjects: Subjects,
    view: Arc<View>,
    options: ClusterOptions,
    /// Write-path counters; a flush is one atomic batch the committer published.
    stats: Arc<Stats>,
    /// Group commit: appends share atomic batches.
    committer: commit::Committer,
    /// Key-value writes made inside a plugin call, written with the next append.
    pending_kv: Mutex<Vec<KvOp>>,
    stop: tokio::sync::watch::Sender<bool>,
    /// Per partition, the high watermark compaction last cleaned up to and when its
    /// oldest kept tombstone expires, so a clean partition is not read again.
    compacted: Mutex<std::collections::HashMap<(u32, u32), compaction::Clean>>,
    /// Why the last write failed for want of the cluster, while it lasts.
    trouble: Mutex<Option<String>>,
    /// The object store bucket of deployed plugin versions, opened on first use.
    blobs: tokio::sync::OnceCell<blobs::Bucket>,
}

/// An `Unavailable` error for `what`, from any displayable cause.
pub(crate) fn unavailable<E: std::fmt::Display>(what: &str) -> impl Fn(E) -> StorageError + '_ {
    move |e| StorageError::Unavailable(format!("{what}: {e}"))
}

impl JetStreamLog {
    /// Connects to the cluster, checks it (server version, JetStream), creates the
    /// stream if needed, loads this node's view and starts following the stream.
    ///
    /// A cluster that is not reachable or not ready yet (starting, electing) is
    /// waited for up to `append_deadline`; one that cannot serve Weir (too old,
    /// JetStream off) is refused at once.
    pub async fn open(options: ClusterOptions) -> Result<JetStreamLog, StorageError> {
        let started = std::time::Instant::now();
        loop {
            match Self::try_open(options.clone()).await {
                Err(StorageError::Unavailable(why))
                    if started.elapsed() < options.append_deadline =>
                {
                    tracing::warn!(why, "waiting for the NATS cluster");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
                opened => return opened,
            }
        }
    }

    async fn try_open(options: ClusterOptions) -> Result<JetStreamLog, StorageError> {
        let (client, mut stream, stream_name) = connect::connect(&options).await?;
        // A message (payload and headers) must fit the servers' max_payload.
        let mut options = options;
        let max_payload = client.server_info().max_payload;
        options.max_message_bytes = options
            .max_message_bytes
            .min(max_payload.saturating_sub(16 << 10));
        let subjects = Subjects::new(&options.prefix);
        let view = Arc::new(View::new(
            subjects.clone(),
            options.cache_bytes_per_partition,
        ));
        let loaded = tail::load(&mut stream, &subjects, &view).await?;
        let (stop, stopped) = tokio::sync::watch::channel(false);
        tail::follow(
            stream.clone(),
            subjects.clone(),
            view.clone(),
            stopped.clone(),
        );
        let stats = Arc::new(Stats::default());
        let committer = commit::Committer::start(commit::Publisher {
            stats: stats.clone(),
            client: client.clone(),
            probe: subjects.probe(),
            timeout: options.request_timeout,
            deadline: options.append_deadline,
        });
        let log = JetStreamLog {
            inner: Arc::new(Inner {
                client,
                stream,
                stream_name,
                subjects,
                view,
                options,
                stats,
                committer,
                pending_kv: Mutex::new(Vec::new()),
                compacted: Mutex::default(),
                stop,
                trouble: Mutex::new(None),
                blobs: tokio::sync::OnceCell::new(),
            }),
        };
        // Serve only once caught up with what the stream held when we looked again.
        let caught_up = match log.last_sequence().await {
            Ok(now) => {
                let now = now.max(loaded);
                let timeout = log.inner.options.request_timeout * 3;
                log.inner
                    .view
                    .wait_applied(now, timeout)
                    .await
                    .then_some(now)
            }
            Err(_) => None,
        };
        let Some(now) = caught_up else {
            // Stop the follower this attempt started.
            let _ = log.inner.stop.send(true);
            return Err(StorageError::Unavailable(format!(
                "could not catch up with the stream (at {})",
                log.inner.view.applied()
            )));
        };
        retention::spawn(log.clone(), stopped);
        tracing::info!(
            stream = %log.inner.stream_name,
            sequence = now,
            topics = log.inner.view.topics().len(),
            "cluster log open"
        );
        Ok(log)
    }

    /// The stream's last sequence, as the cluster says now.
    async fn last_sequence(&self) -> Result<u64, StorageError> {
        let mut stream = self.inner.stream.clone();
        Ok(stream
            .info()
            .await
            .map_err(unavailable("reading the stream's state"))?
            .state
            .last_sequence)
    }

    /// Waits until this node's view has applied everything the stream holds now, so
    /// a compare-and-set that lost can be retried against fresh state.
    async fn catch_up(&self) -> Result<(), StorageError> {
        let last = self.last_sequence().await?;
        self.inner
            .view
            .wait_applied(last, self.inner.options.request_timeout)
            .await;
        Ok(())
    }

    /// Forgets the last write failure: the cluster answered since.
    fn clear_trouble(&self) {
        self.inner.trouble.lock().take();
    }

    /// Records a failure to reach the cluster for `health`, or clears it.
    fn note<T>(&self, result: &Result<T, StorageError>) {
        let mut trouble = self.inner.trouble.lock();
        match result {
            Err(StorageError::Unavailable(why)) => *trouble = Some(why.clone()),
            Ok(_) => *trouble = None,
            Err(_) => {}
        }
    }
}

impl Log for JetStreamLog {
    fn create_topic(&self, name: &str, config: TopicConfig) -> LogFuture<'_, Created> {
        let name = name.to_string();
        Box::pin(async move { self.create(&name, config).await })
    }

    fn delete_topic<'a>(&'a self, name: &'a str) -> LogFuture<'a, ()> {
        Box::pin(self.delete(name))
    }

    fn topic(&self, name: &str) -> weir_storage::Result<Arc<Topic>> {
        self.inner.view.topic(name)
    }

    fn topics(&self) -> Vec<Arc<Topic>> {
        self.inner.view.topics()
    }

    fn append(
        &self,
        batches: Vec<TopicBatch>,
        commit: Vec<KvOp>,
        acks: Acks,
    ) -> LogFuture<'_, Vec<u64>> {
        Box::pin(async move {
            let result = self.append_all(batches, commit, acks).await;
            self.note(&result);
            result
        })
    }

    fn read<'a>(
        &'a self,
        topic: &'a Topic,
        partition: u32,
        offset: u64,
        limits: ReadLimits,
    ) -> LogFuture<'a, ReadResult> {
        Box::pin(async move {
            read::Reader {
                client: &self.inner.client,
                stream: &self.inner.stream_name,
                view: &self.inner.view,
                subject: self.inner.subjects.records(topic.id(), partition),
                timeout: self.inner.options.request_timeout,
            }
            .read(topic, partition, offset, limits)
            .await
        })
    }

    fn offset_for_timestamp<'a>(
        &'a self,
        topic: &'a Topic,
        partition: u32,
        timestamp_ms: i64,
    ) -> LogFuture<'a, u64> {
        Box::pin(self.offset_at(topic, partition, timestamp_ms))
    }

    fn kv_write(&self, ops: Vec<KvOp>) -> LogFuture<'_, ()> {
        Box::pin(async move {
            let result = self.append_all(Vec::new(), ops, Acks::All).await.map(drop);
            self.note(&result);
            result
        })
    }

    fn kv_put_now(&self, key: &[u8], value: Option<&[u8]>) -> weir_storage::Result<()> {
        self.inner.view.kv_put_local(key, value);
        self.inner
            .pending_kv
            .lock()
            .push((key.to_vec(), value.map(<[u8]>::to_vec)));
        Ok(())
    }

    fn kv_get(&self, key: &[u8]) -> weir_storage::Result<Option<Vec<u8>>> {
        Ok(self.inner.view.kv_get(key))
    }

    fn kv_scan(&self, prefix: &[u8]) -> weir_storage::Result<Vec<(Vec<u8>, Vec<u8>)>> {
        Ok(self.inner.view.kv_scan(prefix))
    }

    fn records_between(&self, topic: &Topic, partition: u32, from: u64, to: u64) -> u64 {
        self.count_records(topic, partition, from, to)
    }

    fn shared_kv(&self) -> Option<&dyn SharedKv> {
        Some(self)
    }

    fn blobs(&self) -> Option<&dyn weir_storage::Blobs> {
        Some(self)
    }

    fn health(&self) -> Health {
        let connected = matches!(
            self.inner.client.connection_state(),
            async_nats::connection::State::Connected
        );
        let failure = if connected {
            self.inner.trouble.lock().clone()
        } else {
            Some("not connected to the NATS cluster".to_string())
        };
        Health {
            failure,
            full: false,
            free_bytes: None,
            floor_bytes: 0,
        }
    }

    fn stats(&self) -> &Stats {
        &self.inner.stats
    }

    fn local_path(&self) -> Option<&Path> {
        None
    }

    fn shutdown(&self) -> Pin<Box<dyn std::future::Future<Output = ()> + Send + '_>> {
        Box::pin(async move {
            // Plugin state set since the last append goes out now.
            let pending = std::mem::take(&mut *self.inner.pending_kv.lock());
            if !pending.is_empty()
                && let Err(e) = self.kv_write(pending).await
            {
                tracing::error!(error = %e, "writing the last plugin state failed");
            }
            let _ = self.inner.stop.send(true);
            let _ = self.inner.client.flush().await;
        })
    }
}

/// How long a request may wait on the cluster before it is retried or refused.
pub(crate) fn deadline(options: &ClusterOptions) -> Duration {
    options.append_deadline
}
