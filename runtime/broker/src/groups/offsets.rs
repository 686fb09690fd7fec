//! How committed offsets are kept in the log's key-value store: one key per group,
//! topic id and partition; the value is the offset and when it was committed.

use weir_storage::Topic;

use crate::error::{BrokerError, Result};

/// Checks a group name (Kafka's naming rule).
pub fn validate_group_name(name: &str) -> Result<()> {
    if weir_storage::config::is_valid_name(name) {
        Ok(())
    } else {
        Err(BrokerError::InvalidRequest(format!(
            "invalid group name '{name}': use 1-249 characters of A-Z, a-z, 0-9, '.', '_', '-'"
        )))
    }
}

pub(super) fn offset_key(group: &str, topic: &Topic, partition: u32) -> Vec<u8> {
    let mut k = group_prefix(group);
    k.extend_from_slice(&topic.id().to_be_bytes());
    k.extend_from_slice(&partition.to_be_bytes());
    k
}

pub(super) fn group_prefix(group: &str) -> Vec<u8> {
    let mut k = b"group/".to_vec();
    k.extend_from_slice(group.as_bytes());
    k.push(0);
    k
}

pub(super) fn encode_offset(offset: u64, at_ms: i64) -> Vec<u8> {
    let mut v = offset.to_be_bytes().to_vec();
    v.extend_from_slice(&at_ms.to_be_bytes());
    v
}

pub(super) fn decode_offset(v: &[u8]) -> Option<(u64, i64)> {
    if v.len() != 16 {
        return None;
    }
    let offset = u64::from_be_bytes(v[0..8].try_into().ok()?);
    let at = i64::from_be_bytes(v[8..16].try_into().ok()?);
    Some((offset, at))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offsets_round_trip_and_anything_else_is_not_an_offset() {
        let v = encode_offset(42, 1_700_000_000_000);
        assert_eq!(decode_offset(&v), Some((42, 1_700_000_000_000)));
        assert_eq!(decode_offset(&v[..15]), None);
        // A group's keys share its prefix, and no other group's ("g" vs "g2").
        assert!(!group_prefix("g2").starts_with(&group_prefix("g")));
        assert!(validate_group_name("billing.v2").is_ok());
        assert!(validate_group_name("bad name").is_err());
    }
}
