//! A plugin's version history and the probation of a new version.
//!
//! Every activation, rejection, rollback and removal is an [`Entry`], so an operator
//! can see what served when and how each version ended. The last few versions that
//! served are kept loaded, so a rollback is a pointer swap, not a compile.
//!
//! A version that replaced another is on probation for its first events: if too many
//! of them are in failed calls, the slot rolls back to the version before it.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::plugin::Plugin;

/// Entries kept per plugin.
const MAX_ENTRIES: usize = 64;
/// Versions that served kept loaded for rollback (besides the current one).
const MAX_KEPT: usize = 4;

/// Where a version came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    /// The plugin directory at start-up.
    Startup,
    /// A change in the plugin directory while running.
    File,
    /// `PUT /v1/plugins/{name}`.
    Http,
    /// A rollback to an earlier version.
    Rollback,
    /// A deployment to the cluster, through any node.
    Cluster,
    /// A canary promoted after it proved itself on a share of the keys.
    Canary,
}

/// How a version ended, or that it still serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Serving now.
    Active,
    /// Served until a newer version replaced it.
    Replaced,
    /// Served, then was rolled back (automatically or through the API).
    RolledBack,
    /// Never served: it failed to load, link, type-check or initialise.
    Rejected,
    /// Served until its folder was deleted.
    Removed,
    /// Ran as a shadow of the serving version (compared, never served); `ended_at_ms`
    /// says when it stopped.
    Shadowed,
    /// Served a share of the keys as a canary; `reason` says how it ended (promoted:
    /// an `Active` entry of the same version follows).
    Canary,
    /// Served a share of the keys as a canary, then was rolled back; `reason` says
    /// why.
    CanaryRolledBack,
}

/// One version event in a plugin's history.
#[derive(Debug, Clone)]
pub struct Entry {
    /// The version's content hash (empty, shown as `null`, when its files could not
    /// be read).
    pub version: String,
    /// Where it came from.
    pub origin: Origin,
    /// The component file it was read from.
    pub file: Option<String>,
    /// Milliseconds since the Unix epoch when it was activated (or rejected).
    pub at_ms: u64,
    /// When it stopped serving.
    pub ended_at_ms: Option<u64>,
    /// How it ended.
    pub outcome: Outcome,
    /// Why it was rejected or rolled back.
    pub reason: Option<String>,
    /// Time to compile, link, type-check and initialise it.
    pub load_ms: Option<f64>,
    /// `running` while on probation, `passed` after.
    pub probation: Option<&'static str>,
    /// Kept loaded for a rollback.
    plugin: Option<Arc<Plugin>>,
}

/// A plugin's history, oldest first.
#[derive(Debug, Default)]
pub(crate) struct History {
    entries: VecDeque<Entry>,
}

/// What to record about a new version.
#[derive(Debug)]
pub(crate) struct NewVersion<'a> {
    pub version: &'a str,
    pub origin: Origin,
    pub file: Option<String>,
    pub load_time: Option<Duration>,
}

impl<'a> NewVersion<'a> {
    /// A loaded version about to serve.
    pub(crate) fn of(plugin: &'a Plugin, origin: Origin, load_time: Option<Duration>) -> Self {
        Self {
            version: plugin.hash(),
            origin,
            file: plugin.files().map(|f| f.component_path.clone()),
            load_time,
        }
    }
}

impl History {
    /// Records `plugin` as the active version; the previously active one ends with
    /// `previous_outcome` (and `reason`).
    pub(crate) fn activate(
        &mut self,
        plugin: Arc<Plugin>,
        new: NewVersion<'_>,
        on_probation: bool,
        previous_outcome: Outcome,
        reason: Option<String>,
    ) {
        self.end_active(previous_outcome, reason);
        self.push(Entry {
            version: new.version.to_string(),
            origin: new.origin,
            file: new.file,
            at_ms: now_ms(),
            ended_at_ms: None,
            outcome: Outcome::Active,
            reason: None,
            load_ms: new.load_time.map(|d| d.as_secs_f64() * 1e3),
            probation: on_probation.then_some("running"),
            plugin: Some(plugin),
        });
        self.release_old_plugins();
    }

