//! Quarantine of plugins that keep failing: a circuit breaker per plugin.
//!
//! A plugin that fails `max_failures` times within `window` is quarantined: callers
//! apply their error policy without calling it. After a backoff one call is let
//! through as a probe; success ends the quarantine, failure doubles the backoff (up to
//! `max_backoff`). Only failures that are the plugin's fault count — traps, timeouts,
//! memory and stack errors, `failed`, invalid results — not `bad-input`, which says the
//! data is bad and the plugin works.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use parking_lot::Mutex;

/// When a plugin is quarantined and how it is retried.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HealthPolicy {
    /// Failures within `window` that quarantine a plugin.
    pub max_failures: u32,
    /// The sliding window failures are counted in.
    pub window: Duration,
    /// Wait before the first probe.
    pub initial_backoff: Duration,
    /// Longest wait between probes.
    pub max_backoff: Duration,
}

impl Default for HealthPolicy {
    fn default() -> Self {
        Self {
            max_failures: 5,
            window: Duration::from_secs(60),
            initial_backoff: Duration::from_secs(1),
            max_backoff: Duration::from_secs(60),
        }
    }
}

/// Whether a call may go ahead.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Admission {
    /// Healthy: call.
    Call,
    /// Quarantined, and this call is the probe.
    Probe,
    /// Quarantined: do not call; the next probe is due after this long.
    Refuse(Duration),
}

#[derive(Debug)]
struct Quarantine {
    since: Instant,
    next_probe: Instant,
    backoff: Duration,
    probing: bool,
}

#[derive(Debug, Default)]
struct State {
    failures: VecDeque<Instant>,
    quarantine: Option<Quarantine>,
    times_quarantined: u64,
}

/// A plugin's breaker.
#[derive(Debug)]
pub(crate) struct Health {
    policy: HealthPolicy,
    state: Mutex<State>,
}

/// What a health snapshot shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HealthView {
    /// Since when the plugin is quarantined, if it is.
    pub quarantined_for: Option<Duration>,
    /// Time until the next probe (zero: due now).
    pub next_probe_in: Option<Duration>,
    /// Counted failures in the current window.
    pub recent_failures: u32,
    /// How often the plugin was quarantined since it was loaded.
    pub times_quarantined: u64,
}

impl Health {
    pub(crate) fn new(policy: HealthPolicy) -> Self {
        Self {
            policy,
            state: Mutex::new(State::default()),
        }
    }

    /// Forgets failures and any quarantine: a new version starts healthy.
    pub(crate) fn reset(&self) {
        let mut s = self.state.lock();
        s.failures.clear();
        s.quarantine = None;
    }

    pub(crate) fn admit(&self, now: Instant) -> Admission {
        let mut s = self.state.lock();
        match &mut s.quarantine {
            None => Admission::Call,
            Some(q) if q.probing || now < q.next_probe => {
                Admission::Refuse(q.next_probe.saturating_duration_since(now))
            }
            Some(q) => {
                q.probing = true;
                Admission::Probe
            }
        }
    }

    /// Records a call's outcome; returns what changed, for the log.
    pub(crate) fn record(&self, failed: bool, now: Instant) -> Option<Transition> {
        let mut s = self.state.lock();
        let window = self.policy.window;
        while s
            .failures
            .front()
            .is_some_and(|t| now.duration_since(*t) > window)
        {
            s.failures.pop_front();
        }
        if !failed {
            if s.quarantine.take().is_some() {
                s.failures.clear();
                return Some(Transition::Recovered);
            }
            return None;
        }
        s.failures.push_back(now);
        if let Some(q) = &mut s.quarantine {
            q.backoff = (q.backoff * 2).min(self.policy.max_backoff);
            q.next_probe = now + q.backoff;
            q.probing = false;
            return Some(Transition::StillFailing(q.backoff));
        }
        if s.failures.len() >= self.policy.max_failures as usize {
            let backoff = self.policy.initial_backoff;
            s.quarantine = Some(Quarantine {
                since: now,
                next_probe: now + backoff,
                backoff,
                probing: false,
            });
            s.times_quarantined += 1;
            return Some(Transition::Quarantined(backoff));
        }
        None
    }

    /// A probe that ended without an outcome (the call was not made) frees the slot.
    pub(crate) fn cancel_probe(&self) {
        if let Some(q) = &mut self.state.lock().quarantine {
            q.probing = false;
        }
    }

    pub(crate) fn view(&self, now: Instant) -> HealthView {
        let s = self.state.lock();
        HealthView {
            quarantined_for: s.quarantine.as_ref().map(|q| now.duration_since(q.since)),
            next_probe_in: s
                .quarantine
                .as_ref()
                .map(|q| q.next_probe.saturating_duration_since(now)),
            recent_failures: s
                .failures
                .iter()
                .filter(|t| now.duration_since(**t) <= self.policy.window)
                .count() as u32,
            times_quarantined: s.times_quarantined,
        }
    }
}

/// A change of a plugin's health.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Transition {
    /// Quarantined; first probe after this long.
    Quarantined(Duration),
    /// A probe failed; next probe after this long.
    StillFailing(Duration),
    /// A probe succeeded.
    Recovered,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quarantines_after_repeated_failures_and_recovers_on_a_good_probe() {
        let policy = HealthPolicy {
            max_failures: 3,
            window: Duration::from_secs(10),
            initial_backoff: Duration::from_secs(1),
            max_backoff: Duration::from_secs(4),
        };
        let h = Health::new(policy);
        let t0 = Instant::now();
        assert_eq!(h.record(true, t0), None);
        // Failures older than the window do not count.
        let t1 = t0 + Duration::from_secs(11);
        assert_eq!(h.record(true, t1), None);
        assert_eq!(h.record(true, t1), None);
        assert_eq!(
            h.record(true, t1),
            Some(Transition::Quarantined(Duration::from_secs(1)))
        );
        assert!(matches!(h.admit(t1), Admission::Refuse(_)));
        let t2 = t1 + Duration::from_secs(1);
        assert_eq!(h.admit(t2), Admission::Probe);
        // One probe at a time.
        assert!(matches!(h.admit(t2), Admission::Refuse(_)));
        assert_eq!(
            h.record(true, t2),
            Some(Transition::StillFailing(Duration::from_secs(2)))
        );
        let t3 = t2 + Duration::from_secs(2);
        assert_eq!(h.admit(t3), Admission::Probe);
        assert_eq!(h.record(false, t3), Some(Transition::Recovered));
        assert_eq!(h.admit(t3), Admission::Call);
        assert_eq!(h.view(t3).times_quarantined, 1);
    }
}
