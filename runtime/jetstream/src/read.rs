//! Reads: a partition's records from an offset, from the node's cache of recent
//! messages or, for older ones, with one batched direct get from the stream.

use std::sync::Arc;
use std::time::Duration;

use async_nats::Client;
use futures_util::StreamExt;
use weir_storage::{ReadLimits, ReadResult, RecordView, StorageError, Topic, batch};

use crate::chunk;
use crate::view::{Entry, View};

/// Most messages one direct get asks for.
const BATCH_MESSAGES: usize = 64;

pub(crate) struct Reader<'a> {
    pub(crate) client: &'a Client,
    pub(crate) stream: &'a str,
    pub(crate) view: &'a View,
    pub(crate) subject: String,
    pub(crate) timeout: Duration,
}

fn record_size(r: &RecordView<'_>) -> usize {
    r.key.map_or(0, <[u8]>::len)
        + r.value.map_or(0, <[u8]>::len)
        + r.headers().map(|(n, v)| n.len() + v.len()).sum::<usize>()
}

impl Reader<'_> {
    pub(crate) async fn read(
        &self,
        topic: &Topic,
        partition: u32,
        offset: u64,
        limits: ReadLimits,
    ) -> Result<ReadResult, StorageError> {
        let (log_start_offset, high_watermark) =
            topic.partition(partition)?.readable_from(offset)?;
        let empty = |next| {
            ReadResult::from_chunks(
                Vec::new(),
                offset,
                next,
                0,
                high_watermark,
                log_start_offset,
            )
        };
        if offset == high_watermark || limits.max_records == 0 {
            return Ok(empty(offset));
        }
        let entries: Vec<Entry> = {
            let index = self.view.index(topic.id(), partition);
            let index = index.lock();
            let from = index.position(offset);
            index
                .entries
                .iter()
                .skip(from)
                .take_while(|e| e.end() <= high_watermark)
                .take(BATCH_MESSAGES)
                .cloned()
                .collect()
        };
        if entries.is_empty() {
            return Ok(empty(high_watermark));
        }
        let mut chunks: Vec<Arc<Vec<u8>>> = Vec::new();
        let mut fetched = None;
        for e in &entries {
            match &e.chunk {
                Some(c) => chunks.push(c.clone()),
                None if chunks.is_empty() => {
                    // Older than the cache: fetch from here on.
                    let got = self.fetch(e.seq, entries.len(), limits.max_bytes).await?;
                    fetched = Some(got);
                    break;
                }
                None => break,
            }
        }
        if let Some(got) = fetched {
            // Only messages this node's index lists: the stream may hold newer ones
            // (past this node's high watermark) or have lost some (compaction,
            // retention) that the index still shows.
            let listed: std::collections::HashSet<u64> = entries.iter().map(|e| e.seq).collect();
            chunks = got
                .into_iter()
                .filter(|(seq, _)| listed.contains(seq))
                .map(|(_, c)| c)
                .collect();
        }
        if chunks.is_empty() {
            // The messages were removed meanwhile (retention): the caller retries.
            return Ok(empty(offset));
        }
        // Count what the limits allow, from `offset` on.
        let (mut count, mut bytes) = (0usize, 0usize);
        let mut next = offset;
        let mut kept = Vec::new();
        'chunks: for c in chunks {
            let mut end = next;
            for b in batch::batches(&c) {
                let b = b?;
                end = end.max(b.header.end_offset());
                for r in b.records() {
                    let r = r?;
                    if r.offset < offset {
                        continue;
                    }
                    if r.offset >= high_watermark {
                        next = high_watermark;
                        kept.push(c.to_vec());
                        break 'chunks;
                    }
                    let size = record_size(&r);
                    if count == limits.max_records || (count > 0 && bytes + size > limits.max_bytes)
                    {
                        next = r.offset;
                        kept.push(c.to_vec());
                        break 'chunks;
                    }
                    count += 1;
                    bytes += size;
                }
            }
            next = end.min(high_watermark);
            kept.push(c.to_vec());
        }
        Ok(ReadResult::from_chunks(
            kept,
            offset,
            next.max(offset),
            count,
            high_watermark,
            log_start_offset,
        ))
    }

    /// Up to `max` messages of the partition from sequence `seq`, re-sealed with their
    /// offsets: one request answered with a batch (direct get, NATS 2.11+).
    async fn fetch(
        &self,
        seq: u64,
        max: usize,
        max_bytes: usize,
    ) -> Result<Vec<(u64, Arc<Vec<u8>>)>, StorageError> {
        let unavailable =
            |e: String| StorageError::Unavailable(format!("reading {}: {e}", self.subject));
        let inbox = self.client.new_inbox();
        let mut sub = self
            .client
            .subscribe(inbox.clone())
            .await
            .map_err(|e| unavailable(e.to_string()))?;
        let body = serde_json::json!({
            "seq": seq,
            "next_by_subj": self.subject,
            "batch": max,
            "max_bytes": max_bytes.max(1 << 20),
        });
        self.client
            .publish_with_reply(
                format!("$JS.API.DIRECT.GET.{}", self.stream),
                inbox,
                body.to_string().into(),
            )
            .await
            .map_err(|e| unavailable(e.to_string()))?;
        let mut out = Vec::new();
        loop {
            let m = match tokio::time::timeout(self.timeout, sub.next()).await {
                Ok(Some(m)) => m,
                Ok(None) => break,
                Err(_) => return Err(unavailable(format!("no answer within {:?}", self.timeout))),
            };
            match m.status.map(|s| s.as_u16()) {
                // End of the batch, or nothing (more) to send.
                Some(204) | Some(404) => break,
                Some(code) if code >= 300 => {
                    return Err(unavailable(format!(
                        "status {code} {}",
                        m.description.unwrap_or_default()
                    )));
                }
                _ => {}
            }
            let seq = m
                .headers
                .as_ref()
                .and_then(|h| h.get("Nats-Sequence"))
                .and_then(|v| v.as_str().parse::<u64>().ok())
                .ok_or_else(|| unavailable("a message without its sequence".into()))?;
            out.push((seq, Arc::new(chunk::rebase(&m.payload, seq)?)));
        }
        let _ = sub.unsubscribe().await;
        Ok(out)
    }
}
