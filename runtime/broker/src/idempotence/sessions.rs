//! Producer sessions: Kafka's idempotent producer over HTTP. A producer numbers its
//! requests to each partition 0, 1, 2, ...; the broker accepts the next number,
//! answers a repeated one with the answer it gave, and refuses a gap.
//!
//! A session is one (topic, partition, producer id). Its requests are handled one at
//! a time (a retry of the request in flight waits for it, then gets its answer). The
//! last answer is durable, written with the records; the last
//! [`RECENT`] answers are kept in memory. A session idle longer than its timeout is
//! forgotten, and the producer starts again at 0.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;

use parking_lot::Mutex;
use serde::{Deserialize, Serialize};

use super::note::{HasTemplate, StoredAnswer};
use crate::error::{BrokerError, Result};

/// Where sessions' notes live in the log's key-value store.
pub(crate) const PREFIX: &[u8] = b"idem/p/";
/// Longest accepted producer id, in bytes.
pub const MAX_PRODUCER_ID_BYTES: usize = 128;
/// Answers kept in memory per session (Kafka keeps five batches).
pub const RECENT: usize = 5;

/// What is stored for a session: its start, the sequence and answer of its last
/// request.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct SessionNote {
    pub started_ms: i64,
    pub at_ms: i64,
    pub sequence: u64,
    /// Sequence numbers the request took (absent in notes written before Kafka
    /// producers: 1).
    #[serde(default = "one")]
    pub span: u64,
    pub answer: StoredAnswer,
}

impl HasTemplate for SessionNote {
    fn answer_mut(&mut self) -> &mut StoredAnswer {
        &mut self.answer
    }
}

fn one() -> u64 {
    1
}

/// The scope bytes of a session: topic id, partition, producer id.
pub(crate) fn scope(topic_id: u32, partition: u32, producer: &str) -> Result<Box<[u8]>> {
    if producer.is_empty()
        || producer.len() > MAX_PRODUCER_ID_BYTES
        || !producer
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b':'))
    {
        return Err(BrokerError::InvalidRequest(format!(
            "a Weir-Producer-Id is 1 to {MAX_PRODUCER_ID_BYTES} characters of A-Z a-z 0-9 - _ . :"
        )));
    }
    let mut s = Vec::with_capacity(8 + producer.len());
    s.extend_from_slice(&topic_id.to_be_bytes());
    s.extend_from_slice(&partition.to_be_bytes());
    s.extend_from_slice(producer.as_bytes());
    Ok(s.into_boxed_slice())
}

/// The storage key of a session's note: prefix, scope, session start.
pub(crate) fn note_key(scope: &[u8], started_ms: i64) -> Vec<u8> {
    super::note::storage_key(PREFIX, scope, started_ms)
}

/// A live session.
#[derive(Debug)]
pub(crate) struct Session {
    pub started_ms: i64,
    pub last_used_ms: i64,
    /// The sequence the next request must carry: the last one plus its span.
    pub next_sequence: u64,
    /// (sequence, answer), oldest first, at most [`RECENT`].
    pub recent: VecDeque<(u64, Arc<StoredAnswer>)>,
}

/// What a sequence number means for a session.
pub(crate) enum Verdict {
    /// The next request: run it.
    Next,
    /// A request already answered: its answer.
    Repeat(Arc<StoredAnswer>),
}

/// A session's slot; `None` until its first request succeeds.
pub(crate) type Slot = Option<Session>;

/// A session's slot behind the lock its requests take in turn.
type Shared = Arc<tokio::sync::Mutex<Slot>>;

