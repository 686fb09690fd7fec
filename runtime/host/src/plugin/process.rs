//! A processor's calls: `event-times`, `process`, `close-windows` and `fire-timers`. Each runs with
//! the partition's keyed state set on the instance for the length of the call, and
//! checks what the plugin answered: a time per event, outputs only to the declared
//! topics, and no failed state read behind an answer.

use std::sync::Arc;

use wasmtime::Store;

use crate::bindings::{processor, types};
use crate::error::{PluginError, Result};
use crate::state::KeyedState;

use super::call_types::{Emitted, OnTime, ProcessInfo, Window};
use super::imports::Keyed;
use super::{Bindings, Ctx, Live, Plugin};

type Guest = processor::Processor;

impl Plugin {
    /// Each event's time as the plugin reads it from the value (`None`: the
    /// record's timestamp).
    pub fn event_times(&self, events: &[u8], count: usize) -> Result<Vec<Option<i64>>> {
        let times = self.with_instance(|live| match &live.bindings {
            Bindings::Processor(b) => self.guest(b.call_event_times(&mut live.store, events)),
            _ => Err(self.wrong_kind("processor")),
        })?;
        if times.len() != count {
            return Err(self.invalid(format!("{} event times for {count} events", times.len())));
        }
        Ok(times)
    }

    /// Hands a processor on-time events with their times and windows.
    pub fn process(
        &self,
        info: &ProcessInfo,
        batch: OnTime<'_>,
        state: Arc<dyn KeyedState>,
    ) -> Result<Vec<Emitted>> {
        let OnTime {
            events,
            times,
            windows,
        } = batch;
        let windows: Vec<types::EventWindow> = windows
            .iter()
            .map(|w| types::EventWindow {
                event: w.event,
                window: wit_window(w.window),
                merged: w.merged,
            })
            .collect();
        self.processor_call(state, |b, store| {
            b.call_process(store, &wit_info(info), events, times, &windows)
        })
    }

    /// Tells a processor which windows closed, by key.
    pub fn close(
        &self,
        info: &ProcessInfo,
        closed: &[(Vec<u8>, Window)],
        state: Arc<dyn KeyedState>,
    ) -> Result<Vec<Emitted>> {
        let closed: Vec<types::ClosedWindow> = closed
            .iter()
            .map(|(key, w)| types::ClosedWindow {
                key: key.clone(),
                window: wit_window(*w),
            })
            .collect();
        self.processor_call(state, |b, store| {
            b.call_close_windows(store, &wit_info(info), &closed)
        })
    }

    /// Tells a processor which of its timers are due.
    pub fn fire(
        &self,
        info: &ProcessInfo,
        keys: &[Vec<u8>],
        state: Arc<dyn KeyedState>,
    ) -> Result<Vec<Emitted>> {
        self.processor_call(state, |b, store| {
            b.call_fire_timers(store, &wit_info(info), keys)
        })
    }

    /// Runs one call with `state` on the instance, then checks its outputs.
    fn processor_call(
        &self,
        state: Arc<dyn KeyedState>,
        call: impl FnOnce(
            &Guest,
            &mut Store<Ctx>,
        )
            -> wasmtime::Result<std::result::Result<Vec<types::Emitted>, types::Error>>
        + Send,
    ) -> Result<Vec<Emitted>> {
        let emitted = self.with_instance(|live| {
            let Live { store, bindings } = live;
            let Bindings::Processor(b) = bindings else {
                return Err(self.wrong_kind("processor"));
            };
            store.data_mut().keyed = Some(Keyed { state, error: None });
            let r = call(b, store);
            let keyed = store.data_mut().keyed.take();
            if let Some(reason) = keyed.and_then(|k| k.error) {
                return Err(PluginError::StateUnavailable {
                    plugin: self.name.to_string(),
                    reason,
                });
            }
            self.guest(r)
        })?;
        let declared = self
            .manifest
            .processor
            .as_ref()
            .map_or(&[][..], |p| &p.outputs[..]);
        if let Some(e) = emitted.iter().find(|e| !declared.contains(&e.topic)) {
            return Err(self.invalid(format!(
                "an output to '{}', which [processor] outputs does not declare",
                e.topic
            )));
        }
        Ok(emitted
            .into_iter()
            .map(|e| Emitted {
                topic: e.topic,
                key: e.key,
                value: e.value,
                json: e.json,
                headers: e.headers,
                window: e.window.map(|w| Window {
                    start_ms: w.start_ms,
                    end_ms: w.end_ms,
                }),
            })
            .collect())
    }
}

fn wit_info(info: &ProcessInfo) -> types::ProcessInfo {
    types::ProcessInfo {
        topic: info.topic.clone(),
        partition: info.partition,
        partitions: info.partitions,
        now_ms: info.now_ms,
    }
}

fn wit_window(w: Window) -> types::Window {
    types::Window {
        start_ms: w.start_ms,
        end_ms: w.end_ms,
    }
}
