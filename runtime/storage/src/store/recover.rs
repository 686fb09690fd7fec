//! Rebuilding every topic's offsets from the metadata and the last chunks at open.

use std::sync::atomic::Ordering;

use crate::error::{Result, StorageError};
use crate::topic::{Topic, TopicRecord};
use crate::writer::WriteContext;
use crate::{batch, keys};

pub(super) fn recover_topics(ctx: &WriteContext) -> Result<Vec<Topic>> {
    let mut topics = Vec::new();
    for item in ctx.meta.scan_prefix(keys::TOPIC_META_PREFIX) {
        let (key, value) = item?;
        let name = String::from_utf8_lossy(&key[keys::TOPIC_META_PREFIX.len()..]).into_owned();
        let record: TopicRecord = serde_json::from_slice(&value)
            .map_err(|e| StorageError::corrupt(format!("topic '{name}' metadata: {e}")))?;
        let topic = Topic::new(record.id, name, record.config);
        for (p, part) in topic.partitions.iter().enumerate() {
            let p = p as u32;
            let start = match ctx.meta.get(keys::log_start(topic.id, p))? {
                Some(v) => u64::from_be_bytes(
                    v.as_ref()
                        .try_into()
                        .map_err(|_| StorageError::corrupt("bad log start offset"))?,
                ),
                None => 0,
            };
            let mut end = start;
            let mut size = 0u64;
            let prefix = keys::partition_prefix(topic.id, p);
            let mut last = None;
            for chunk in ctx.data.scan_prefix(prefix) {
                let (key, value) = chunk?;
                size += value.len() as u64;
                last = Some((key, value));
            }
            if let Some((key, value)) = last {
                for b in batch::batches(&value) {
                    let b = b.map_err(|e| {
                        StorageError::corrupt(format!(
                            "topic '{}' partition {p} chunk at offset {}: {e}",
                            topic.name,
                            keys::base_offset_of(&key)
                        ))
                    })?;
                    end = end.max(b.header.end_offset());
                }
            }
            part.log_start.store(start, Ordering::Release);
            part.log_end.store(end, Ordering::Release);
            part.high_watermark.store(end, Ordering::Release);
            part.size_bytes.store(size, Ordering::Release);
        }
        topics.push(topic);
    }
    Ok(topics)
}
