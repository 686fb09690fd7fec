//! A subscription's own filter or transform, run server-side on what a fetch read,
//! before it is sent. Offsets stay the stored ones (a transform's outputs carry the
//! offset of the record they came from), so commits and resume work unchanged.

use std::sync::Arc;

use weir_host::packed::{FLAG_VALUE_JSON, Writer};
use weir_host::{BatchInfo, CallKind, Kind, Plugin, PluginError, Registry, Slot};
use weir_storage::batch::ATTR_VALUE_JSON;
use weir_storage::{ReadResult, Topic};

use crate::error::{BrokerError, Result};

/// What a subscription filter lets through from one read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Delivery {
    /// One flag per record read: true sends it.
    Keep(Vec<bool>),
    /// New packed events, each with the offset of the record it came from.
    Rewritten {
        /// Packed events.
        packed: Vec<u8>,
        /// Per event, its source offset.
        offsets: Vec<u64>,
    },
}

/// A filter or transform plugin, with the subscription's config, for one subscriber.
#[derive(Debug, Clone)]
pub struct SubscriptionFilter {
    slot: Arc<Slot>,
    plugin: Arc<Plugin>,
}

impl SubscriptionFilter {
    /// The plugin `name` of `registry`, initialised with `config_json` (a JSON object;
    /// `None`: its manifest's config).
    pub fn new(registry: &Registry, name: &str, config_json: Option<&str>) -> Result<Self> {
        let (slot, plugin) = registry.variant(name, config_json)?;
        if !matches!(plugin.kind(), Kind::Filter | Kind::Transform) {
            return Err(PluginError::WrongKind {
                plugin: name.to_string(),
                expected: "filter or transform",
                actual: plugin.kind().as_str(),
            }
            .into());
        }
        Ok(Self { slot, plugin })
    }

    /// Runs the plugin over `result`'s records, off the async threads (a call may
    /// take up to the plugin's deadline). Hands the read back with the delivery.
    pub async fn apply(&self, topic: &Topic, result: ReadResult) -> Result<(ReadResult, Delivery)> {
        let this = self.clone();
        let info = BatchInfo {
            topic: topic.name().to_string(),
            partitions: topic.partition_count(),
        };
        tokio::task::spawn_blocking(move || {
            let delivery = this.apply_now(&info, &result)?;
            Ok((result, delivery))
        })
        .await
        .map_err(|e| BrokerError::Internal(format!("subscription filter did not finish: {e}")))?
    }

    fn apply_now(&self, info: &BatchInfo, result: &ReadResult) -> Result<Delivery> {
        let mut w = Writer::with_capacity(result.count * 128);
        let mut offsets = Vec::with_capacity(result.count);
        for r in result.records() {
            let flags = if r.attributes & ATTR_VALUE_JSON != 0 {
                FLAG_VALUE_JSON
            } else {
                0
            };
            w.push(r.timestamp_ms, flags, r.key, r.value, r.headers());
            offsets.push(r.offset);
        }
        let count = offsets.len();
        if count == 0 {
            return Ok(Delivery::Keep(Vec::new()));
        }
        let buf = w.finish();
        let delivery = match self.plugin.kind() {
            Kind::Filter => Delivery::Keep(self.slot.filter(
                &self.plugin,
                CallKind::Batch,
                info,
                &buf,
                count,
            )?),
            _ => {
                let t = self
                    .slot
                    .transform(&self.plugin, CallKind::Batch, info, &buf, count)?;
                let mut out = Vec::with_capacity(offsets.len());
                for (offset, n) in offsets.iter().zip(&t.counts) {
                    out.extend(std::iter::repeat_n(*offset, *n as usize));
                }
                Delivery::Rewritten {
                    packed: t.events,
                    offsets: out,
                }
            }
        };
        Ok(delivery)
    }
}
