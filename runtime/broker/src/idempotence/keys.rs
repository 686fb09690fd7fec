//! Idempotency keys: a client names a request; the same name within the window gets
//! the first attempt's answer.
//!
//! A key is scoped to its topic (by id, so a topic deleted and created again starts
//! afresh) and to the principal that sent it. In memory each scope is a slot: in
//! flight (a second attempt waits for the first's outcome) or done (its answer is
//! returned). On disk each remembered key is a note written with the records; its
//! storage key ends with the time it was made, so removing an expired note can never
//! remove a newer one for the same scope.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;

use parking_lot::Mutex;
use serde::{Deserialize, Serialize};
use tokio::sync::watch;

use super::note::{HasTemplate, StoredAnswer};
use crate::error::{BrokerError, Result};

/// Where keys' notes live in the log's key-value store.
pub(crate) const PREFIX: &[u8] = b"idem/k/";
/// Longest accepted key, in bytes.
pub const MAX_KEY_BYTES: usize = 255;

/// What is stored for a key: when, a fingerprint of the request, the answer.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct KeyNote {
    pub at_ms: i64,
    pub fingerprint: u32,
    pub answer: StoredAnswer,
}

impl HasTemplate for KeyNote {
    fn answer_mut(&mut self) -> &mut StoredAnswer {
        &mut self.answer
    }
}

/// The scope bytes of a key: topic id, principal (length-prefixed), key.
pub(crate) fn scope(topic_id: u32, principal: &str, key: &str) -> Result<Box<[u8]>> {
    if key.is_empty()
        || key.len() > MAX_KEY_BYTES
        || !key.bytes().all(|b| b.is_ascii_graphic() || b == b' ')
    {
        return Err(BrokerError::InvalidRequest(format!(
            "an Idempotency-Key is 1 to {MAX_KEY_BYTES} printable ASCII characters"
        )));
    }
    let principal = &principal.as_bytes()[..principal.len().min(u16::MAX as usize)];
    let mut s = Vec::with_capacity(6 + principal.len() + key.len());
    s.extend_from_slice(&topic_id.to_be_bytes());
    s.extend_from_slice(&(principal.len() as u16).to_be_bytes());
    s.extend_from_slice(principal);
    s.extend_from_slice(key.as_bytes());
    Ok(s.into_boxed_slice())
}

/// The storage key of a note: prefix, scope, time made.
pub(crate) fn note_key(scope: &[u8], at_ms: i64) -> Vec<u8> {
    super::note::storage_key(PREFIX, scope, at_ms)
}

/// A remembered answer.
struct Remembered {
    at_ms: i64,
    fingerprint: u32,
    answer: Arc<StoredAnswer>,
}

enum Slot {
    /// The first attempt is running; its sender drops when it ends.
    InFlight(watch::Receiver<()>),
    Done(Remembered),
}

#[derive(Default)]
struct State {
    slots: HashMap<Box<[u8]>, Slot>,
    /// Done slots, oldest first: (time made, scope).
    order: VecDeque<(i64, Box<[u8]>)>,
    /// Notes to remove with the next idempotent append (expired or evicted).
    removals: Vec<Vec<u8>>,
    /// Keys forgotten before their window ended, to stay under the memory bound.
    evicted: u64,
}

impl State {
    /// Forgets done slots made at or before `cutoff_ms`, and the oldest ones beyond
    /// `max`; their notes are queued for removal.
    fn trim(&mut self, cutoff_ms: i64, max: usize) {
        while let Some((at, _)) = self.order.front() {
            let expired = *at <= cutoff_ms;
            if !expired && self.order.len() <= max {
                break;
            }
            let (at, scope) = self.order.pop_front().expect("checked");
            if !expired {
                self.evicted += 1;
            }
            self.removals.push(note_key(&scope, at));
            self.slots.remove(&scope);
        }
    }
}

/// Counters of the key table.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct KeyStats {
    /// Keys remembered now.
    pub remembered: usize,
    /// Keys forgotten before their window ended (memory bound).
    pub evicted: u64,
}

/// What a claim found.
pub(crate) enum Claim {
    /// No attempt is known: this one runs; the guard records its outcome.
    Mine(KeyGuard),
    /// An earlier attempt succeeded: its answer.
    Replay(Arc<StoredAnswer>),
}

/// Every key's slot.
pub(crate) struct KeyTable {
    state: Mutex<State>,
    window_ms: i64,
    max_keys: usize,
}

impl KeyTable {
    pub(crate) fn new(window_ms: i64, max_keys: usize) -> Self {
        Self {
            state: Mutex::new(State::default()),
            window_ms,
            max_keys: max_keys.max(1),
        }
    }

    /// Remembers a note read back at start (oldest first); expired ones are queued
    /// for removal.
    pub(crate) fn restore(&self, scope: Box<[u8]>, note: KeyNote, now_ms: i64) {
        let mut st = self.state.lock();
        if note.at_ms <= now_ms - self.window_ms {
            st.removals.push(note_key(&scope, note.at_ms));
            return;
        }
        // A scope noted twice (a removal lost in a crash): the newer note wins.
        if let Some(Slot::Done(old)) = st.slots.get(&scope) {
            let old_key = note_key(&scope, old.at_ms);
            st.removals.push(old_key);
            st.order.retain(|(_, s)| *s != scope);
        }
        st.order.push_back((note.at_ms, scope.clone()));
        st.slots.insert(
            scope,
            Slot::Done(Remembered {
                at_ms: note.at_ms,
                fingerprint: note.fingerprint,
                answer: Arc::new(note.answer),
            }),
        );
        let max = self.max_keys;
        st.trim(i64::MIN, max);
    }

