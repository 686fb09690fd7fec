//! Appends (many partitions of many topics in one atomic write) and the key-value
//! tree beside the log.

use tokio::sync::oneshot;

use super::Store;
use crate::batch::EncodedBatch;
use crate::error::{Result, StorageError};
use crate::topic::Topic;
use crate::writer::{Acks, BasesNote, Command, KvOp, TopicBatch};

use std::sync::Arc;

impl Store {
    /// Appends batches atomically: every batch of the call is stored, or none is.
    /// Returns each batch's base offset, in the order given. With [`Acks::All`] it
    /// returns once a flush covers the batches.
    pub async fn append(
        &self,
        topic: &Arc<Topic>,
        batches: Vec<(u32, EncodedBatch)>,
        acks: Acks,
    ) -> Result<Vec<u64>> {
        let batches = batches
            .into_iter()
            .map(|(partition, batch)| TopicBatch {
                topic: topic.clone(),
                partition,
                batch,
            })
            .collect();
        self.append_many(batches, acks).await
    }

    /// Appends batches of any number of topics atomically: they land in one sled
    /// batch, so after a crash either all of them exist or none does, and they are
    /// acknowledged together. Returns each batch's base offset, in the order given.
    pub async fn append_many(&self, batches: Vec<TopicBatch>, acks: Acks) -> Result<Vec<u64>> {
        self.append_committing(batches, Vec::new(), acks).await
    }

    /// [`append_many`](Self::append_many) plus key-value writes committed atomically
    /// with the batches: after a crash either the records and the writes exist, or
    /// neither does. With no batches, the writes alone are made durable.
    pub async fn append_committing(
        &self,
        batches: Vec<TopicBatch>,
        kv: Vec<KvOp>,
        acks: Acks,
    ) -> Result<Vec<u64>> {
        self.append_noting(batches, kv, None, acks).await
    }

    /// [`append_committing`](Self::append_committing) plus `note`, whose value ends
    /// with the bases the batches got, in the same atomic write (see [`BasesNote`]).
    pub async fn append_noting(
        &self,
        batches: Vec<TopicBatch>,
        kv: Vec<KvOp>,
        note: Option<BasesNote>,
        acks: Acks,
    ) -> Result<Vec<u64>> {
        let mut bytes = 0u64;
        for b in &batches {
            b.topic.partition(b.partition)?;
            bytes += b.batch.len() as u64;
        }
        if batches.is_empty() {
            self.kv_write(kv).await?;
            return Ok(Vec::new());
        }
        // Before anything is queued, so a refusal writes nothing. Key-value writes
        // alone (offset commits, plugin state) are small and use the floor's headroom.
        self.inner.space.admit(bytes)?;
        let (reply, rx) = oneshot::channel();
        self.send(Command::Append {
            batches,
            kv,
            note,
            acks,
            reply,
        })
        .await?;
        rx.await.map_err(|_| StorageError::ShuttingDown)?
    }

    /// Writes to the key-value tree atomically; returns once they are durable (they
    /// share the flush of concurrent appends).
    pub async fn kv_write(&self, ops: Vec<KvOp>) -> Result<()> {
        if ops.is_empty() {
            return Ok(());
        }
        let (reply, rx) = oneshot::channel();
        self.send(Command::Kv { ops, reply }).await?;
        rx.await.map_err(|_| StorageError::ShuttingDown)?
    }

    /// Writes one key-value pair now, without waiting for durability: it becomes
    /// durable with the next flush (every acknowledged append is one). For callers that
    /// cannot wait, such as a plugin's synchronous `state-set` inside a batch call: the
    /// batch's own records are flushed before they are acknowledged, and this write
    /// was made before them.
    pub fn kv_put_now(&self, key: &[u8], value: Option<&[u8]>) -> Result<()> {
        match value {
            Some(v) => self.ctx().kv.insert(key, v)?,
            None => self.ctx().kv.remove(key)?,
        };
        Ok(())
    }

    /// A value of the key-value tree.
    pub fn kv_get(&self, key: &[u8]) -> Result<Option<Vec<u8>>> {
        crate::engine::catch_engine_panic(|| Ok(self.ctx().kv.get(key)?.map(|v| v.to_vec())))
    }

    /// How many key-value pairs start with `prefix`, and their bytes, read one at a
    /// time.
    pub fn kv_size(&self, prefix: &[u8]) -> Result<(u64, u64)> {
        crate::engine::catch_engine_panic(|| {
            let mut size = (0, 0);
            for item in self.ctx().kv.scan_prefix(prefix) {
                let (k, v) = item?;
                size.0 += 1;
                size.1 += (k.len() + v.len()) as u64;
            }
            Ok(size)
        })
    }

    /// Every key-value pair whose key starts with `prefix`, in key order.
    pub fn kv_scan(&self, prefix: &[u8]) -> Result<Vec<(Vec<u8>, Vec<u8>)>> {
        crate::engine::catch_engine_panic(|| {
            self.ctx()
                .kv
                .scan_prefix(prefix)
                .map(|item| {
                    let (k, v) = item?;
                    Ok((k.to_vec(), v.to_vec()))
                })
                .collect()
        })
    }
}
