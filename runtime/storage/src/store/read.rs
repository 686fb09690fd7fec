//! Reads: records of one partition from an offset, and the offset of a time.

use std::ops::Bound;

use super::Store;
use crate::batch::{self, RecordView};
use crate::config::CleanupPolicy;
use crate::error::{Result, StorageError};
use crate::keys;
use crate::topic::Topic;

/// Limits of one read.
#[derive(Debug, Clone, Copy)]
pub struct ReadLimits {
    /// Most records returned.
    pub max_records: usize,
    /// Stop after this many bytes of keys, values and headers (at least one record is
    /// returned, so a large record never blocks a reader).
    pub max_bytes: usize,
}

impl Default for ReadLimits {
    fn default() -> Self {
        Self {
            max_records: 1000,
            max_bytes: 4 << 20,
        }
    }
}

/// What a read returned: the chunks it touched and the offsets it covers.
#[derive(Debug)]
pub struct ReadResult {
    chunks: Vec<sled::IVec>,
    from: u64,
    /// Where the next read should start.
    pub next_offset: u64,
    /// Number of records returned.
    pub count: usize,
    /// The partition's high watermark at the time of the read.
    pub high_watermark: u64,
    /// The partition's log start offset at the time of the read.
    pub log_start_offset: u64,
}

impl ReadResult {
    /// A result over `chunks` (whole sealed batches with their real offsets): the
    /// records in `[from, next_offset)`. For [`Log`](crate::Log) implementations, which
    /// checked every batch's CRC and counted `count` records in that range.
    pub fn from_chunks(
        chunks: Vec<Vec<u8>>,
        from: u64,
        next_offset: u64,
        count: usize,
        high_watermark: u64,
        log_start_offset: u64,
    ) -> Self {
        ReadResult {
            chunks: chunks.into_iter().map(sled::IVec::from).collect(),
            from,
            next_offset,
            count,
            high_watermark,
            log_start_offset,
        }
    }

    /// The records, in offset order, borrowing from the stored chunks.
    pub fn records(&self) -> impl Iterator<Item = RecordView<'_>> {
        let (from, to) = (self.from, self.next_offset);
        self.chunks
            .iter()
            .flat_map(|c| batch::batches(c))
            // The read verified every batch and record it returns.
            .filter_map(|b| b.ok())
            .flat_map(|b| b.records())
            .filter_map(|r| r.ok())
            .filter(move |r| r.offset >= from && r.offset < to)
    }
}

fn record_size(r: &RecordView<'_>) -> usize {
    r.key.map_or(0, <[u8]>::len)
        + r.value.map_or(0, <[u8]>::len)
        + r.headers().map(|(n, v)| n.len() + v.len()).sum::<usize>()
}

impl Store {
    /// The first offset whose record has a timestamp at or after `timestamp_ms`, or the
    /// high watermark if there is none. Timestamps are the broker's append times, so
    /// they grow with offsets and a binary search over chunks finds the spot.
    pub fn offset_for_timestamp(
        &self,
        topic: &Topic,
        partition: u32,
        timestamp_ms: i64,
    ) -> Result<u64> {
        crate::engine::catch_engine_panic(|| {
            self.offset_for_timestamp_unguarded(topic, partition, timestamp_ms)
        })
    }

