//! Event-time windows: which windows an event belongs to, when a window closes, and
//! which events come too late.
//!
//! Time is the record's timestamp (or a time the processor extracts), in ms. A
//! partition's **watermark** is the largest event time seen on it: events arrive
//! roughly in order per partition, so everything earlier than the watermark minus the
//! allowed lateness is taken to have arrived. A window `[start, end)` **closes** once
//! `end + allowed lateness <= watermark`; its result is emitted then, once. An event
//! whose windows are all closed is **late** and goes to the processor's late policy
//! instead of into any window, so a closed window's result never changes.
//!
//! Kept free of storage and plugins: the processor runner persists the open windows
//! (so a restart resumes them) and calls the plugin; this module only decides.

use std::collections::{BTreeSet, HashMap};
use std::hash::Hash;

/// A window of event time, `[start_ms, end_ms)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Window {
    /// First instant inside the window.
    pub start_ms: i64,
    /// First instant after it.
    pub end_ms: i64,
}

/// How events are grouped in time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WindowKind {
    /// Back-to-back windows of `size_ms`, aligned to the epoch: each event in one.
    Tumbling { size_ms: i64 },
    /// Windows of `size_ms` starting every `advance_ms` (`advance_ms < size_ms`
    /// overlaps them): each event in `size_ms / advance_ms` windows.
    Hopping { size_ms: i64, advance_ms: i64 },
    /// Per key, events closer than `gap_ms` to each other share a window, which
    /// ends `gap_ms` after its last event.
    Session { gap_ms: i64 },
}

impl From<weir_host::WindowSpec> for WindowKind {
    /// The manifest's windows (checked there: sizes, gaps and advances positive).
    fn from(spec: weir_host::WindowSpec) -> Self {
        match spec {
            weir_host::WindowSpec::Tumbling { size_ms } => WindowKind::Tumbling { size_ms },
            weir_host::WindowSpec::Hopping {
                size_ms,
                advance_ms,
            } => WindowKind::Hopping {
                size_ms,
                advance_ms,
            },
            weir_host::WindowSpec::Session { gap_ms } => WindowKind::Session { gap_ms },
        }
    }
}

impl WindowKind {
    /// The windows an event at `t` starts out in, by start. A session event's window
    /// is `[t, t + gap)` before it is merged with the key's open sessions
    /// ([`Sessions::add`]). Computed without overflow: bounds past the range of `i64`
    /// are clamped to it. Expects a kind without a [`problem`](Self::problem).
    pub fn windows_of(&self, t: i64) -> Vec<Window> {
        let window = |start: i128, end: i128| Window {
            start_ms: clamp(start),
            end_ms: clamp(end),
        };
        let t128 = i128::from(t);
        match *self {
            WindowKind::Tumbling { size_ms } => {
                let size = i128::from(size_ms.max(1));
                let start = t128.div_euclid(size) * size;
                vec![window(start, start + size)]
            }
            WindowKind::Hopping {
                size_ms,
                advance_ms,
            } => {
                let (size, advance) = (i128::from(size_ms.max(1)), i128::from(advance_ms.max(1)));
                // The latest window starting at or before t, then back while t fits.
                let mut start = t128.div_euclid(advance) * advance;
                let mut windows = Vec::new();
                while start + size > t128 {
                    windows.push(window(start, start + size));
                    start -= advance;
                }
                windows.reverse();
                windows
            }
            WindowKind::Session { gap_ms } => vec![window(t128, t128 + i128::from(gap_ms))],
        }
    }
}

fn clamp(v: i128) -> i64 {
    i64::try_from(v).unwrap_or(if v < 0 { i64::MIN } else { i64::MAX })
}

/// One partition's event-time progress.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Watermark {
    /// The largest event time seen; `None` before the first event.
    pub max_ms: Option<i64>,
    /// How long after a window's end its events are still accepted.
    pub allowed_lateness_ms: i64,
}

impl Watermark {
    /// A partition that has seen nothing yet.
    pub fn new(allowed_lateness_ms: i64) -> Self {
        Watermark {
            max_ms: None,
            allowed_lateness_ms: allowed_lateness_ms.max(0),
        }
    }

    /// Moves the watermark to `t` if `t` is later (it never goes back).
    pub fn observe(&mut self, t: i64) {
        self.max_ms = Some(self.max_ms.map_or(t, |m| m.max(t)));
    }

    /// Whether `window` is closed: no more events are accepted into it.
    pub fn closes(&self, window: Window) -> bool {
        self.max_ms
            .is_some_and(|m| window.end_ms.saturating_add(self.allowed_lateness_ms) <= m)
    }

    /// Of an event's windows, those still open: the event counts in these. None left
    /// means the event is late and goes to the late policy. (A hopping event whose
    /// earliest windows closed still counts in its later ones, so no open window
    /// misses it.) Checked before [`observe`](Self::observe)-ing the event itself; for
    /// a session, with the session the event merges into ([`Sessions::add`]): as in
    /// Flink, once a session has closed and been emitted, a later event within the gap
    /// of it starts a new session rather than changing an emitted result.
    pub fn still_open(&self, windows: &[Window]) -> Vec<Window> {
        windows
            .iter()
            .copied()
            .filter(|w| !self.closes(*w))
            .collect()
    }
}

