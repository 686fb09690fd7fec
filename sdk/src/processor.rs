//! Processors: plugins that consume topics on their own, keep keyed state, group
//! events in event-time windows, set timers, and emit records. The broker stores a
//! batch's outputs, state changes and consumed offsets in one atomic write, so a
//! crash never loses or repeats an effect of yours.
//!
//! ```no_run
//! use weir_sdk::processor::{self, Context, Input, Processor, Window};
//! use weir_sdk::Result;
//!
//! /// Counts events per key and window; emits each window's count when it closes.
//! struct Count;
//!
//! impl Processor for Count {
//!     type Config = serde_json::Value;
//!     fn init(_: serde_json::Value) -> std::result::Result<Self, String> {
//!         Ok(Count)
//!     }
//!     fn process(&mut self, input: &Input<'_>, _: &mut Context) -> Result<()> {
//!         for w in input.windows {
//!             let key = w.state_key(input.event.key.unwrap_or_default());
//!             processor::state::add(&key, 1);
//!         }
//!         Ok(())
//!     }
//!     fn close(&mut self, key: &[u8], w: Window, ctx: &mut Context) -> Result<()> {
//!         let n = processor::state::take(&w.state_key(key));
//!         ctx.emit_result("counts", key, n.to_string().as_bytes(), w);
//!         Ok(())
//!     }
//! }
//!
//! weir_sdk::export_processor!(Count);
//! ```

use crate::guest::{Error, Result};
use crate::packed::Event;

/// An event-time window, `[start_ms, end_ms)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Window {
    /// First millisecond in it.
    pub start_ms: i64,
    /// First millisecond after it.
    pub end_ms: i64,
}

impl Window {
    /// A state key for `key` in this window: the window's bounds, then `key`, so
    /// one key's windows are kept apart.
    pub fn state_key(&self, key: &[u8]) -> Vec<u8> {
        let mut k = Vec::with_capacity(16 + key.len());
        k.extend_from_slice(&self.start_ms.to_be_bytes());
        k.extend_from_slice(&self.end_ms.to_be_bytes());
        k.extend_from_slice(key);
        k
    }
}

/// What the broker says about a batch: one partition of one input topic.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ProcessInfo {
    /// Input topic.
    pub topic: String,
    /// Input partition.
    pub partition: u32,
    /// That topic's partition count.
    pub partitions: u32,
    /// The broker's clock, ms since the Unix epoch (a guest has no clock).
    pub now_ms: i64,
}

/// An on-time event with its time and the windows it counts in.
#[derive(Debug)]
pub struct Input<'a> {
    /// The event.
    pub event: &'a Event<'a>,
    /// Its event time (ms).
    pub time_ms: i64,
    /// The windows it counts in (none when the processor has no windows).
    pub windows: &'a [Window],
    /// Session windows of its key the event joined into its one window: move their
    /// state into it.
    pub merged: &'a [Window],
}

/// A record to emit.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Emit {
    /// One of the manifest's `[processor] outputs`.
    pub topic: String,
    /// Key.
    pub key: Option<Vec<u8>>,
    /// Value.
    pub value: Option<Vec<u8>>,
    /// The value is JSON text (fetches show it as JSON).
    pub json: bool,
    /// Headers.
    pub headers: Vec<(String, Vec<u8>)>,
    /// The window whose result it is (stamped as `weir-window-start`/`-end`).
    pub window: Option<Window>,
}

impl Emit {
    /// A record for `topic` with a JSON `value`.
    pub fn json(topic: &str, value: impl Into<Vec<u8>>) -> Emit {
        Emit {
            topic: topic.into(),
            value: Some(value.into()),
            json: true,
            ..Emit::default()
        }
    }

    /// A record for `topic` with a `value` that is not JSON.
    pub fn bytes(topic: &str, value: impl Into<Vec<u8>>) -> Emit {
        Emit {
            topic: topic.into(),
            value: Some(value.into()),
            ..Emit::default()
        }
    }

    /// With `key`.
    pub fn key(mut self, key: &[u8]) -> Emit {
        self.key = Some(key.to_vec());
        self
    }