impl Session {
    /// What `sequence` means now, and its place in the session's unbounded count
    /// (what [`record`](Self::record) keeps); a gap or a forgotten repeat is
    /// refused. With `wraps_at`, sequences count modulo it (Kafka's wrap to 0
    /// after `i32::MAX`): the distance from the expected one decides, half the
    /// range ahead (a gap) or behind (a repeat).
    pub(crate) fn judge(
        slot: &Slot,
        sequence: u64,
        wraps_at: Option<u64>,
        producer: &str,
        partition: u32,
    ) -> Result<(Verdict, u64)> {
        let out_of_order = |expected: u64, got: u64, why: &str| BrokerError::SequenceOutOfOrder {
            producer: producer.to_string(),
            partition,
            expected,
            got,
            why: why.to_string(),
        };
        if wraps_at.is_some_and(|m| sequence >= m) {
            return Err(BrokerError::InvalidRequest(format!(
                "sequence {sequence} is beyond the producer's sequence range"
            )));
        }
        let Some(s) = slot else {
            return if sequence == 0 {
                Ok((Verdict::Next, 0))
            } else {
                Err(out_of_order(
                    0,
                    sequence,
                    "the broker has no session for this producer on this partition (new, or idle past its timeout); a session starts at 0",
                ))
            };
        };
        let expected = s.next_sequence;
        let got = match wraps_at {
            None => sequence,
            Some(m) => {
                let d = (sequence + m - expected % m) % m;
                if d > m / 2 {
                    expected.saturating_sub(m - d)
                } else {
                    expected + d
                }
            }
        };
        if got == expected {
            return Ok((Verdict::Next, got));
        }
        if got < expected {
            if let Some((_, answer)) = s.recent.iter().find(|(q, _)| *q == got) {
                return Ok((Verdict::Repeat(answer.clone()), got));
            }
            return Err(out_of_order(
                expected,
                got,
                "a repeat of a request older than the answers the broker keeps",
            ));
        }
        Err(out_of_order(
            expected,
            got,
            "a gap: requests before it are missing",
        ))
    }

    /// Records a request's success.
    pub(crate) fn record(
        slot: &mut Slot,
        started_ms: i64,
        now_ms: i64,
        (sequence, span): (u64, u64),
        answer: Arc<StoredAnswer>,
    ) {
        let next_sequence = sequence.saturating_add(span);
        let s = slot.get_or_insert_with(|| Session {
            started_ms,
            last_used_ms: now_ms,
            next_sequence,
            recent: VecDeque::new(),
        });
        s.last_used_ms = now_ms;
        s.next_sequence = next_sequence;
        if s.recent.len() == RECENT {
            s.recent.pop_front();
        }
        s.recent.push_back((sequence, answer));
    }
}

/// Every session, each behind its own async lock (one request of a session at a
/// time).
pub(crate) struct Sessions {
    slots: Mutex<HashMap<Box<[u8]>, Shared>>,
    /// Notes of forgotten sessions, to remove in the next write.
    removals: Mutex<Vec<Vec<u8>>>,
    idle_ms: i64,
    max_sessions: usize,
}

impl Sessions {
    pub(crate) fn new(idle_ms: i64, max_sessions: usize) -> Self {
        Self {
            slots: Mutex::new(HashMap::new()),
            removals: Mutex::new(Vec::new()),
            idle_ms,
            max_sessions: max_sessions.max(1),
        }
    }

    /// Restores a session read back at start; an idle-expired one is queued for
    /// removal instead.
    pub(crate) fn restore(&self, scope: Box<[u8]>, note: SessionNote, now_ms: i64) {
        if note.at_ms <= now_ms - self.idle_ms {
            self.removals.lock().push(note_key(&scope, note.started_ms));
            return;
        }
        let mut slot = None;
        Session::record(
            &mut slot,
            note.started_ms,
            note.at_ms,
            (note.sequence, note.span),
            Arc::new(note.answer),
        );
        let mut slots = self.slots.lock();
        if let Some(old) = slots.get(&scope) {
            let old = old.try_lock().expect("no request runs during restore");
            match (&*old, &slot) {
                (Some(o), Some(n)) if o.started_ms >= n.started_ms => {
                    self.removals.lock().push(note_key(&scope, n.started_ms));
                    return;
                }
                (Some(o), _) => self.removals.lock().push(note_key(&scope, o.started_ms)),
                _ => {}
            }
        }
        slots.insert(scope, Arc::new(tokio::sync::Mutex::new(slot)));
    }

