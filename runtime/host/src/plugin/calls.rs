//! One entry per world's export: filter, transform, route, authorize, poll, write.
//! Each takes an instance from the pool, runs under the deadline, and checks what
//! the plugin answered before handing it on.

use std::collections::BTreeMap;

use crate::bindings::types;
use crate::error::Result;

use super::call_types::*;
use super::{Bindings, Plugin};

impl Plugin {
    /// Runs a filter over a packed batch of `count` events: one keep flag per event.
    pub fn filter(&self, info: &BatchInfo, events: &[u8], count: usize) -> Result<Vec<bool>> {
        let info = types::BatchInfo {
            topic: info.topic.clone(),
            partitions: info.partitions,
        };
        let flags = self.with_instance(|live| match &live.bindings {
            Bindings::Filter(b) => self.guest(b.call_filter(&mut live.store, &info, events)),
            _ => Err(self.wrong_kind("filter")),
        })?;
        if flags.len() != count {
            return Err(self.invalid(format!("{} flags for {count} events", flags.len())));
        }
        Ok(flags)
    }

    /// Runs a transform over a packed batch of `count` events. The result is checked:
    /// one count per input, and outputs that decode and add up to the counts.
    pub fn transform(&self, info: &BatchInfo, events: &[u8], count: usize) -> Result<Transformed> {
        let info = types::BatchInfo {
            topic: info.topic.clone(),
            partitions: info.partitions,
        };
        let out = self.with_instance(|live| match &live.bindings {
            Bindings::Transform(b) => self.guest(b.call_transform(&mut live.store, &info, events)),
            _ => Err(self.wrong_kind("transform")),
        })?;
        if out.counts.len() != count {
            return Err(self.invalid(format!("{} counts for {count} events", out.counts.len())));
        }
        // The outputs must decode and match the counts, so callers can trust both.
        let produced =
            crate::packed::validate(&out.events).map_err(|e| self.invalid(e.to_string()))?;
        let promised: u64 = out.counts.iter().map(|c| u64::from(*c)).sum();
        if promised != produced as u64 {
            return Err(self.invalid(format!(
                "counts add up to {promised} but {produced} events were returned"
            )));
        }
        Ok(Transformed {
            events: out.events,
            counts: out.counts,
        })
    }

    /// Runs a router over a packed batch of `count` events.
    pub fn route(&self, info: &BatchInfo, events: &[u8], count: usize) -> Result<Vec<Destination>> {
        let info = types::BatchInfo {
            topic: info.topic.clone(),
            partitions: info.partitions,
        };
        let list = self.with_instance(|live| match &live.bindings {
            Bindings::Router(b) => self.guest(b.call_route(&mut live.store, &info, events)),
            _ => Err(self.wrong_kind("router")),
        })?;
        if let Some(d) = list.iter().find(|d| d.event as usize >= count) {
            return Err(self.invalid(format!("destination for event {} of {count}", d.event)));
        }
        Ok(list
            .into_iter()
            .map(|d| Destination {
                event: d.event,
                topic: d.topic,
                key: d.key,
            })
            .collect())
    }

    /// Asks an ACL policy about one request.
    pub fn authorize(&self, request: &AclRequest) -> Result<Decision> {
        let r = types::AclRequest {
            principal: request.principal.clone(),
            groups: request.groups.clone(),
            operation: request.operation.clone(),
            resource_kind: request.resource_kind.clone(),
            resource_name: request.resource_name.clone(),
            headers: request.headers.clone(),
        };
        let verdict = self.with_instance(|live| match &live.bindings {
            Bindings::Acl(b) => b
                .call_authorize(&mut live.store, &r)
                .map_err(|e| self.classify(e)),
            _ => Err(self.wrong_kind("acl")),
        })?;
        Ok(match verdict {
            types::Decision::Allow => Decision::Allow,
            types::Decision::Deny(reason) => Decision::Deny(reason),
        })
    }

    /// Polls a source for up to `info.max` events. The state it wrote during the
    /// poll comes back with the events, not yet written: the caller commits both
    /// together (or neither).
    pub fn poll(&self, info: &PollInfo) -> Result<Polled> {
        let wit_info = types::PollInfo {
            topic: info.topic.clone(),
            partitions: info.partitions,
            max: info.max,
            now_ms: info.now_ms,
        };
        let (events, staged) = self.with_instance(|live| match &live.bindings {
            Bindings::Source(b) => {
                live.store.data_mut().staged = Some(BTreeMap::new());
                let r = self.guest(b.call_poll(&mut live.store, &wit_info));
                let staged = live.store.data_mut().staged.take().unwrap_or_default();
                r.map(|events| (events, staged))
            }
            _ => Err(self.wrong_kind("source")),
        })?;
        let count = crate::packed::decode(&events)
            .map_err(|e| self.invalid(e.to_string()))?
            .len();
        if count > info.max as usize {
            return Err(self.invalid(format!("{count} events for a poll of at most {}", info.max)));
        }
        Ok(Polled {
            events,
            count,
            state: staged.into_iter().collect(),
        })
    }

    /// Hands a sink one partition's events in offset order.
    pub fn write(&self, delivery: &Delivery, events: &[u8]) -> Result<()> {
        let batch = types::Delivery {
            topic: delivery.topic.clone(),
            partition: delivery.partition,
            offsets: delivery.offsets.clone(),
        };
        self.with_instance(|live| match &live.bindings {
            Bindings::Sink(b) => self.guest(b.call_write(&mut live.store, &batch, events)),
            _ => Err(self.wrong_kind("sink")),
        })
    }
}
