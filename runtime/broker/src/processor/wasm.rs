//! A processor plugin as a step's [`Logic`]: packs the step's records the way every
//! plugin receives them, calls the plugin's exports through its [`Slot`] (so calls
//! are admitted, timed, counted and fed to the version's probation like any other),
//! and turns what it emitted into outputs.
//!
//! A step runs on one version: the one serving when it began. A newer version
//! serves from the next step, with the same state, provided it declares the same
//! `state_version`; one that does not is refused at every step until the processor
//! is reset (its state would be misread).

use std::sync::Arc;

use weir_host::packed::{FLAG_VALUE_JSON, Writer};
use weir_host::{
    CallKind, EventTime, EventWindow, Kind, OnTime, Plugin, PluginError, ProcessInfo, Slot,
};
use weir_storage::RecordView;
use weir_storage::batch::ATTR_VALUE_JSON;

use super::step::{Batch, InputEvent, Logic, LogicError, LogicResult, Output};
use super::windows::Window;

/// A processor plugin, as a step calls it.
#[derive(Debug)]
pub struct WasmLogic {
    slot: Arc<Slot>,
    /// The state layout the stored state has.
    state_version: u32,
    /// The version this step runs on.
    pinned: Option<Arc<Plugin>>,
    /// How calls are made: `Retry` while the runner retries a failed batch.
    kind: CallKind,
}

impl WasmLogic {
    /// Calls the versions `slot` serves, while they declare `state_version`.
    pub fn new(slot: Arc<Slot>, state_version: u32) -> Self {
        WasmLogic {
            slot,
            state_version,
            pinned: None,
            kind: CallKind::Batch,
        }
    }

    /// Whether the next steps retry a failed batch (their calls do not count
    /// against the plugin's health again).
    pub fn set_retrying(&mut self, retrying: bool) {
        self.kind = if retrying {
            CallKind::Retry
        } else {
            CallKind::Batch
        };
    }

    fn plugin(&self) -> LogicResult<Arc<Plugin>> {
        self.pinned
            .clone()
            .ok_or_else(|| LogicError::Blocked("called outside a step".to_string()))
    }
}

/// The version's `[processor] state_version` (1 when it declares none).
pub fn state_version_of(plugin: &Plugin) -> u32 {
    plugin
        .manifest()
        .processor
        .as_ref()
        .map_or(1, |p| p.state_version)
}

fn pack<'a>(records: impl Iterator<Item = &'a RecordView<'a>>) -> (Vec<u8>, usize) {
    let mut w = Writer::with_capacity(4096);
    let mut n = 0;
    for r in records {
        let flags = if r.attributes & ATTR_VALUE_JSON != 0 {
            FLAG_VALUE_JSON
        } else {
            0
        };
        w.push(r.timestamp_ms, flags, r.key, r.value, r.headers());
        n += 1;
    }
    (w.finish(), n)
}

fn info(batch: &Batch<'_>) -> ProcessInfo {
    ProcessInfo {
        topic: batch.topic.name().to_string(),
        partition: batch.partition,
        partitions: batch.topic.partition_count(),
        now_ms: batch.now_ms,
    }
}

fn host_window(w: Window) -> weir_host::Window {
    weir_host::Window {
        start_ms: w.start_ms,
        end_ms: w.end_ms,
    }
}

/// Runs a plugin call where blocking is allowed: WASM may run for its whole
/// deadline, which must not stall the async threads' other tasks.
fn blocking<R>(f: impl FnOnce() -> R) -> R {
    match tokio::runtime::Handle::try_current() {
        Ok(h) if h.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread => {
            tokio::task::block_in_place(f)
        }
        _ => f(),
    }
}

/// A call's error: a plugin that cannot be called blocks the processor; one that
/// failed on the batch fails the step.
fn logic_error(e: PluginError) -> LogicError {
    match e.code() {
        "plugin_unavailable"
        | "plugin_quarantined"
        | "plugin_state_unavailable"
        | "plugin_wrong_kind" => LogicError::Blocked(e.to_string()),
        _ => LogicError::Failed(e.to_string()),
    }
}

