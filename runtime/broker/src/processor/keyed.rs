//! The state a processor's logic works on during a step, as one shareable handle:
//! its keyed state, the runtime's own keys beside it (watermark, open windows,
//! timers), and the timers' in-memory index.
//!
//! A handle, not a borrow, because a WASM processor's instance holds it for the
//! length of a call (the host's store data must own what it refers to). Only one
//! step uses a partition's handle at a time, so its lock is never contended.
//!
//! Timers are kept under `t/` + key in the system state (8-byte big-endian due
//! time); the index orders them by due time. Changes to the index during a step are
//! logged, so a failed step puts them back like it discards the staged state.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;

use parking_lot::{Mutex, MutexGuard};

use super::state::PartitionState;
use crate::{BrokerError, Result};

const TIMER: &[u8] = b"t/";

/// The state of one processor on one input partition.
#[derive(Debug, Clone)]
pub struct Keyed(Arc<Mutex<Scope>>);

/// What a [`Keyed`] handle guards.
#[derive(Debug)]
pub struct Scope {
    /// The plugin's keys.
    pub state: PartitionState,
    /// The runtime's keys.
    pub system: PartitionState,
    timers: Timers,
}

#[derive(Debug, Default)]
struct Timers {
    due: BTreeSet<(i64, Vec<u8>)>,
    by_key: HashMap<Vec<u8>, i64>,
    /// This step's changes: each key with its due time before the change.
    undo: Vec<(Vec<u8>, Option<i64>)>,
}

impl Timers {
    fn set(&mut self, key: &[u8], at: Option<i64>) -> Option<i64> {
        let old = match at {
            Some(at) => self.by_key.insert(key.to_vec(), at),
            None => self.by_key.remove(key),
        };
        if let Some(old) = old {
            self.due.remove(&(old, key.to_vec()));
        }
        if let Some(at) = at {
            self.due.insert((at, key.to_vec()));
        }
        old
    }
}

fn timer_key(key: &[u8]) -> Vec<u8> {
    [TIMER, key].concat()
}

impl Keyed {
    /// A handle over `state` and `system`, with the timers stored in `system`.
    pub fn restore(state: PartitionState, mut system: PartitionState) -> Result<Keyed> {
        let mut timers = Timers::default();
        for (k, v) in system.scan(TIMER, None, usize::MAX)? {
            let at = v.try_into().map(i64::from_be_bytes).map_err(|_| {
                BrokerError::Internal("a processor's timer is damaged in the store".into())
            })?;
            timers.set(&k[TIMER.len()..], Some(at));
        }
        Ok(Keyed(Arc::new(Mutex::new(Scope {
            state,
            system,
            timers,
        }))))
    }

    /// Locks the scope (uncontended: one step at a time uses it).
    pub fn lock(&self) -> MutexGuard<'_, Scope> {
        self.0.lock()
    }

    /// The value of `key` in the plugin's state.
    pub fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>> {
        self.lock().state.get(key)
    }

    /// Sets `key` in this step.
    pub fn put(&self, key: &[u8], value: &[u8]) {
        self.lock().state.put(key, value);
    }

    /// Deletes `key` in this step.
    pub fn delete(&self, key: &[u8]) {
        self.lock().state.delete(key);
    }

    /// See [`PartitionState::scan`].
    pub fn scan(
        &self,
        prefix: &[u8],
        after: Option<&[u8]>,
        limit: usize,
    ) -> Result<Vec<(Vec<u8>, Vec<u8>)>> {
        self.lock().state.scan(prefix, after, limit)
    }

    /// Fires `key` once the clock reaches `at_ms`; replaces its earlier timer.
    pub fn set_timer(&self, key: &[u8], at_ms: i64) {
        let mut s = self.lock();
        let old = s.timers.set(key, Some(at_ms));
        s.timers.undo.push((key.to_vec(), old));
        s.system.put(&timer_key(key), &at_ms.to_be_bytes());
    }

    /// Removes `key`'s timer.
    pub fn cancel_timer(&self, key: &[u8]) {
        let mut s = self.lock();
        if let Some(old) = s.timers.set(key, None) {
            s.timers.undo.push((key.to_vec(), Some(old)));
            s.system.delete(&timer_key(key));
        }
    }

    /// When the earliest timer is due.
    pub fn next_timer(&self) -> Option<i64> {
        self.lock().timers.due.first().map(|(at, _)| *at)
    }

    /// How many timers are set.
    pub fn timers(&self) -> usize {
        self.lock().timers.by_key.len()
    }

    /// Removes the timers due at `now_ms` (earliest first), up to `max`: their keys.
    pub fn take_due(&self, now_ms: i64, max: usize) -> Vec<Vec<u8>> {
        let mut s = self.lock();
        let mut keys = Vec::new();
        while keys.len() < max {
            let Some((at, key)) = s
                .timers
                .due
                .first()
                .cloned()
                .filter(|(at, _)| *at <= now_ms)
            else {
                break;
            };
            s.timers.set(&key, None);
            s.timers.undo.push((key.clone(), Some(at)));
            s.system.delete(&timer_key(&key));
            keys.push(key);
        }
        keys
    }

    /// The step's append succeeded: its writes are the committed state.
    pub fn kept(&self) {
        let mut s = self.lock();
        s.state.kept();
        s.system.kept();
        s.timers.undo.clear();
    }

    /// The step failed: its writes and timer changes never happened.
    pub fn discard(&self) {
        let mut s = self.lock();
        s.state.discard();
        s.system.discard();
        while let Some((key, before)) = s.timers.undo.pop() {
            s.timers.set(&key, before);
        }
    }
}

impl weir_host::KeyedState for Keyed {
    fn get(&self, key: &[u8]) -> std::result::Result<Option<Vec<u8>>, String> {
        Keyed::get(self, key).map_err(|e| e.to_string())
    }

    fn put(&self, key: &[u8], value: &[u8]) {
        Keyed::put(self, key, value);
    }

    fn delete(&self, key: &[u8]) {
        Keyed::delete(self, key);
    }

    fn scan(
        &self,
        prefix: &[u8],
        after: Option<&[u8]>,
        limit: usize,
    ) -> std::result::Result<Vec<(Vec<u8>, Vec<u8>)>, String> {
        Keyed::scan(self, prefix, after, limit).map_err(|e| e.to_string())
    }

    fn set_timer(&self, key: &[u8], at_ms: i64) {
        Keyed::set_timer(self, key, at_ms);
    }

    fn cancel_timer(&self, key: &[u8]) {
        Keyed::cancel_timer(self, key);
    }
}
