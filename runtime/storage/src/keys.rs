//! Key layout of the two sled trees.
//!
//! `data`: `topic_id u32 BE | partition u32 BE | base_offset u64 BE` → chunk. Big-endian
//! keys sort by offset, so a read is one range scan, and all partitions of all topics
//! share one tree so a request spanning partitions (and later topics) is one atomic
//! `apply_batch`.
//!
//! `meta`: `topic/<name>` → topic JSON, `next_topic_id` → u32 BE,
//! `log_start/<topic_id BE><partition BE>` → u64 BE.

/// Length of a data key.
pub const DATA_KEY_LEN: usize = 16;

/// The data key of the chunk that starts at `base_offset`.
pub fn data_key(topic_id: u32, partition: u32, base_offset: u64) -> [u8; DATA_KEY_LEN] {
    let mut k = [0; DATA_KEY_LEN];
    k[0..4].copy_from_slice(&topic_id.to_be_bytes());
    k[4..8].copy_from_slice(&partition.to_be_bytes());
    k[8..16].copy_from_slice(&base_offset.to_be_bytes());
    k
}

/// Prefix of every chunk of one partition.
pub fn partition_prefix(topic_id: u32, partition: u32) -> [u8; 8] {
    let mut k = [0; 8];
    k[0..4].copy_from_slice(&topic_id.to_be_bytes());
    k[4..8].copy_from_slice(&partition.to_be_bytes());
    k
}

/// Prefix of every chunk of one topic.
pub fn topic_prefix(topic_id: u32) -> [u8; 4] {
    topic_id.to_be_bytes()
}

/// The base offset encoded in a data key.
pub fn base_offset_of(key: &[u8]) -> u64 {
    let mut b = [0; 8];
    b.copy_from_slice(&key[8..16]);
    u64::from_be_bytes(b)
}

/// Meta key of a topic's definition.
pub fn topic_meta(name: &str) -> Vec<u8> {
    [b"topic/".as_slice(), name.as_bytes()].concat()
}

/// Prefix of all topic definitions.
pub const TOPIC_META_PREFIX: &[u8] = b"topic/";

/// Meta key of the topic id counter.
pub const NEXT_TOPIC_ID: &[u8] = b"next_topic_id";

/// Meta key of a partition's persisted log start offset.
pub fn log_start(topic_id: u32, partition: u32) -> Vec<u8> {
    [
        b"log_start/".as_slice(),
        &partition_prefix(topic_id, partition),
    ]
    .concat()
}

/// Prefix of all log start offsets of one topic.
pub fn log_start_topic_prefix(topic_id: u32) -> Vec<u8> {
    [b"log_start/".as_slice(), &topic_id.to_be_bytes()].concat()
}
