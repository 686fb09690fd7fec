//! Choosing a partition for a record.
//!
//! - An explicit partition wins.
//! - Else a keyed record goes to `murmur2(key) & 0x7fffffff % partitions`: the hash
//!   Kafka's Java client uses, so a key lands on the same partition number as it would
//!   with a Kafka producer, and it is stable across restarts and versions.
//! - Else (no key) the whole request sticks to one partition, chosen round-robin per
//!   request: batches stay whole, and load spreads evenly across requests (Kafka's
//!   sticky partitioner).

use std::sync::atomic::{AtomicU32, Ordering};

/// Kafka's murmur2 (the 32-bit variant with seed 0x9747b28c).
pub fn murmur2(data: &[u8]) -> u32 {
    const SEED: u32 = 0x9747_b28c;
    const M: u32 = 0x5bd1_e995;
    const R: u32 = 24;
    let len = data.len();
    let mut h = SEED ^ len as u32;
    let mut chunks = data.chunks_exact(4);
    for c in &mut chunks {
        let mut k = u32::from_le_bytes([c[0], c[1], c[2], c[3]]);
        k = k.wrapping_mul(M);
        k ^= k >> R;
        k = k.wrapping_mul(M);
        h = h.wrapping_mul(M);
        h ^= k;
    }
    let tail = chunks.remainder();
    if tail.len() >= 3 {
        h ^= u32::from(tail[2]) << 16;
    }
    if tail.len() >= 2 {
        h ^= u32::from(tail[1]) << 8;
    }
    if !tail.is_empty() {
        h ^= u32::from(tail[0]);
        h = h.wrapping_mul(M);
    }
    h ^= h >> 13;
    h = h.wrapping_mul(M);
    h ^= h >> 15;
    h
}

/// The partition of a keyed record.
pub fn partition_for_key(key: &[u8], partitions: u32) -> u32 {
    (murmur2(key) & 0x7fff_ffff) % partitions
}

/// Round-robin choice of the sticky partition for keyless records.
#[derive(Debug, Default)]
pub struct Sticky {
    next: AtomicU32,
}

impl Sticky {
    /// The partition for the keyless records of the next request.
    pub fn next(&self, partitions: u32) -> u32 {
        self.next.fetch_add(1, Ordering::Relaxed) % partitions
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_kafka_murmur2() {
        // Reference values from Kafka's UtilsTest.testMurmur2.
        let cases: [(&[u8], i32); 7] = [
            (b"21", -973932308),
            (b"foobar", -790332482),
            (b"a-little-bit-long-string", -985981536),
            (b"a-little-bit-longer-string", -1486304829),
            (
                b"lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8",
                -58897971,
            ),
            (b"abc", 479470107),
            (b"", 275646681),
        ];
        for (input, expected) in cases {
            assert_eq!(murmur2(input) as i32, expected, "{:?}", input);
        }
    }

    #[test]
    fn keys_spread_and_stay_put() {
        let mut seen = [0u32; 8];
        for i in 0..8000 {
            let k = format!("user-{i}");
            let p = partition_for_key(k.as_bytes(), 8);
            assert_eq!(p, partition_for_key(k.as_bytes(), 8));
            seen[p as usize] += 1;
        }
        assert!(seen.iter().all(|&n| n > 700), "{seen:?}");
    }
}
