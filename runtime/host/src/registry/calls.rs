//! The one way to call a plugin: a method per world's export on its [`Slot`], each
//! going through [`Slot::call`] so that every call is admitted by the breaker, timed
//! and counted, and fed to the probation of the version it ran on. Callers name what
//! they call; how many events went in and out is counted here, once.

use super::{CallKind, Slot};
use crate::error::Result;
use std::sync::Arc;

use crate::plugin::{
    AclRequest, BatchInfo, Decision, Delivery, Destination, Emitted, OnTime, Plugin, PollInfo,
    Polled, ProcessInfo, Transformed, Window,
};
use crate::state::KeyedState;

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

    /// A processor's event times for `count` packed events. Processor calls are
    /// `Batch` calls, except the runner's retries of a failed batch (`Retry`): one
    /// bad record costs the plugin's health one failure, not one per attempt.
    pub fn event_times(
        &self,
        plugin: &Plugin,
        kind: CallKind,
        events: &[u8],
        count: usize,
    ) -> Result<Vec<Option<i64>>> {
        self.call(plugin, kind, count, |p| {
            p.event_times(events, count).map(|t| (t, 0))
        })
    }

    /// A processor's `process` of `times.len()` on-time events.
    pub fn process(
        &self,
        plugin: &Plugin,
        kind: CallKind,
        info: &ProcessInfo,
        batch: OnTime<'_>,
        state: Arc<dyn KeyedState>,
    ) -> Result<Vec<Emitted>> {
        self.call(plugin, kind, batch.times.len(), |p| {
            let out = p.process(info, batch, state)?;
            let n = out.len();
            Ok((out, n))
        })
    }

    /// A processor's `close` of windows that closed.
    pub fn close(
        &self,
        plugin: &Plugin,
        kind: CallKind,
        info: &ProcessInfo,
        closed: &[(Vec<u8>, Window)],
        state: Arc<dyn KeyedState>,
    ) -> Result<Vec<Emitted>> {
        self.call(plugin, kind, 0, |p| {
            let out = p.close(info, closed, state)?;
            let n = out.len();
            Ok((out, n))
        })
    }

    /// A processor's `fire` of due timers.
    pub fn fire(
        &self,
        plugin: &Plugin,
        kind: CallKind,
        info: &ProcessInfo,
        keys: &[Vec<u8>],
        state: Arc<dyn KeyedState>,
    ) -> Result<Vec<Emitted>> {
        self.call(plugin, kind, 0, |p| {
            let out = p.fire(info, keys, state)?;
            let n = out.len();
            Ok((out, n))
        })
    }
}
