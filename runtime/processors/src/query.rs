//! Read-only looks at a processor's state, for debugging: one key on every input
//! partition, or a page of entries by key prefix. Reads see what is committed (a
//! batch in flight is not visible until its append).

use weir_broker::processor::state::PartitionState;

use crate::{ProcessorError, Processors};

/// Most entries one snapshot page returns.
pub const MAX_PAGE: usize = 1_000;

/// One state entry and where it lives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StateEntry {
    /// The partition number (of every input) it belongs to.
    pub partition: u32,
    /// The plugin's key.
    pub key: Vec<u8>,
    /// Its value.
    pub value: Vec<u8>,
}

impl Processors {
    /// `key`'s value on each partition number that has it (state is per partition:
    /// the same key may live on several).
    pub fn state_get(&self, name: &str, key: &[u8]) -> Result<Vec<StateEntry>, ProcessorError> {
        let mut found = Vec::new();
        for (partition, mut state) in self.partition_states(name)? {
            if let Some(value) = state.get(key)? {
                found.push(StateEntry {
                    partition,
                    key: key.to_vec(),
                    value,
                });
            }
        }
        Ok(found)
    }

    /// Up to `limit` (at most [`MAX_PAGE`]) entries whose keys start with `prefix`,
    /// by partition, then key; after `after` (the last entry of the page before, to
    /// page on).
    pub fn state_scan(
        &self,
        name: &str,
        prefix: &[u8],
        after: Option<(u32, &[u8])>,
        limit: usize,
    ) -> Result<Vec<StateEntry>, ProcessorError> {
        let limit = limit.min(MAX_PAGE);
        let mut entries = Vec::new();
        for (partition, mut state) in self.partition_states(name)? {
            if entries.len() >= limit {
                break;
            }
            let from = match after {
                Some((p, _)) if partition < p => continue,
                Some((p, key)) if partition == p => Some(key),
                _ => None,
            };
            for (key, value) in state.scan(prefix, from, limit - entries.len())? {
                entries.push(StateEntry {
                    partition,
                    key,
                    value,
                });
            }
        }
        Ok(entries)
    }

    /// How many keys `name`'s committed state holds over its partitions, and their
    /// bytes. Reads through the whole state (for one processor's status, not lists).
    pub fn state_size(&self, name: &str) -> Result<(u64, u64), ProcessorError> {
        let mut total = (0, 0);
        for (_, state) in self.partition_states(name)? {
            let (keys, bytes) = state.size()?;
            total = (total.0 + keys, total.1 + bytes);
        }
        Ok(total)
    }

    fn partition_states(&self, name: &str) -> Result<Vec<(u32, PartitionState)>, ProcessorError> {
        let slot = self.slot(name)?;
        let settings = slot
            .manifest()
            .and_then(|m| m.processor)
            .ok_or_else(|| ProcessorError::NotFound(name.to_string()))?;
        let broker = &self.inner.broker;
        let inputs = self
            .inner
            .inputs(&settings)
            .map_err(ProcessorError::Invalid)?;
        let partitions = inputs
            .iter()
            .map(|t| t.partition_count())
            .max()
            .unwrap_or(0);
        Ok((0..partitions)
            .map(|p| {
                let state = PartitionState::new(broker.log().clone(), name, p);
                (p, state)
            })
            .collect())
    }
}