    fn offset_for_timestamp_unguarded(
        &self,
        topic: &Topic,
        partition: u32,
        timestamp_ms: i64,
    ) -> Result<u64> {
        let part = topic.partition(partition)?;
        let hw = part.high_watermark();
        let data = &self.ctx().data;
        let first = keys::data_key(topic.id, partition, 0);
        let end = keys::data_key(topic.id, partition, hw);
        // Chunks before `lo` are entirely older than the target.
        let mut lo = part.log_start_offset();
        let mut hi = hw;
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            let probe = keys::data_key(topic.id, partition, mid);
            let chunk = data
                .range::<&[u8], _>((Bound::Included(&first[..]), Bound::Included(&probe[..])))
                .next_back()
                .transpose()?;
            let Some((key, chunk)) = chunk else {
                break;
            };
            let base = keys::base_offset_of(&key);
            let mut chunk_end = base;
            let mut newest = i64::MIN;
            for b in batch::batches(&chunk) {
                let h = b?.header;
                chunk_end = chunk_end.max(h.end_offset());
                if h.record_count > 0 {
                    newest = newest.max(h.max_timestamp_ms);
                }
            }
            if newest < timestamp_ms {
                lo = chunk_end.max(mid + 1);
            } else {
                hi = base.min(hi);
                if base <= lo {
                    break;
                }
            }
        }
        // Scan forward from `lo` to the first record at or after the timestamp.
        let start = keys::data_key(topic.id, partition, lo.min(hw));
        let containing = data
            .range::<&[u8], _>((Bound::Included(&first[..]), Bound::Included(&start[..])))
            .next_back()
            .transpose()?;
        let later =
            data.range::<&[u8], _>((Bound::Excluded(&start[..]), Bound::Excluded(&end[..])));
        for item in containing.into_iter().map(Ok).chain(later) {
            let (_, chunk) = item?;
            for b in batch::batches(&chunk) {
                for r in b?.records() {
                    let r = r?;
                    if r.offset >= hw {
                        return Ok(hw);
                    }
                    if r.offset >= lo && r.timestamp_ms >= timestamp_ms {
                        return Ok(r.offset);
                    }
                }
            }
        }
        Ok(hw)
    }

    /// Reads records of one partition from `offset` on, up to the high watermark.
    ///
    /// `offset` must lie in `[log_start_offset, high_watermark]`; at the high watermark
    /// the result is empty. Offsets removed by compaction are skipped. Every batch
    /// touched is CRC-checked; damage is an error, never a short read.
    pub fn read(
        &self,
        topic: &Topic,
        partition: u32,
        offset: u64,
        limits: ReadLimits,
    ) -> Result<ReadResult> {
        // sled loads pages lazily and panics on some damaged ones instead of erring.
        crate::engine::catch_engine_panic(|| self.read_unguarded(topic, partition, offset, limits))
    }

    fn read_unguarded(
        &self,
        topic: &Topic,
        partition: u32,
        offset: u64,
        limits: ReadLimits,
    ) -> Result<ReadResult> {
        let part = topic.partition(partition)?;
        let (log_start_offset, high_watermark) = part.readable_from(offset)?;
        let mut result = ReadResult {
            chunks: Vec::new(),
            from: offset,
            next_offset: high_watermark,
            count: 0,
            high_watermark,
            log_start_offset,
        };
        if offset == high_watermark || limits.max_records == 0 {
            result.next_offset = offset;
            return Ok(result);
        }
        let data = &self.ctx().data;
        let start_key = keys::data_key(topic.id, partition, offset);
        let first = keys::data_key(topic.id, partition, 0);
        // The chunk holding `offset` starts at or before it.
        let containing = data
            .range::<&[u8], _>((Bound::Included(&first[..]), Bound::Included(&start_key[..])))
            .next_back()
            .transpose()?;
        let end_key = keys::data_key(topic.id, partition, high_watermark);
        let later = data.range::<&[u8], _>((
            Bound::Excluded(&start_key[..]),
            Bound::Excluded(&end_key[..]),
        ));
        let mut bytes = 0usize;
        // Where the next batch must start. Batches keep their spans through compaction,
        // but compaction drops emptied chunks, so only `delete` topics are gap-free;
        // every topic's stored batches reach the high watermark.
        let gap_free = topic.config.cleanup_policy == CleanupPolicy::Delete;
        let mut expect = offset;
        let missing = |from: u64, to: u64| {
            // Retention may have deleted chunks while this read walked them: that is
            // an offset out of range now, not damage.
            let log_start_offset = part.log_start_offset();
            if log_start_offset > from {
                return StorageError::OffsetOutOfRange {
                    offset,
                    log_start_offset,
                    high_watermark,
                };
            }
            StorageError::corrupt(format!(
                "topic '{}' partition {partition}: offsets [{from}, {to}) are missing from the store",
                topic.name
            ))
        };
        for item in containing.into_iter().map(Ok).chain(later) {
            let (_, chunk) = item?;
            let mut full = false;
            let mut used = false;
            'batches: for b in batch::batches(&chunk) {
                let b = b?;
                if b.header.end_offset() <= offset {
                    continue;
                }
                if gap_free && b.header.base_offset > expect {
                    return Err(missing(expect, b.header.base_offset));
                }
                expect = expect.max(b.header.end_offset());
                for r in b.records() {
                    let r = r?;
                    if r.offset < offset {
                        continue;
                    }
                    if r.offset >= high_watermark {
                        break 'batches;
                    }
                    let size = record_size(&r);
                    if result.count > 0
                        && (result.count >= limits.max_records || bytes + size > limits.max_bytes)
                    {
                        result.next_offset = r.offset;
                        full = true;
                        break 'batches;
                    }
                    bytes += size;
                    result.count += 1;
                    used = true;
                }
            }
            if used {
                result.chunks.push(chunk);
            }
            if full {
                return Ok(result);
            }
        }
        if expect < high_watermark {
            return Err(missing(expect, high_watermark));
        }
        Ok(result)
    }

    /// Sizes of every stored chunk of a topic (for tests of the chunking policy).
    #[doc(hidden)]
    pub fn chunk_sizes(&self, topic: &Topic) -> Vec<usize> {
        self.ctx()
            .data
            .scan_prefix(keys::topic_prefix(topic.id))
            .values()
            .filter_map(|v| v.ok().map(|v| v.len()))
            .collect()
    }
}