    /// The slot of `scope`, made if new. Over the bound, idle sessions are forgotten
    /// first (the least recently used).
    pub(crate) fn slot(&self, scope: &[u8], now_ms: i64) -> Shared {
        let mut slots = self.slots.lock();
        if let Some(s) = slots.get(scope) {
            return s.clone();
        }
        if slots.len() >= self.max_sessions {
            self.forget_idle(&mut slots, now_ms);
        }
        let s = Arc::new(tokio::sync::Mutex::new(None));
        slots.insert(scope.into(), s.clone());
        s
    }

    /// Forgets sessions idle past the timeout; if none is, the least recently used
    /// one not in use.
    fn forget_idle(&self, slots: &mut HashMap<Box<[u8]>, Shared>, now_ms: i64) {
        let mut removals = self.removals.lock();
        let mut lru: Option<(i64, Box<[u8]>)> = None;
        let mut forgot = false;
        slots.retain(|scope, slot| {
            let Ok(s) = slot.try_lock() else { return true };
            let Some(session) = &*s else {
                return Arc::strong_count(slot) > 1;
            };
            if session.last_used_ms <= now_ms - self.idle_ms {
                removals.push(note_key(scope, session.started_ms));
                forgot = true;
                return false;
            }
            if lru.as_ref().is_none_or(|(t, _)| session.last_used_ms < *t) {
                lru = Some((session.last_used_ms, scope.clone()));
            }
            true
        });
        if !forgot
            && let Some((_, scope)) = lru
            && let Some(slot) = slots.remove(&scope)
            && let Ok(s) = slot.try_lock()
            && let Some(session) = &*s
        {
            removals.push(note_key(&scope, session.started_ms));
        }
    }

    /// Whether a session's state is too old to keep: it is then started afresh.
    pub(crate) fn expire_if_idle(&self, scope: &[u8], slot: &mut Slot, now_ms: i64) {
        if let Some(s) = slot
            && s.last_used_ms <= now_ms - self.idle_ms
        {
            self.removals.lock().push(note_key(scope, s.started_ms));
            *slot = None;
        }
    }

    /// Notes of forgotten sessions, to remove in the next write.
    pub(crate) fn take_removals(&self) -> Vec<Vec<u8>> {
        std::mem::take(&mut self.removals.lock())
    }

    /// Sessions known now.
    pub(crate) fn len(&self) -> usize {
        self.slots.lock().len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn judged(slot: &Slot, sequence: u64, wraps_at: Option<u64>) -> Result<(bool, u64)> {
        Session::judge(slot, sequence, wraps_at, "p", 0)
            .map(|(v, at)| (matches!(v, Verdict::Repeat(_)), at))
    }

    #[test]
    fn kafka_sequences_wrap_to_zero_and_keep_counting() {
        const M: u64 = 1 << 31;
        let answer = || Arc::new(StoredAnswer::Runs(Vec::new()));
        let mut slot = None;
        Session::record(&mut slot, 0, 0, (0, 3), answer());
        assert_eq!(judged(&slot, 3, Some(M)).unwrap(), (false, 3));
        assert_eq!(judged(&slot, 0, Some(M)).unwrap(), (true, 0), "a retry");
        assert!(judged(&slot, 9, Some(M)).is_err(), "a gap");
        // Near the top of the range: the next batch starts at M - 2, takes 5 numbers
        // and the one after starts at 3 again.
        Session::record(&mut slot, 0, 0, (M - 2, 5), answer());
        assert_eq!(judged(&slot, 3, Some(M)).unwrap(), (false, M + 3));
        assert_eq!(judged(&slot, M - 2, Some(M)).unwrap(), (true, M - 2));
        assert!(judged(&slot, M - 100, Some(M)).is_err(), "older than kept");
        assert!(judged(&slot, M, Some(M)).is_err(), "out of the range");
        // Without a wrap (HTTP), numbers only grow.
        assert!(judged(&slot, 3, None).is_err());
    }
}
