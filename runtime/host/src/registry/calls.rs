//! The one way to call a plugin: a method per world's export on its [`Slot`], each
//! going through [`Slot::call`] so that every call is admitted by the breaker, timed
//! and counted, and fed to the probation of the version it ran on. Callers name what
//! they call; how many events went in and out is counted here, once.

use super::{CallKind, Slot};
use crate::error::Result;
use crate::plugin::{
    AclRequest, BatchInfo, Decision, Delivery, Destination, Plugin, PollInfo, Polled, Transformed,
};

impl Slot {
    /// A filter over `count` packed events: one keep flag per event.
    pub fn filter(
        &self,
        plugin: &Plugin,
        kind: CallKind,
        info: &BatchInfo,
        events: &[u8],
        count: usize,
    ) -> Result<Vec<bool>> {
        self.call(plugin, kind, count, |p| {
            let flags = p.filter(info, events, count)?;
            let kept = flags.iter().filter(|k| **k).count();
            Ok((flags, kept))
        })
    }

    /// A transform over `count` packed events: the outputs (checked to decode and to
    /// match the counts) and how many each input produced.
    pub fn transform(
        &self,
        plugin: &Plugin,
        kind: CallKind,
        info: &BatchInfo,
        events: &[u8],
        count: usize,
    ) -> Result<Transformed> {
        self.call(plugin, kind, count, |p| {
            let t = p.transform(info, events, count)?;
            let produced = t.counts.iter().map(|c| *c as usize).sum();
            Ok((t, produced))
        })
    }

    /// A router over `count` packed events: where each goes.
    pub fn route(
        &self,
        plugin: &Plugin,
        kind: CallKind,
        info: &BatchInfo,
        events: &[u8],
        count: usize,
    ) -> Result<Vec<Destination>> {
        self.call(plugin, kind, count, |p| {
            let d = p.route(info, events, count)?;
            let n = d.len();
            Ok((d, n))
        })
    }

    /// An ACL policy's decision on one request.
    pub fn authorize(&self, plugin: &Plugin, request: &AclRequest) -> Result<Decision> {
        self.call(plugin, CallKind::Batch, 1, |p| {
            p.authorize(request).map(|d| (d, 1))
        })
    }

    /// A source's poll: the events it brings in (and the state to commit with them).
    pub fn poll(&self, plugin: &Plugin, info: &PollInfo) -> Result<Polled> {
        self.call(plugin, CallKind::Batch, 0, |p| {
            p.poll(info).map(|polled| {
                let n = polled.count;
                (polled, n)
            })
        })
    }

    /// A sink's write of `count` packed events of one partition.
    pub fn write(
        &self,
        plugin: &Plugin,
        kind: CallKind,
        delivery: &Delivery,
        events: &[u8],
        count: usize,
    ) -> Result<()> {
        self.call(plugin, kind, count, |p| {
            p.write(delivery, events).map(|()| ((), count))
        })
    }
}
