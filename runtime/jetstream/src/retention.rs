//! Retention by time and size in cluster mode: whole messages of a partition are
//! purged from the stream once they are older than `retention_ms` or beyond
//! `retention_bytes`, and the partition's new log start is published so every node
//! moves it. Every node runs this; purging what is already gone is harmless.
//!
//! Compact topics are cleaned by [`compaction`](crate::compaction) in the same loop.

use std::time::Duration;

use weir_storage::{CleanupPolicy, StorageError, Topic, now_ms};

use crate::JetStreamLog;
use crate::chunk::base_of;
use crate::publish::OutMsg;
use crate::unavailable;

pub(crate) fn spawn(log: JetStreamLog, mut stop: tokio::sync::watch::Receiver<bool>) {
    tokio::spawn(async move {
        let every = log
            .inner
            .options
            .retention_interval
            .max(Duration::from_millis(100));
        loop {
            tokio::select! {
                _ = stop.changed() => return,
                _ = tokio::time::sleep(every) => {}
            }
            // A node that is behind the stream must not clean by its stale view (it
            // could publish a log start below a newer one). Reaching the cluster also
            // clears a write failure that readiness reports.
            let timeout = log.inner.options.request_timeout;
            match log.last_sequence().await {
                Ok(last) if log.inner.view.wait_applied(last, timeout).await => log.clear_trouble(),
                Ok(_) => continue,
                Err(e) => {
                    tracing::debug!(error = %e, "cleaner: cannot reach the cluster");
                    continue;
                }
            }
            for topic in log.inner.view.topics() {
                let pass = match topic.config().cleanup_policy {
                    CleanupPolicy::Compact => log.compact(&topic).await,
                    _ => log.retain(&topic).await,
                };
                if let Err(e) = pass {
                    tracing::warn!(topic = topic.name(), error = %e, "cleaner pass failed");
                }
            }
        }
    });
}

impl JetStreamLog {
    async fn retain(&self, topic: &Topic) -> Result<(), StorageError> {
        let config = topic.config();
        if config.cleanup_policy != CleanupPolicy::Delete
            || (config.retention_ms.is_none() && config.retention_bytes.is_none())
        {
            return Ok(());
        }
        let now = now_ms();
        for p in 0..topic.partition_count() {
            // The first message to keep, and the log start that goes with it.
            let cut = {
                let index = self.inner.view.index(topic.id(), p);
                let index = index.lock();
                let mut keep_from = 0;
                if let Some(ms) = config.retention_ms {
                    keep_from = index
                        .entries
                        .partition_point(|e| e.time_ms < now - ms as i64);
                }
                if let Some(max) = config.retention_bytes {
                    let mut kept = 0u64;
                    let mut i = index.entries.len();
                    while i > keep_from && kept + index.entries[i - 1].bytes <= max {
                        kept += index.entries[i - 1].bytes;
                        i -= 1;
                    }
                    keep_from = keep_from.max(i);
                }
                if keep_from == 0 {
                    continue;
                }
                match index.entries.get(keep_from) {
                    Some(e) => (e.seq, base_of(e.seq)),
                    None => {
                        let last = &index.entries[keep_from - 1];
                        (last.seq + 1, last.end())
                    }
                }
            };
            // The new log start first, then the purge: every node stops reading below
            // it before the messages go, and a crash in between leaves only records
            // that the next pass purges (the start is never behind the data).
            let start = OutMsg::new(
                self.inner.subjects.log_start(topic.id(), p),
                cut.1.to_string(),
            )
            .rollup();
            let published = self.publish(&[start]).await.map_err(StorageError::from)?;
            self.visible(published[0]).await;
            let subject = self.inner.subjects.records(topic.id(), p);
            self.inner
                .stream
                .purge()
                .filter(subject)
                .sequence(cut.0)
                .await
                .map_err(unavailable("purging expired records"))?;
        }
        Ok(())
    }
}
