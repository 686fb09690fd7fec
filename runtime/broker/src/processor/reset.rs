//! Resetting a processor: every input partition's state cleared (the plugin's keys
//! and the runtime's: watermark, open windows, timers) and its consumed offset moved,
//! in one append, so a reset is whole or not at all.

use std::sync::Arc;

use weir_storage::{KvOp, Topic};

use super::lease::Lease;
use super::state::PartitionState;
use crate::{Acks, Broker, Result};

/// Where a reset puts each input partition.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResetTo {
    /// Its first offset still stored: everything is processed again.
    Earliest,
    /// Its end: only records published from now on are processed.
    Latest,
    /// This offset, clamped to what is stored.
    Offset(u64),
}

/// Clears processor `name`'s state on every partition of `inputs` and moves its
/// offsets to `to`, in one append, committed under `lease` (take a new generation
/// first, so the runs being replaced commit nothing more). The offsets it set.
pub async fn reset(
    broker: &Broker,
    name: &str,
    inputs: &[Arc<Topic>],
    to: ResetTo,
    lease: &Lease,
) -> Result<Vec<(String, u32, u64)>> {
    let mut ops: Vec<KvOp> = Vec::new();
    let mut offsets = Vec::new();
    let log = broker.log();
    let partitions = inputs
        .iter()
        .map(|t| t.partition_count())
        .max()
        .unwrap_or(0);
    for partition in 0..partitions {
        for mut state in [
            PartitionState::new(log.clone(), name, partition),
            PartitionState::timers(log.clone(), name, partition),
        ] {
            state.stage_clear()?;
            ops.extend(state.staged_ops());
        }
    }
    for topic in inputs {
        for partition in 0..topic.partition_count() {
            let mut system = PartitionState::system(log.clone(), name, topic, partition);
            system.stage_clear()?;
            ops.extend(system.staged_ops());
            let part = topic.partition(partition)?;
            let (start, end) = (part.log_start_offset(), part.high_watermark());
            let offset = match to {
                ResetTo::Earliest => start,
                ResetTo::Latest => end,
                ResetTo::Offset(o) => o.clamp(start, end),
            };
            offsets.push((topic.name().to_string(), partition, offset));
        }
    }
    let group = format!("processor.{name}");
    ops.extend(broker.groups().commit_ops(&group, &offsets)?);
    let _held = lease.hold().await?;
    broker.produce_committing(&[], ops, Acks::All, None).await?;
    Ok(offsets)
}