    /// As the result of `window`.
    pub fn window(mut self, window: Window) -> Emit {
        self.window = Some(window);
        self
    }

    /// With a header.
    pub fn header(mut self, name: &str, value: &[u8]) -> Emit {
        self.headers.push((name.into(), value.to_vec()));
        self
    }
}

/// What a processor's calls see and emit into.
#[derive(Debug, Default)]
pub struct Context {
    info: ProcessInfo,
    out: Vec<Emit>,
}

impl Context {
    /// A context for `info` (the glue and tests make these).
    pub fn new(info: ProcessInfo) -> Self {
        Context {
            info,
            out: Vec::new(),
        }
    }

    /// The batch's input partition and the broker's clock.
    pub fn info(&self) -> &ProcessInfo {
        &self.info
    }

    /// Emits a record.
    pub fn emit(&mut self, topic: &str, key: Option<&[u8]>, value: Option<&[u8]>) {
        self.push(Emit {
            topic: topic.into(),
            key: key.map(<[u8]>::to_vec),
            value: value.map(<[u8]>::to_vec),
            ..Emit::default()
        });
    }

    /// Emits the result of `window` for `key`.
    pub fn emit_result(&mut self, topic: &str, key: &[u8], value: &[u8], window: Window) {
        self.push(Emit {
            topic: topic.into(),
            key: Some(key.to_vec()),
            value: Some(value.to_vec()),
            window: Some(window),
            ..Emit::default()
        });
    }

    /// Emits a record built in full.
    pub fn push(&mut self, emit: Emit) {
        self.out.push(emit);
    }

    /// What was emitted so far.
    pub fn emitted(&self) -> &[Emit] {
        &self.out
    }

    /// Takes what was emitted.
    pub fn take(self) -> Vec<Emit> {
        self.out
    }
}

/// A stream processor (the `processor` world).
pub trait Processor: Sized + 'static {
    /// The plugin's `[config]`, deserialised from JSON.
    type Config: serde::de::DeserializeOwned;
    /// Builds the processor; an error rejects it at load.
    fn init(config: Self::Config) -> std::result::Result<Self, String>;
    /// The event's time, read from its value; `None` keeps the record's timestamp.
    /// Called only when the manifest says `event_time = "plugin"`.
    fn event_time(&self, _event: &Event<'_>) -> Result<Option<i64>> {
        Ok(None)
    }
    /// Handles one on-time event.
    fn process(&mut self, input: &Input<'_>, ctx: &mut Context) -> Result<()>;
    /// `window` of `key` closed: emit its result (once) and clear its state.
    fn close(&mut self, _key: &[u8], _window: Window, _ctx: &mut Context) -> Result<()> {
        Ok(())
    }
    /// `key`'s timer is due.
    fn fire(&mut self, _key: &[u8], _ctx: &mut Context) -> Result<()> {
        Ok(())
    }
}

/// The keyed state of the input partition being processed (in memory when the
/// processor runs natively under [`testing`]). Writes are visible at once and
/// stored with the batch.
pub mod state {
    #[cfg(not(target_arch = "wasm32"))]
    use std::{cell::RefCell, collections::BTreeMap};

    #[cfg(target_arch = "wasm32")]
    use crate::guest::bindings::processor::weir::plugin::keyed_state as host;

    #[cfg(not(target_arch = "wasm32"))]
    thread_local! {
        static NATIVE: RefCell<BTreeMap<Vec<u8>, Vec<u8>>> = RefCell::default();
        pub(super) static TIMERS: RefCell<BTreeMap<Vec<u8>, i64>> = RefCell::default();
    }

    /// The value under `key`.
    pub fn get(key: &[u8]) -> Option<Vec<u8>> {
        #[cfg(target_arch = "wasm32")]
        return host::get(key);
        #[cfg(not(target_arch = "wasm32"))]
        NATIVE.with(|m| m.borrow().get(key).cloned())
    }

