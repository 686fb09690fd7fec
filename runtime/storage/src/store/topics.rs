//! Creating, finding and deleting topics, with the watermark checkpoint kept in step.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use tokio::sync::oneshot;

use super::{Created, Store};
use crate::checkpoint::{self, Checkpoint};
use crate::config::{TopicConfig, validate_topic_name};
use crate::error::{Result, StorageError};
use crate::keys;
use crate::topic::{Topic, TopicRecord};
use crate::writer::Command;

impl Store {
    /// Creates a topic. Creating an identical topic again is not an error
    /// ([`Created::Existing`]); a different config for an existing name is.
    pub fn create_topic(&self, name: &str, config: TopicConfig) -> Result<Created> {
        validate_topic_name(name)?;
        config.validate()?;
        let _guard = self.inner.admin.lock();
        if let Some(existing) = self.inner.topics.get(name) {
            return if existing.config == config {
                Ok(Created::Existing)
            } else {
                Err(StorageError::TopicExists(name.to_string()))
            };
        }
        let id = self.inner.next_topic_id.fetch_add(1, Ordering::AcqRel);
        let record = TopicRecord {
            id,
            config: config.clone(),
        };
        let json =
            serde_json::to_vec(&record).map_err(|e| StorageError::InvalidConfig(e.to_string()))?;
        let mut meta = sled::Batch::default();
        meta.insert(keys::topic_meta(name), json);
        meta.insert(keys::NEXT_TOPIC_ID, &(id + 1).to_be_bytes());
        let ctx = self.ctx();
        ctx.meta.apply_batch(meta)?;
        ctx.db.flush()?;
        self.inner.topics.insert(
            name.to_string(),
            Arc::new(Topic::new(id, name.to_string(), config)),
        );
        tracing::info!(topic = name, id, "topic created");
        Ok(Created::New)
    }

    /// Deletes a topic and all its data, after every append queued before it.
    pub async fn delete_topic(&self, name: &str) -> Result<()> {
        let topic = self.topic(name)?;
        // The checkpoint forgets the topic before its data goes, so a crash in between
        // is not mistaken for lost data. Only this very topic: a concurrent delete, or
        // a delete and a create of the same name, must not remove another.
        if !self.forget_topic(&topic) {
            return Err(StorageError::TopicNotFound(name.to_string()));
        }
        let (reply, rx) = oneshot::channel();
        self.send(Command::DeleteTopic { topic, reply }).await?;
        rx.await.map_err(|_| StorageError::ShuttingDown)??;
        tracing::info!(topic = name, "topic deleted");
        Ok(())
    }

    /// Takes `topic` out of the map and the checkpoint (under the checkpoint's lock, so
    /// the periodic save cannot put it back). False if it was no longer there.
    fn forget_topic(&self, topic: &Arc<Topic>) -> bool {
        let mut last = self.inner.checkpoint.lock();
        let removed = self
            .inner
            .topics
            .remove_if(&topic.name, |_, t| Arc::ptr_eq(t, topic))
            .is_some();
        if removed {
            self.save_checkpoint_locked(&mut last);
        }
        removed
    }

    /// Saves the watermark checkpoint if it changed.
    pub(super) fn save_checkpoint(&self) {
        let mut last = self.inner.checkpoint.lock();
        self.save_checkpoint_locked(&mut last);
    }

    fn save_checkpoint_locked(&self, last: &mut Option<Checkpoint>) {
        let now = Checkpoint::of(
            self.inner
                .topics
                .iter()
                .map(|t| t.value().clone())
                .collect::<Vec<_>>()
                .iter(),
        );
        if last.as_ref() == Some(&now) {
            return;
        }
        match now.save(&self.inner.path) {
            Ok(()) => *last = Some(now),
            Err(e) => {
                // A stale checkpoint could lead the store (a deleted topic still in it):
                // better none, which checks nothing, until a save succeeds. Unlinking
                // needs no free space.
                tracing::warn!(error = %e, "cannot save the watermark checkpoint; removed it until a save succeeds");
                let _ = std::fs::remove_file(self.inner.path.join(checkpoint::FILE));
                *last = None;
            }
        }
    }

    /// The topic named `name`.
    pub fn topic(&self, name: &str) -> Result<Arc<Topic>> {
        self.inner
            .topics
            .get(name)
            .map(|t| t.clone())
            .ok_or_else(|| StorageError::TopicNotFound(name.to_string()))
    }

    /// All topics, sorted by name.
    pub fn topics(&self) -> Vec<Arc<Topic>> {
        let mut all: Vec<_> = self.inner.topics.iter().map(|t| t.clone()).collect();
        all.sort_by(|a, b| a.name.cmp(&b.name));
        all
    }
}
