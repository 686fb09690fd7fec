//! Canaries: a candidate version of a filter, transform or router serving a share of
//! the keys beside the serving version, then promoted or rolled back by itself.
//!
//! Which version handles an event is decided by its key's hash (salted with the
//! candidate's version, so successive canaries try different keys), so a key stays
//! on one version for the whole canary and its records keep their order. Events
//! without a key have no identity to keep: they are spread by a counter.
//!
//! The pipeline tells the canary, per batch, how many events each version handled
//! and how many of them failed (dead-lettered, skipped or rejected by the step). Once
//! the candidate has handled `promote_after` events, it is promoted if its failure
//! rate is not above the serving version's by more than `max_error_rate_increase`,
//! and rolled back otherwise; it is rolled back early once it has failed on so many
//! events that it could no longer pass.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use parking_lot::Mutex;

use crate::plugin::Plugin;

/// How a canary runs and is judged.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CanarySettings {
    /// Share of keys on the candidate, in percent (1-100).
    pub percent: u32,
    /// Events the candidate handles before it is judged.
    pub promote_after: u64,
    /// How far the candidate's failure rate may exceed the serving version's (0.01:
    /// one percentage point) and still be promoted.
    pub max_error_rate_increase: f64,
}

impl Default for CanarySettings {
    fn default() -> Self {
        CanarySettings {
            percent: 10,
            promote_after: 10_000,
            max_error_rate_increase: 0.01,
        }
    }
}

/// Events handled and failed by one version during the canary.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Tally {
    /// Events the version handled.
    pub events: u64,
    /// Of those, events the step failed on.
    pub failed: u64,
}

impl Tally {
    /// Failed events per event handled (0 before any).
    pub fn rate(&self) -> f64 {
        if self.events == 0 {
            0.0
        } else {
            self.failed as f64 / self.events as f64
        }
    }
}

/// What a canary concluded.
#[derive(Debug, Clone, PartialEq)]
pub enum CanaryVerdict {
    /// Serve every key on the candidate; the reason states the figures.
    Promote(String),
    /// Stop the canary, the serving version keeps every key; why.
    RollBack(String),
}

/// A candidate version serving a share of the keys.
#[derive(Debug)]
pub struct Canary {
    /// The candidate.
    pub plugin: Arc<Plugin>,
    /// The version it runs beside.
    pub serving: String,
    /// How it runs.
    pub settings: CanarySettings,
    /// When it started (milliseconds since the Unix epoch).
    pub started_at_ms: u64,
    /// (serving, candidate).
    tallies: Mutex<(Tally, Tally)>,
    /// Events without a key seen so far, for spreading them.
    keyless: AtomicU64,
    /// Set once a verdict is reached: later batches still report, nothing more is
    /// decided.
    decided: AtomicBool,
    salt: u64,
}

impl Canary {
    /// A canary of `plugin` beside the `serving` version.
    pub fn new(plugin: Arc<Plugin>, serving: &str, settings: CanarySettings) -> Self {
        let salt = fnv1a(plugin.hash().as_bytes(), FNV_OFFSET);
        Self {
            plugin,
            serving: serving.to_string(),
            settings,
            started_at_ms: crate::history::now_ms(),
            tallies: Mutex::new((Tally::default(), Tally::default())),
            keyless: AtomicU64::new(0),
            decided: AtomicBool::new(false),
            salt,
        }
    }

    /// Whether the event with `key` goes to the candidate.
    pub fn takes(&self, key: Option<&[u8]>) -> bool {
        let bucket = match key {
            Some(k) => fnv1a(k, self.salt) % 10_000,
            None => (self.keyless.fetch_add(1, Ordering::Relaxed) % 100) * 100,
        };
        bucket < u64::from(self.settings.percent) * 100
    }

    /// The tallies so far: (serving, candidate).
    pub fn tallies(&self) -> (Tally, Tally) {
        *self.tallies.lock()
    }

    /// Whether a verdict was reached.
    pub fn decided(&self) -> bool {
        self.decided.load(Ordering::Acquire)
    }

