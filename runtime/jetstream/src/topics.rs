//! Creating and deleting topics, safely from any number of nodes at once: a topic's
//! entry and the next-id counter are written together with compare-and-set on their
//! subjects, so two nodes creating topics race to one winner each time, ids are
//! never given twice, and the loser retries against the winner's state.

use weir_storage::config::validate_topic_name;
use weir_storage::{Created, StorageError, TopicConfig};

use crate::JetStreamLog;
use crate::publish::{OutMsg, PublishError, publish_atomic};
use crate::unavailable;
use crate::view::TopicMeta;

/// Compare-and-set rounds before a create gives up (each loses only to a change).
const ROUNDS: usize = 8;

impl JetStreamLog {
    pub(crate) async fn create(
        &self,
        name: &str,
        config: TopicConfig,
    ) -> Result<Created, StorageError> {
        validate_topic_name(name)?;
        config.validate()?;
        let inner = &self.inner;
        for _ in 0..ROUNDS {
            if let Ok(existing) = inner.view.topic(name) {
                return if *existing.config() == config {
                    Ok(Created::Existing)
                } else {
                    Err(StorageError::TopicExists(name.to_string()))
                };
            }
            let (topic_seq, id, id_seq) = inner.view.topic_versions(name);
            let meta = TopicMeta {
                id,
                config: Some(config.clone()),
            };
            let messages = [
                OutMsg::new(inner.subjects.next_topic_id(), (id + 1).to_string())
                    .expect_last(id_seq)
                    .rollup(),
                OutMsg::new(
                    inner.subjects.topic(name),
                    serde_json::to_vec(&meta).expect("topic entries serialise"),
                )
                .expect_last(topic_seq)
                .rollup(),
            ];
            match self.publish(&messages).await {
                Ok(seqs) => {
                    self.visible(seqs[1]).await;
                    tracing::info!(topic = name, id, "topic created");
                    return Ok(Created::New);
                }
                Err(PublishError::Conflict(_)) => self.catch_up().await?,
                Err(PublishError::Storage(e)) => return Err(e),
            }
        }
        Err(StorageError::Unavailable(format!(
            "creating topic '{name}' kept losing to concurrent changes"
        )))
    }

    pub(crate) async fn delete(&self, name: &str) -> Result<(), StorageError> {
        let inner = &self.inner;
        for _ in 0..ROUNDS {
            let topic = inner.view.topic(name)?;
            let (topic_seq, _, _) = inner.view.topic_versions(name);
            let gone = TopicMeta {
                id: topic.id(),
                config: None,
            };
            let message = OutMsg::new(
                inner.subjects.topic(name),
                serde_json::to_vec(&gone).expect("topic entries serialise"),
            )
            .expect_last(topic_seq)
            .rollup();
            match self.publish(&[message]).await {
                Ok(seqs) => {
                    self.visible(seqs[0]).await;
                    // The data goes after the entry: a crash in between leaves records
                    // of an id no topic has, which nothing reads and the next delete
                    // of any topic does not touch; purging again is harmless.
                    for filter in [
                        inner.subjects.topic_records(topic.id()),
                        inner.subjects.topic_log_starts(topic.id()),
                        inner.subjects.topic_compacted(topic.id()),
                    ] {
                        inner
                            .stream
                            .purge()
                            .filter(filter)
                            .await
                            .map_err(unavailable("purging a deleted topic"))?;
                    }
                    tracing::info!(topic = name, id = topic.id(), "topic deleted");
                    return Ok(());
                }
                Err(PublishError::Conflict(_)) => self.catch_up().await?,
                Err(PublishError::Storage(e)) => return Err(e),
            }
        }
        Err(StorageError::Unavailable(format!(
            "deleting topic '{name}' kept losing to concurrent changes"
        )))
    }

    /// Publishes with this log's timeouts.
    pub(crate) async fn publish(&self, messages: &[OutMsg]) -> Result<Vec<u64>, PublishError> {
        let inner = &self.inner;
        publish_atomic(
            &inner.client,
            &inner.subjects.probe(),
            messages,
            inner.options.request_timeout,
            crate::deadline(&inner.options),
        )
        .await
    }

    /// Waits until this node's view holds `seq` (the node's own writes are visible to
    /// its readers when the call returns, in the stream's order).
    pub(crate) async fn visible(&self, seq: u64) {
        let inner = &self.inner;
        if !inner
            .view
            .wait_applied(seq, inner.options.request_timeout)
            .await
        {
            tracing::warn!(
                seq,
                applied = inner.view.applied(),
                "the stream is not followed up to a write yet"
            );
        }
    }
}
