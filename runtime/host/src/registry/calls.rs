//! The one way to call a plugin: a method per world's export on its [`Slot`], each
//! going through [`Slot::call`] so that every call is admitted by the breaker, timed
//! and counted, and fed to the probation of the version it ran on. Callers name what
//! they call; how many events went in and out is counted here, once.

use super::{CallKind, Slot};
use crate::error::Result;
use std::sync::Arc;
use std::time::Instant;

use super::shadow::Served;

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
        let started = Instant::now();
        let flags = self.call(plugin, kind, count, |p| {
            let flags = p.filter(info, events, count)?;
            let kept = flags.iter().filter(|k| **k).count();
            Ok((flags, kept))
        });
        self.to_shadow(kind, count, &flags, started, || {
            let flags = flags.as_ref().map(Clone::clone).unwrap_or_default();
            (info, events, Served::Kept(flags))
        });
        flags
    }

    /// Offers a batch the serving version answered to the shadow, if one runs and
    /// wants it (a batch call, in its sample, within its share).
    fn to_shadow<'a, T>(
        &self,
        kind: CallKind,
        count: usize,
        result: &Result<T>,
        started: Instant,
        batch: impl FnOnce() -> (&'a BatchInfo, &'a [u8], Served),
    ) {
        if kind != CallKind::Batch {
            return;
        }
        let Some(shadow) = self.shadow() else {
            return;
        };
        if result.is_err() {
            shadow.serving_failed(count);
        } else if shadow.wants() {
            let (info, events, served) = batch();
            let serving_ns = started.elapsed().as_nanos() as u64;
            shadow.offer(info, events, count, served, serving_ns);
        }
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
        let started = Instant::now();
        let out = self.call(plugin, kind, count, |p| {
            let t = p.transform(info, events, count)?;
            let produced = t.counts.iter().map(|c| *c as usize).sum();
            Ok((t, produced))
        });
        self.to_shadow(kind, count, &out, started, || {
            let served = match &out {
                Ok(t) => Served::Transformed(t.events.clone(), t.counts.clone()),
                Err(_) => Served::Kept(Vec::new()),
            };
            (info, events, served)
        });
        out
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