    /// Adds one step run's figures; returns the verdict when this run reached it
    /// (once per canary).
    pub fn observe(&self, serving: Tally, candidate: Tally) -> Option<CanaryVerdict> {
        let (s, c) = {
            let mut t = self.tallies.lock();
            t.0.events += serving.events;
            t.0.failed += serving.failed;
            t.1.events += candidate.events;
            t.1.failed += candidate.failed;
            *t
        };
        let verdict = judge(&self.settings, s, c)?;
        // Only the first run to reach a verdict reports it.
        (!self.decided.swap(true, Ordering::AcqRel)).then_some(verdict)
    }
}

/// The verdict on a canary with these tallies, if there is one yet.
fn judge(settings: &CanarySettings, serving: Tally, candidate: Tally) -> Option<CanaryVerdict> {
    let allowed = serving.rate() + settings.max_error_rate_increase;
    let n = settings.promote_after;
    let figures = || {
        format!(
            "the candidate failed on {} of {} events ({:.2}%), the serving version on {} of {} ({:.2}%); allowed: {:.2} points more",
            candidate.failed,
            candidate.events,
            candidate.rate() * 100.0,
            serving.failed,
            serving.events,
            serving.rate() * 100.0,
            settings.max_error_rate_increase * 100.0
        )
    };
    if candidate.events >= n {
        let (judged, verdict): (&str, fn(String) -> CanaryVerdict) = if candidate.rate() <= allowed
        {
            ("promoted", CanaryVerdict::Promote)
        } else {
            ("rolled back", CanaryVerdict::RollBack)
        };
        return Some(verdict(format!(
            "{judged} after {} events: {}",
            candidate.events,
            figures()
        )));
    }
    // Past this many failures its rate at `n` events would be above `allowed`
    // whatever its remaining events do.
    (candidate.failed as f64 > allowed * n as f64).then(|| {
        CanaryVerdict::RollBack(format!(
            "rolled back early after {} events: {}",
            candidate.events,
            figures()
        ))
    })
}

const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;

/// FNV-1a, 64 bits: stable across builds and platforms, which a key's assignment
/// must be (std's hasher is not).
fn fnv1a(bytes: &[u8], seed: u64) -> u64 {
    bytes.iter().fold(seed, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tally(events: u64, failed: u64) -> Tally {
        Tally { events, failed }
    }

    #[test]
    fn the_rules_promote_a_healthy_candidate_and_roll_back_a_failing_one_early() {
        let s = CanarySettings {
            percent: 10,
            promote_after: 1000,
            max_error_rate_increase: 0.01,
        };
        assert_eq!(judge(&s, tally(9000, 0), tally(999, 5)), None);
        assert!(matches!(
            judge(&s, tally(9000, 0), tally(1000, 10)),
            Some(CanaryVerdict::Promote(_))
        ));
        // 11 failures can never be at most 1 % of 1000 events.
        assert!(matches!(
            judge(&s, tally(9000, 0), tally(50, 11)),
            Some(CanaryVerdict::RollBack(_))
        ));
        // Past `promote_after` (batches overshoot it) the rate alone decides.
        assert!(matches!(
            judge(&s, tally(9000, 0), tally(5000, 12)),
            Some(CanaryVerdict::Promote(_))
        ));
        // The serving version failing too raises the bar.
        assert!(matches!(
            judge(&s, tally(9000, 450), tally(1000, 55)),
            Some(CanaryVerdict::Promote(_))
        ));
    }

    #[test]
    fn a_key_stays_on_one_side_and_the_share_is_about_the_percent() {
        let salt = fnv1a(b"some version", FNV_OFFSET);
        let on = |k: &[u8]| fnv1a(k, salt) % 10_000 < 1000;
        let taken = (0..100_000)
            .filter(|i| on(format!("key-{i}").as_bytes()))
            .count();
        assert!((9_000..11_000).contains(&taken), "{taken}");
        assert_eq!(on(b"key-42"), on(b"key-42"));
    }
}