    /// Stores `value` under `key`.
    pub fn put(key: &[u8], value: &[u8]) {
        #[cfg(target_arch = "wasm32")]
        host::put(key, value);
        #[cfg(not(target_arch = "wasm32"))]
        NATIVE.with(|m| m.borrow_mut().insert(key.to_vec(), value.to_vec()));
    }

    /// Removes `key`.
    pub fn delete(key: &[u8]) {
        #[cfg(target_arch = "wasm32")]
        host::remove(key);
        #[cfg(not(target_arch = "wasm32"))]
        NATIVE.with(|m| m.borrow_mut().remove(key));
    }

    /// Up to `limit` entries whose keys start with `prefix` and sort after `after`,
    /// in key order.
    pub fn scan(prefix: &[u8], after: Option<&[u8]>, limit: u32) -> Vec<(Vec<u8>, Vec<u8>)> {
        #[cfg(target_arch = "wasm32")]
        return host::scan(prefix, after, limit);
        #[cfg(not(target_arch = "wasm32"))]
        NATIVE.with(|m| {
            m.borrow()
                .range(prefix.to_vec()..)
                .take_while(|(k, _)| k.starts_with(prefix))
                .filter(|(k, _)| after.is_none_or(|a| k.as_slice() > a))
                .take(limit as usize)
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect()
        })
    }

    /// The counter under `key` (an 8-byte big-endian number; 0 when absent).
    pub fn counter(key: &[u8]) -> u64 {
        get(key)
            .and_then(|v| v.try_into().ok())
            .map_or(0, u64::from_be_bytes)
    }

    /// Adds `n` to the counter under `key`; its new value.
    pub fn add(key: &[u8], n: u64) -> u64 {
        let v = counter(key).saturating_add(n);
        put(key, &v.to_be_bytes());
        v
    }

    /// The counter under `key`, deleting it.
    pub fn take(key: &[u8]) -> u64 {
        let v = counter(key);
        delete(key);
        v
    }

    /// Calls the processor's `fire` with `key` once the broker's clock reaches
    /// `at_ms`; setting it again moves it.
    pub fn set_timer(key: &[u8], at_ms: i64) {
        #[cfg(target_arch = "wasm32")]
        host::set_timer(key, at_ms);
        #[cfg(not(target_arch = "wasm32"))]
        TIMERS.with(|t| t.borrow_mut().insert(key.to_vec(), at_ms));
    }

    /// Removes `key`'s timer.
    pub fn cancel_timer(key: &[u8]) {
        #[cfg(target_arch = "wasm32")]
        host::cancel_timer(key);
        #[cfg(not(target_arch = "wasm32"))]
        TIMERS.with(|t| t.borrow_mut().remove(key));
    }
}

/// Glue between the generated bindings and the trait. Not part of the API.
#[doc(hidden)]
pub mod glue {
    use super::*;

    /// Each packed event's time.
    pub fn event_times<P: Processor>(p: &P, buf: &[u8]) -> Result<Vec<Option<i64>>> {
        crate::guest::glue::events(buf)?
            .iter()
            .map(|e| p.event_time(e))
            .collect()
    }

    /// Runs `process` over a packed batch with its times and windows
    /// (`(event, window, merged)`, grouped by event in order).
    pub fn process<P: Processor>(
        p: &mut P,
        info: ProcessInfo,
        buf: &[u8],
        times: &[i64],
        windows: &[(u32, Window, bool)],
    ) -> Result<Vec<Emit>> {
        let events = crate::guest::glue::events(buf)?;
        if times.len() != events.len() {
            return Err(Error::Failed(format!(
                "{} times for {} events",
                times.len(),
                events.len()
            )));
        }
        let mut ctx = Context::new(info);
        let mut rest = windows;
        let (mut own, mut merged) = (Vec::new(), Vec::new());
        for (i, (event, time_ms)) in events.iter().zip(times).enumerate() {
            own.clear();
            merged.clear();
            while let Some(((e, w, m), tail)) = rest.split_first() {
                if *e as usize != i {
                    break;
                }
                if *m { &mut merged } else { &mut own }.push(*w);
                rest = tail;
            }
            let input = Input {
                event,
                time_ms: *time_ms,
                windows: &own,
                merged: &merged,
            };
            p.process(&input, &mut ctx)?;
        }
        Ok(ctx.take())
    }