    /// Records a version that was refused.
    pub(crate) fn reject(&mut self, new: NewVersion<'_>, reason: String) {
        self.push(Entry {
            version: new.version.to_string(),
            origin: new.origin,
            file: new.file,
            at_ms: now_ms(),
            ended_at_ms: None,
            outcome: Outcome::Rejected,
            reason: Some(reason),
            load_ms: new.load_time.map(|d| d.as_secs_f64() * 1e3),
            probation: None,
            plugin: None,
        });
    }

    /// Records `plugin` starting as a shadow of the serving version.
    pub(crate) fn shadow_started(&mut self, plugin: &Plugin, reason: String) {
        self.end_shadow("replaced by another shadow");
        self.stage_started(plugin, Outcome::Shadowed, reason);
    }

    /// Ends the running shadow's entry, saying why.
    pub(crate) fn end_shadow(&mut self, why: &str) {
        self.end_stage(Outcome::Shadowed, Outcome::Shadowed, why);
    }

    /// Records `plugin` starting as a canary beside the serving version.
    pub(crate) fn canary_started(&mut self, plugin: &Plugin, reason: String) {
        self.end_canary(Outcome::CanaryRolledBack, "replaced by another canary");
        self.stage_started(plugin, Outcome::Canary, reason);
    }

    /// Ends the running canary's entry as `outcome` (`Canary` when promoted), saying
    /// why.
    pub(crate) fn end_canary(&mut self, outcome: Outcome, why: &str) {
        self.end_stage(Outcome::Canary, outcome, why);
    }

    /// A version running beside the serving one (shadow or canary): not kept loaded
    /// by the history, its stage holds it.
    fn stage_started(&mut self, plugin: &Plugin, stage: Outcome, reason: String) {
        self.push(Entry {
            version: plugin.hash().to_string(),
            origin: Origin::Http,
            file: plugin.files().map(|f| f.component_path.clone()),
            at_ms: now_ms(),
            ended_at_ms: None,
            outcome: stage,
            reason: Some(reason),
            load_ms: None,
            probation: None,
            plugin: None,
        });
    }

    fn end_stage(&mut self, stage: Outcome, outcome: Outcome, why: &str) {
        if let Some(e) = self
            .entries
            .iter_mut()
            .rev()
            .find(|e| e.outcome == stage && e.ended_at_ms.is_none())
        {
            e.outcome = outcome;
            e.ended_at_ms = Some(now_ms());
            e.reason = Some(format!("{}; {why}", e.reason.take().unwrap_or_default()));
        }
    }

    /// Ends the active version (its folder was removed, or it was rolled back).
    pub(crate) fn end_active(&mut self, outcome: Outcome, reason: Option<String>) {
        if let Some(e) = self
            .entries
            .iter_mut()
            .rev()
            .find(|e| e.outcome == Outcome::Active)
        {
            e.outcome = outcome;
            e.ended_at_ms = Some(now_ms());
            if reason.is_some() {
                e.reason = reason;
            }
            if e.probation == Some("running") && outcome == Outcome::Replaced {
                e.probation = None;
            }
        }
    }

    /// Marks the active version's probation passed.
    pub(crate) fn pass_probation(&mut self, version: &str) {
        if let Some(e) = self
            .entries
            .iter_mut()
            .rev()
            .find(|e| e.outcome == Outcome::Active && e.version == version)
        {
            e.probation = Some("passed");
        }
    }

    /// The most recent version that served and ended normally (replaced or removed),
    /// other than `current`, still loaded.
    pub(crate) fn previous_good(&self, current: Option<&str>) -> Option<Arc<Plugin>> {
        self.entries
            .iter()
            .rev()
            .filter(|e| matches!(e.outcome, Outcome::Replaced | Outcome::Removed))
            .filter(|e| Some(e.version.as_str()) != current)
            .find_map(|e| e.plugin.clone())
    }