    /// Claims `scope` for an attempt of a request with `fingerprint`. Waits while
    /// another attempt of it is in flight.
    pub(crate) async fn claim(
        self: &Arc<Self>,
        scope: Box<[u8]>,
        fingerprint: u32,
        key: &str,
    ) -> Result<Claim> {
        loop {
            let mut running = {
                let mut st = self.state.lock();
                st.trim(crate::now_ms() - self.window_ms, self.max_keys);
                match st.slots.get(&scope) {
                    Some(Slot::Done(r)) if r.fingerprint != fingerprint => {
                        return Err(BrokerError::IdempotencyKeyReused(key.to_string()));
                    }
                    Some(Slot::Done(r)) => return Ok(Claim::Replay(r.answer.clone())),
                    Some(Slot::InFlight(rx)) => rx.clone(),
                    None => {
                        let (tx, rx) = watch::channel(());
                        st.slots.insert(scope.clone(), Slot::InFlight(rx));
                        return Ok(Claim::Mine(KeyGuard {
                            table: self.clone(),
                            scope,
                            _running: tx,
                            finished: false,
                        }));
                    }
                }
            };
            // Ends when the first attempt's guard goes: then look again.
            let _ = running.changed().await;
        }
    }

    /// Notes of forgotten keys, to remove in the next write.
    pub(crate) fn take_removals(&self) -> Vec<Vec<u8>> {
        std::mem::take(&mut self.state.lock().removals)
    }

    pub(crate) fn stats(&self) -> KeyStats {
        let st = self.state.lock();
        KeyStats {
            remembered: st.order.len(),
            evicted: st.evicted,
        }
    }
}

/// An attempt's hold on its key: records the answer when it succeeds; lets the key go
/// (and the next waiting attempt run) when it fails or is dropped.
pub(crate) struct KeyGuard {
    table: Arc<KeyTable>,
    scope: Box<[u8]>,
    /// Dropped with the guard, which wakes the attempts waiting on this one.
    _running: watch::Sender<()>,
    finished: bool,
}

impl KeyGuard {
    /// The attempt succeeded and its note was stored.
    pub(crate) fn finish(mut self, at_ms: i64, fingerprint: u32, answer: Arc<StoredAnswer>) {
        let mut st = self.table.state.lock();
        st.order.push_back((at_ms, self.scope.clone()));
        st.slots.insert(
            self.scope.clone(),
            Slot::Done(Remembered {
                at_ms,
                fingerprint,
                answer,
            }),
        );
        self.finished = true;
    }
}

impl Drop for KeyGuard {
    fn drop(&mut self) {
        if !self.finished {
            self.table.state.lock().slots.remove(&self.scope);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answer() -> Arc<StoredAnswer> {
        Arc::new(StoredAnswer::Runs(vec![(0, 1, 1)]))
    }

    #[tokio::test]
    async fn keys_beyond_the_bound_are_forgotten_oldest_first_and_their_notes_removed() {
        let table = Arc::new(KeyTable::new(60_000, 2));
        let now = crate::now_ms();
        for (i, key) in ["a", "b", "c"].iter().enumerate() {
            let scope = scope(1, "p", key).unwrap();
            let Claim::Mine(guard) = table.claim(scope, 7, key).await.unwrap() else {
                panic!("a new key is claimed");
            };
            guard.finish(now + i as i64, 7, answer());
        }
        // The next claim trims: "a" goes, its note is queued for removal.
        assert!(matches!(
            table
                .claim(scope(1, "p", "c").unwrap(), 7, "c")
                .await
                .unwrap(),
            Claim::Replay(_)
        ));
        assert_eq!(
            table.stats(),
            KeyStats {
                remembered: 2,
                evicted: 1
            }
        );
        assert_eq!(
            table.take_removals(),
            vec![note_key(&scope(1, "p", "a").unwrap(), now)]
        );
        assert!(matches!(
            table
                .claim(scope(1, "p", "a").unwrap(), 7, "a")
                .await
                .unwrap(),
            Claim::Mine(_)
        ));
    }

    #[tokio::test]
    async fn a_failed_attempt_lets_the_key_go() {
        let table = Arc::new(KeyTable::new(60_000, 10));
        let s = scope(1, "p", "k").unwrap();
        let Claim::Mine(guard) = table.claim(s.clone(), 1, "k").await.unwrap() else {
            panic!("a new key is claimed");
        };
        let waiter = {
            let (table, s) = (table.clone(), s.clone());
            tokio::spawn(async move { table.claim(s, 1, "k").await })
        };
        drop(guard);
        assert!(matches!(waiter.await.unwrap().unwrap(), Claim::Mine(_)));
        assert!(matches!(table.claim(s, 2, "k").await, Ok(Claim::Mine(_))));
    }

    #[test]
    fn scopes_of_different_principals_never_collide() {
        // "ab" + key "c" against "a" + key "bc": the length prefix keeps them apart.
        assert_ne!(scope(1, "ab", "c").unwrap(), scope(1, "a", "bc").unwrap());
        assert!(scope(1, "p", "").is_err());
        assert!(scope(1, "p", "tab\there").is_err());
    }
}