    /// Runs `close` for each closed window.
    pub fn close<P: Processor>(
        p: &mut P,
        info: ProcessInfo,
        closed: &[(Vec<u8>, Window)],
    ) -> Result<Vec<Emit>> {
        let mut ctx = Context::new(info);
        for (key, w) in closed {
            p.close(key, *w, &mut ctx)?;
        }
        Ok(ctx.take())
    }

    /// Runs `fire` for each due timer.
    pub fn fire<P: Processor>(p: &mut P, info: ProcessInfo, keys: &[Vec<u8>]) -> Result<Vec<Emit>> {
        let mut ctx = Context::new(info);
        for key in keys {
            p.fire(key, &mut ctx)?;
        }
        Ok(ctx.take())
    }
}

/// Exports a [`Processor`] as the plugin's `processor` world.
#[macro_export]
macro_rules! export_processor {
    ($t:ty) => {
        const _: () = {
            use $crate::bindings::processor::weir::plugin::types as __types;
            use $crate::processor as __p;
            thread_local! {
                static __WEIR_SLOT: $crate::glue::Slot<$t> = const { $crate::glue::Slot::new() };
            }
            fn __info(i: __types::ProcessInfo) -> __p::ProcessInfo {
                __p::ProcessInfo { topic: i.topic, partition: i.partition, partitions: i.partitions, now_ms: i.now_ms }
            }
            fn __window(w: __types::Window) -> __p::Window {
                __p::Window { start_ms: w.start_ms, end_ms: w.end_ms }
            }
            fn __emitted(r: $crate::Result<Vec<__p::Emit>>) -> Result<Vec<__types::Emitted>, __types::Error> {
                r.map(|list| {
                    list.into_iter()
                        .map(|e| __types::Emitted {
                            topic: e.topic,
                            key: e.key,
                            value: e.value,
                            json: e.json,
                            headers: e.headers,
                            window: e.window.map(|w| __types::Window { start_ms: w.start_ms, end_ms: w.end_ms }),
                        })
                        .collect()
                })
                .map_err(|e| $crate::glue::to_wit(e, __types::Error::BadInput, __types::Error::Failed))
            }
            #[allow(dead_code)]
            struct __WeirProcessor;
            impl $crate::bindings::processor::Guest for __WeirProcessor {
                fn init(config: String) -> Result<(), String> {
                    let p = $crate::glue::init(&config, <$t as __p::Processor>::init)?;
                    __WEIR_SLOT.with(|s| s.set(p));
                    Ok(())
                }
                fn event_times(events: Vec<u8>) -> Result<Vec<Option<i64>>, __types::Error> {
                    __WEIR_SLOT
                        .with(|s| s.with(|p| __p::glue::event_times(p, &events)))
                        .map_err(|e| $crate::glue::to_wit(e, __types::Error::BadInput, __types::Error::Failed))
                }
                fn process(
                    info: __types::ProcessInfo,
                    events: Vec<u8>,
                    times: Vec<i64>,
                    windows: Vec<__types::EventWindow>,
                ) -> Result<Vec<__types::Emitted>, __types::Error> {
                    let windows: Vec<(u32, __p::Window, bool)> =
                        windows.into_iter().map(|w| (w.event, __window(w.window), w.merged)).collect();
                    __emitted(__WEIR_SLOT.with(|s| {
                        s.with_mut(|p| __p::glue::process(p, __info(info), &events, &times, &windows))
                    }))
                }
                fn close_windows(
                    info: __types::ProcessInfo,
                    windows: Vec<__types::ClosedWindow>,
                ) -> Result<Vec<__types::Emitted>, __types::Error> {
                    let closed: Vec<(Vec<u8>, __p::Window)> =
                        windows.into_iter().map(|c| (c.key, __window(c.window))).collect();
                    __emitted(__WEIR_SLOT.with(|s| s.with_mut(|p| __p::glue::close(p, __info(info), &closed))))
                }
                fn fire_timers(info: __types::ProcessInfo, keys: Vec<Vec<u8>>) -> Result<Vec<__types::Emitted>, __types::Error> {
                    __emitted(__WEIR_SLOT.with(|s| s.with_mut(|p| __p::glue::fire(p, __info(info), &keys))))
                }
            }
            // Exported only in wasm, like the connectors' worlds.
            #[cfg(target_arch = "wasm32")]
            $crate::bindings::processor::__export_processor_world!(__WeirProcessor with_types_in $crate::bindings::processor);
        };
    };
}