/// The windows open on one partition, per key, in the order they close.
///
/// Changes since [`mark`](Self::mark) are journaled, so a failed step puts back
/// exactly what it changed ([`rollback`](Self::rollback)) instead of copying every
/// open window before each step.
#[derive(Debug, Clone, Default)]
pub struct OpenWindows<K: Ord + Hash> {
    /// `(end, start, key)`: the first entries close first.
    by_end: BTreeSet<(i64, i64, K)>,
    /// Each key's open windows, for a session's merge candidates.
    by_key: HashMap<K, BTreeSet<Window>>,
    /// Since the mark: each change, `true` for an opening.
    journal: Vec<(bool, K, Window)>,
}

impl<K: Ord + Clone + Hash> OpenWindows<K> {
    /// No open window.
    pub fn new() -> Self {
        OpenWindows {
            by_end: BTreeSet::new(),
            by_key: HashMap::new(),
            journal: Vec::new(),
        }
    }

    /// Notes `window` of `key` as open (again: no effect).
    pub fn open(&mut self, key: K, window: Window) {
        if self.insert(key.clone(), window) {
            self.journal.push((true, key, window));
        }
    }

    /// Forgets `window` of `key` (a session merged into a larger one).
    pub fn forget(&mut self, key: &K, window: Window) {
        if self.remove(key, window) {
            self.journal.push((false, key.clone(), window));
        }
    }

    /// Removes and returns the windows `watermark` closes, earliest end first.
    pub fn close(&mut self, watermark: &Watermark) -> Vec<(K, Window)> {
        let mut closed = Vec::new();
        while let Some((end, start, key)) = self.by_end.first() {
            let window = Window {
                start_ms: *start,
                end_ms: *end,
            };
            if !watermark.closes(window) {
                break;
            }
            let key = key.clone();
            self.forget(&key, window);
            closed.push((key, window));
        }
        closed
    }

    /// `key`'s open windows (a session's merge candidates), by start.
    pub fn of_key(&self, key: &K) -> Vec<Window> {
        self.by_key
            .get(key)
            .map(|windows| windows.iter().copied().collect())
            .unwrap_or_default()
    }

    /// How many windows are open.
    pub fn len(&self) -> usize {
        self.by_end.len()
    }

    /// Whether none is.
    pub fn is_empty(&self) -> bool {
        self.by_end.is_empty()
    }

    /// Starts journaling anew: what is open now is what [`rollback`](Self::rollback)
    /// returns to.
    pub fn mark(&mut self) {
        self.journal.clear();
    }

    /// Undoes every change since the mark.
    pub fn rollback(&mut self) {
        while let Some((opened, key, window)) = self.journal.pop() {
            if opened {
                self.remove(&key, window);
            } else {
                self.insert(key, window);
            }
        }
    }

    fn insert(&mut self, key: K, window: Window) -> bool {
        let fresh = self
            .by_end
            .insert((window.end_ms, window.start_ms, key.clone()));
        if fresh {
            self.by_key.entry(key).or_default().insert(window);
        }
        fresh
    }

    fn remove(&mut self, key: &K, window: Window) -> bool {
        let removed = self
            .by_end
            .remove(&(window.end_ms, window.start_ms, key.clone()));
        if removed && let Some(windows) = self.by_key.get_mut(key) {
            windows.remove(&window);
            if windows.is_empty() {
                self.by_key.remove(key);
            }
        }
        removed
    }
}

/// What adding an event to a key's sessions did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionMerge {
    /// The session the event is now in.
    pub into: Window,
    /// The key's open sessions it absorbed (their state merges into `into`'s).
    pub absorbed: Vec<Window>,
}

/// Session windows: merges an event's window with the key's open sessions it
/// touches.
#[derive(Debug, Clone, Copy)]
pub struct Sessions {
    /// Largest distance between two events of one session.
    pub gap_ms: i64,
}

impl Sessions {
    /// The session an event at `t` lands in, given the key's `open` sessions: every
    /// open session that overlaps `[t, t + gap)` is absorbed into one.
    pub fn add(&self, t: i64, open: &[Window]) -> SessionMerge {
        let mut into = Window {
            start_ms: t,
            end_ms: t.saturating_add(self.gap_ms),
        };
        let mut absorbed = Vec::new();
        for w in open {
            if w.start_ms < into.end_ms && into.start_ms < w.end_ms {
                absorbed.push(*w);
            }
        }
        for w in &absorbed {
            into.start_ms = into.start_ms.min(w.start_ms);
            into.end_ms = into.end_ms.max(w.end_ms);
        }
        SessionMerge { into, absorbed }
    }
}

#[cfg(test)]
mod tests;