fn outputs(emitted: Vec<weir_host::Emitted>, out: &mut Vec<Output>) {
    out.extend(emitted.into_iter().map(|e| Output {
        topic: e.topic,
        key: e.key,
        value: e.value,
        value_is_json: e.json,
        headers: e.headers,
        window: e.window.map(|w| Window {
            start_ms: w.start_ms,
            end_ms: w.end_ms,
        }),
    }));
}

impl Logic for WasmLogic {
    fn begin(&mut self) -> LogicResult<()> {
        let plugin = self.slot.current_or_unavailable().map_err(logic_error)?;
        if plugin.kind() != Kind::Processor {
            return Err(LogicError::Blocked(format!(
                "version {} is a {} plugin, not a processor",
                plugin.version_tag(),
                plugin.kind().as_str()
            )));
        }
        let declared = state_version_of(&plugin);
        if declared != self.state_version {
            return Err(LogicError::Blocked(format!(
                "version {} declares state_version {declared} but the stored state has version {}: reset the processor's state to run it",
                plugin.version_tag(),
                self.state_version
            )));
        }
        self.pinned = Some(plugin);
        Ok(())
    }

    fn event_times(&mut self, events: &[RecordView<'_>]) -> LogicResult<Vec<Option<i64>>> {
        let plugin = self.plugin()?;
        let from_plugin = plugin
            .manifest()
            .processor
            .as_ref()
            .is_some_and(|p| p.event_time == EventTime::Plugin);
        if !from_plugin {
            return Ok(vec![None; events.len()]);
        }
        let (buf, n) = pack(events.iter());
        blocking(|| self.slot.event_times(&plugin, self.kind, &buf, n)).map_err(logic_error)
    }

    fn process(
        &mut self,
        batch: &Batch<'_>,
        events: &[InputEvent<'_>],
        out: &mut Vec<Output>,
    ) -> LogicResult<()> {
        let plugin = self.plugin()?;
        let (buf, _) = pack(events.iter().map(|e| &e.record));
        let times: Vec<i64> = events.iter().map(|e| e.time_ms).collect();
        let mut windows = Vec::with_capacity(events.len());
        for (i, e) in events.iter().enumerate() {
            let event = i as u32;
            let own = e.windows.iter().map(|w| (*w, false));
            for (w, merged) in own.chain(e.merged.iter().map(|w| (*w, true))) {
                windows.push(EventWindow {
                    event,
                    window: host_window(w),
                    merged,
                });
            }
        }
        let state = Arc::new(batch.keyed.clone());
        let emitted = blocking(|| {
            self.slot.process(
                &plugin,
                self.kind,
                &info(batch),
                OnTime {
                    events: &buf,
                    times: &times,
                    windows: &windows,
                },
                state,
            )
        })
        .map_err(logic_error)?;
        outputs(emitted, out);
        Ok(())
    }

    fn close(
        &mut self,
        batch: &Batch<'_>,
        closed: &[(Vec<u8>, Window)],
        out: &mut Vec<Output>,
    ) -> LogicResult<()> {
        let plugin = self.plugin()?;
        let closed: Vec<(Vec<u8>, weir_host::Window)> = closed
            .iter()
            .map(|(k, w)| (k.clone(), host_window(*w)))
            .collect();
        let state = Arc::new(batch.keyed.clone());
        let emitted = blocking(|| {
            self.slot
                .close(&plugin, self.kind, &info(batch), &closed, state)
        })
        .map_err(logic_error)?;
        outputs(emitted, out);
        Ok(())
    }

    fn fire(
        &mut self,
        batch: &Batch<'_>,
        keys: &[Vec<u8>],
        out: &mut Vec<Output>,
    ) -> LogicResult<()> {
        let plugin = self.plugin()?;
        let state = Arc::new(batch.keyed.clone());
        let emitted = blocking(|| {
            self.slot
                .fire(&plugin, self.kind, &info(batch), keys, state)
        })
        .map_err(logic_error)?;
        outputs(emitted, out);
        Ok(())
    }
}
