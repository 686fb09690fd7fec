//! The state a processor's logic works on, as one shareable handle per partition
//! number: its keyed state, its timers, and the timers' in-memory index. The runs of
//! the processor's inputs on that partition number share it (stepped one after the
//! other by one task), so a join meets both sides' keys.
//!
//! A handle, not a borrow, because a WASM processor's instance holds it for the
//! length of a call (the host's store data must own what it refers to). Only one
//! step uses a handle at a time, so its lock is never contended.
//!
//! Timers are kept under `t/` + key in their own state (8-byte big-endian due time);
//! the index orders them by due time. Changes to the index during a step are
//! logged, so a failed step puts them back like it discards the staged state.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;

use parking_lot::{Mutex, MutexGuard};

use weir_storage::{KvOp, Log};

use super::state::PartitionState;
use crate::{BrokerError, Result};

const TIMER: &[u8] = b"t/";

/// Most bytes of state writes one step may make (keys and values): a plugin that
/// writes more fails the step (and its batch is then processed record by record),
/// rather than grow the broker's memory without bound.
pub const MAX_STAGED_BYTES: usize = 64 << 20;

/// The state of one processor on one partition number.
#[derive(Debug, Clone)]
pub struct Keyed(Arc<Mutex<Scope>>);

/// What a [`Keyed`] handle guards.
#[derive(Debug)]
struct Scope {
    /// The plugin's keys.
    state: PartitionState,
    /// The timers' keys.
    stored_timers: PartitionState,
    timers: Timers,
    /// Bytes written this step, and whether they passed [`MAX_STAGED_BYTES`] (then
    /// further writes are dropped and the step fails).
    staged_bytes: usize,
    overflowed: bool,
}

impl Scope {
    /// Counts a write of `bytes`; `false` when the step's budget is spent.
    fn budget(&mut self, bytes: usize) -> bool {
        self.staged_bytes += bytes;
        if self.staged_bytes > MAX_STAGED_BYTES {
            self.overflowed = true;
        }
        !self.overflowed
    }
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
    /// Processor `processor`'s state and timers on `partition`, as committed.
    pub fn restore(log: Arc<dyn Log>, processor: &str, partition: u32) -> Result<Keyed> {
        let state = PartitionState::new(log.clone(), processor, partition);
        let mut stored_timers = PartitionState::timers(log, processor, partition);
        let mut timers = Timers::default();
        for (k, v) in stored_timers.scan(TIMER, None, usize::MAX)? {
            let at = v.try_into().map(i64::from_be_bytes).map_err(|_| {
                BrokerError::Internal("a processor's timer is damaged in the store".into())
            })?;
            timers.set(&k[TIMER.len()..], Some(at));
        }
        Ok(Keyed(Arc::new(Mutex::new(Scope {
            state,
            stored_timers,
            timers,
            staged_bytes: 0,
            overflowed: false,
        }))))
    }

    /// Locks the scope (uncontended: one step at a time uses it).
    fn lock(&self) -> MutexGuard<'_, Scope> {
        self.0.lock()
    }

    /// This step's writes to the state and the timers, as key-value writes for its
    /// append (see [`PartitionState::staged_ops`]).
    pub fn staged_ops(&self) -> Vec<KvOp> {
        let mut s = self.lock();
        let mut ops = s.state.staged_ops();
        ops.extend(s.stored_timers.staged_ops());
        ops
    }

    /// The value of `key` in the plugin's state.
    pub fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>> {
        self.lock().state.get(key)
    }

    /// Sets `key` in this step.
    pub fn put(&self, key: &[u8], value: &[u8]) {
        let mut s = self.lock();
        if s.budget(key.len() + value.len()) {
            s.state.put(key, value);
        }
    }

    /// Whether this step wrote more than [`MAX_STAGED_BYTES`] (its writes are
    /// incomplete: the step must fail).
    pub fn overflowed(&self) -> bool {
        self.lock().overflowed
    }

    /// Deletes `key` in this step.
    pub fn delete(&self, key: &[u8]) {
        let mut s = self.lock();
        if s.budget(key.len()) {
            s.state.delete(key);
        }
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
        if !s.budget(key.len() + 8) {
            return;
        }
        let old = s.timers.set(key, Some(at_ms));
        s.timers.undo.push((key.to_vec(), old));
        s.stored_timers.put(&timer_key(key), &at_ms.to_be_bytes());
    }

    /// Removes `key`'s timer.
    pub fn cancel_timer(&self, key: &[u8]) {
        let mut s = self.lock();
        if let Some(old) = s.timers.set(key, None) {
            s.timers.undo.push((key.to_vec(), Some(old)));
            s.stored_timers.delete(&timer_key(key));
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
            s.stored_timers.delete(&timer_key(&key));
            keys.push(key);
        }
        keys
    }

    /// The step's append succeeded: its writes are the committed state.
    pub fn kept(&self) {
        let mut s = self.lock();
        s.state.kept();
        s.stored_timers.kept();
        s.timers.undo.clear();
        (s.staged_bytes, s.overflowed) = (0, false);
    }

    /// The step failed: its writes and timer changes never happened.
    pub fn discard(&self) {
        let mut s = self.lock();
        s.state.discard();
        s.stored_timers.discard();
        (s.staged_bytes, s.overflowed) = (0, false);
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
    ) -> std::result::Result<weir_host::state::Entries, String> {
        Keyed::scan(self, prefix, after, limit).map_err(|e| e.to_string())
    }

    fn set_timer(&self, key: &[u8], at_ms: i64) {
        Keyed::set_timer(self, key, at_ms);
    }

    fn cancel_timer(&self, key: &[u8]) {
        Keyed::cancel_timer(self, key);
    }
}