/// Runs processors natively for unit tests (state and timers in memory, per thread).
pub mod testing {
    use super::*;
    use crate::guest::testing::{TestEvent, pack};

    /// Initialises processor `P` with `config`.
    pub fn processor<P: Processor>(config: serde_json::Value) -> std::result::Result<P, String> {
        crate::guest::glue::init(&config.to_string(), P::init)
    }

    /// Hands `p` events, each with its time and windows, as one batch of
    /// partition 0 of `topic`.
    pub fn process<P: Processor>(
        p: &mut P,
        topic: &str,
        events: &[(TestEvent, i64, Vec<Window>)],
    ) -> std::result::Result<Vec<Emit>, String> {
        let buf = pack(&events.iter().map(|(e, _, _)| e.clone()).collect::<Vec<_>>());
        let times: Vec<i64> = events.iter().map(|(_, t, _)| *t).collect();
        let windows: Vec<(u32, Window, bool)> = events
            .iter()
            .enumerate()
            .flat_map(|(i, (_, _, ws))| ws.iter().map(move |w| (i as u32, *w, false)))
            .collect();
        glue::process(p, info(topic), &buf, &times, &windows).map_err(|e| e.to_string())
    }

    /// Closes `windows` (key, window).
    pub fn close<P: Processor>(
        p: &mut P,
        topic: &str,
        windows: &[(Vec<u8>, Window)],
    ) -> std::result::Result<Vec<Emit>, String> {
        glue::close(p, info(topic), windows).map_err(|e| e.to_string())
    }

    /// The timers set, by key.
    pub fn timers() -> Vec<(Vec<u8>, i64)> {
        #[cfg(not(target_arch = "wasm32"))]
        return state::TIMERS.with(|t| t.borrow().iter().map(|(k, v)| (k.clone(), *v)).collect());
        #[cfg(target_arch = "wasm32")]
        Vec::new()
    }

    fn info(topic: &str) -> ProcessInfo {
        ProcessInfo {
            topic: topic.into(),
            partitions: 1,
            ..ProcessInfo::default()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::guest::testing::TestEvent;

    struct Count;

    impl Processor for Count {
        type Config = serde_json::Value;
        fn init(_: serde_json::Value) -> std::result::Result<Self, String> {
            Ok(Count)
        }
        fn process(&mut self, input: &Input<'_>, _: &mut Context) -> Result<()> {
            for w in input.windows {
                state::add(&w.state_key(input.event.key.unwrap_or_default()), 1);
            }
            Ok(())
        }
        fn close(&mut self, key: &[u8], w: Window, ctx: &mut Context) -> Result<()> {
            let n = state::take(&w.state_key(key));
            ctx.emit_result("counts", key, n.to_string().as_bytes(), w);
            Ok(())
        }
    }

    #[test]
    fn a_count_runs_natively() {
        let mut p: Count = testing::processor(serde_json::json!({})).unwrap();
        let w = Window {
            start_ms: 0,
            end_ms: 10,
        };
        let e = TestEvent::default().key("a");
        let out = testing::process(&mut p, "in", &[(e.clone(), 1, vec![w]), (e, 2, vec![w])]);
        assert_eq!(out.unwrap(), vec![]);
        let out = testing::close(&mut p, "in", &[(b"a".to_vec(), w)]).unwrap();
        assert_eq!(out[0].value.as_deref(), Some(&b"2"[..]));
        assert_eq!(out[0].window, Some(w));
        assert_eq!(state::counter(&w.state_key(b"a")), 0);
    }
}