    /// The loaded version whose hash starts with `prefix` (the active one or one of
    /// the last that served), newest first; `None` when none is loaded.
    pub(crate) fn loaded(&self, prefix: &str) -> Option<Arc<Plugin>> {
        self.entries
            .iter()
            .rev()
            .filter(|e| !prefix.is_empty() && e.version.starts_with(prefix))
            .find_map(|e| e.plugin.clone())
    }

    /// Newest first.
    pub(crate) fn entries(&self) -> Vec<Entry> {
        self.entries.iter().rev().cloned().collect()
    }

    /// Rejected versions, newest first.
    pub(crate) fn rejected(&self, max: usize) -> Vec<Entry> {
        self.entries
            .iter()
            .rev()
            .filter(|e| e.outcome == Outcome::Rejected)
            .take(max)
            .cloned()
            .collect()
    }

    fn push(&mut self, e: Entry) {
        if self.entries.len() == MAX_ENTRIES {
            self.entries.pop_front();
        }
        self.entries.push_back(e);
    }

    /// Keeps only the active version and the last [`MAX_KEPT`] that served loaded.
    fn release_old_plugins(&mut self) {
        let mut kept = 0;
        for e in self.entries.iter_mut().rev() {
            if e.plugin.is_none() || e.outcome == Outcome::Active {
                continue;
            }
            if kept < MAX_KEPT && matches!(e.outcome, Outcome::Replaced | Outcome::Removed) {
                kept += 1;
            } else {
                e.plugin = None;
            }
        }
    }
}

/// When a new version must prove itself, and how.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ProbationPolicy {
    /// Events a new version must handle before it counts as good.
    pub events: u64,
    /// Largest share of those events in failed calls; above it, roll back.
    pub max_error_rate: f64,
}

impl Default for ProbationPolicy {
    fn default() -> Self {
        Self {
            events: 1000,
            max_error_rate: 0.5,
        }
    }
}

/// The probation of one version.
#[derive(Debug)]
pub(crate) struct Probation {
    pub version: String,
    events: u64,
    failed: u64,
}

/// What a probation concluded after a call.
#[derive(Debug, PartialEq)]
pub(crate) enum Verdict {
    /// Still watching.
    Running,
    /// The version handled its first events well enough.
    Passed,
    /// Too many failures: roll back. The reason says which.
    Failed(String),
}

impl Probation {
    pub(crate) fn new(version: &str) -> Self {
        Self {
            version: version.to_string(),
            events: 0,
            failed: 0,
        }
    }

    /// Counts a batch call of `events` events that `failed` (a plugin fault) or not.
    pub(crate) fn observe(
        &mut self,
        events: usize,
        failed: bool,
        policy: ProbationPolicy,
    ) -> Verdict {
        let events = events.max(1) as u64;
        self.events += events;
        if failed {
            self.failed += events;
        }
        let rate = self.failed as f64 / self.events as f64;
        if rate > policy.max_error_rate {
            Verdict::Failed(format!(
                "{} of its first {} events were in failed calls (limit {:.0}%)",
                self.failed,
                self.events,
                policy.max_error_rate * 100.0
            ))
        } else if self.events >= policy.events {
            Verdict::Passed
        } else {
            Verdict::Running
        }
    }
}

pub(crate) fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or(Duration::ZERO)
        .as_millis() as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn probation_fails_on_a_bad_first_batch_and_passes_after_enough_good_events() {
        let policy = ProbationPolicy {
            events: 100,
            max_error_rate: 0.5,
        };
        let mut p = Probation::new("v");
        assert!(matches!(p.observe(10, true, policy), Verdict::Failed(_)));

        let mut p = Probation::new("v");
        assert_eq!(p.observe(40, false, policy), Verdict::Running);
        assert_eq!(p.observe(20, true, policy), Verdict::Running);
        assert_eq!(p.observe(40, false, policy), Verdict::Passed);

        let mut p = Probation::new("v");
        assert_eq!(p.observe(10, false, policy), Verdict::Running);
        assert!(matches!(p.observe(20, true, policy), Verdict::Failed(_)));
    }
}
