//! A step with a canary: the batch is split by key between the serving version and
//! the candidate, each half runs on its version, and the halves are joined again in
//! the batch's order (each half carries its events' places in the batch). Each output remembers that the candidate made it (its lineage names
//! the candidate's version), and the canary is told how each version did.

use std::borrow::Cow;
use std::sync::Arc;

use weir_host::packed::{self, Writer};
use weir_host::registry::canary::{Canary, Tally};
use weir_host::{BatchInfo, CallKind};

use super::chain::Step;
use super::exec::{Batch, Failure, Route, Stepped, Version, run_step};

/// Runs step `index` (which has `canary`) over `batch`.
pub(crate) fn run_step_with_canary<'a>(
    step: &Step,
    index: usize,
    canary: &Arc<Canary>,
    info: &BatchInfo,
    batch: Batch<'a>,
    failures: &mut Vec<Failure>,
) -> Stepped<'a> {
    let events = packed::decode(&batch.buf).expect("the broker packed this batch");
    let takes: Vec<bool> = events.iter().map(|e| canary.takes(e.key)).collect();
    drop(events);
    let bit = 1u64 << index;
    let serving = Version::serving(step);
    let candidate = Version {
        step,
        plugin: Some(&canary.plugin),
        kind: CallKind::Canary,
    };
    let (stepped, tallies) = match takes.iter().filter(|t| **t).count() {
        0 => {
            let (stepped, t) = run_counted(&serving, index, info, batch, failures);
            (stepped, (t, Tally::default()))
        }
        all if all == takes.len() => {
            let mut batch = batch;
            mark(&mut batch, |_| true, bit);
            let (stepped, t) = run_counted(&candidate, index, info, batch, failures);
            (stepped, (Tally::default(), t))
        }
        _ => {
            let (ours, theirs) = split(&batch, &takes, bit);
            let (ours, t_ours) = run_half(&serving, index, info, ours, &batch, failures);
            let (theirs, t_theirs) = run_half(&candidate, index, info, theirs, &batch, failures);
            (join(batch, &takes, bit, ours, theirs), (t_ours, t_theirs))
        }
    };
    if let Some(verdict) = canary.observe(tallies.0, tallies.1)
        && let Some(slot) = &step.slot
    {
        slot.conclude_canary(canary, verdict);
    }
    stepped
}

/// Runs `version` over `batch` and tallies how it did: the events it ran on, and of
/// those the ones it failed on (including a router's choices it may not make).
fn run_counted<'a>(
    version: &Version<'_>,
    index: usize,
    info: &BatchInfo,
    batch: Batch<'a>,
    failures: &mut Vec<Failure>,
) -> (Stepped<'a>, Tally) {
    let before = failures.len();
    let events = batch.len() as u64;
    let stepped = run_step(version, index, info, batch, failures);
    let added = &failures[before..];
    let not_run = added.iter().filter(|f| !f.ran).count() as u64;
    let mut failed = added.iter().filter(|f| f.ran).count() as u64;
    if let Stepped::Routed(_, routes) = &stepped {
        let candidate = version.kind == CallKind::Canary;
        failed += routes
            .iter()
            .filter(|r| !version.step.may_route_to(&r.topic, candidate))
            .count() as u64;
    }
    let tally = Tally {
        events: events - not_run,
        failed,
    };
    (stepped, tally)
}

/// [`run_counted`] on one half of `whole`, whose events' origins are their indices
/// in `whole` (so the halves join back in `whole`'s order): the failures it adds are
/// given back their input records.
fn run_half<'h>(
    version: &Version<'_>,
    index: usize,
    info: &BatchInfo,
    half: Batch<'h>,
    whole: &Batch<'_>,
    failures: &mut Vec<Failure>,
) -> (Stepped<'h>, Tally) {
    let before = failures.len();
    let out = run_counted(version, index, info, half, failures);
    for f in &mut failures[before..] {
        f.origin = whole.origins[f.origin as usize];
    }
    out
}

/// Sets `bit` on the events `which` selects.
fn mark(batch: &mut Batch<'_>, which: impl Fn(usize) -> bool, bit: u64) {
    if batch.candidates.is_empty() {
        batch.candidates = vec![0; batch.len()];
    }
    for (j, c) in batch.candidates.iter_mut().enumerate() {
        if which(j) {
            *c |= bit;
        }
    }
}

/// The events the serving version keeps and those the candidate takes (marked),
/// each with its index in `batch` as its origin.
fn split(batch: &Batch<'_>, takes: &[bool], bit: u64) -> (Batch<'static>, Batch<'static>) {
    let events = packed::decode(&batch.buf).expect("the broker packed this batch");
    let mut halves = [Half::default(), Half::default()];
    for (j, e) in events.iter().enumerate() {
        let h = &mut halves[usize::from(takes[j])];
        h.writer.push_event(e);
        h.origins.push(j as u32);
        h.candidates
            .push(batch.candidates_of(j) | if takes[j] { bit } else { 0 });
    }
    let [ours, theirs] = halves.map(Half::finish);
    (ours, theirs)
}

#[derive(Default)]
struct Half {
    writer: Writer,
    origins: Vec<u32>,
    candidates: Vec<u64>,
}

impl Half {
    fn finish(self) -> Batch<'static> {
        Batch {
            buf: Cow::Owned(self.writer.finish()),
            origins: self.origins,
            candidates: self.candidates,
        }
    }
}

/// One batch again from the two halves' results, in input order: outputs by the
/// input record they came from (a router's choices by the event they route, in the
/// router's unsplit input).
fn join<'a>(
    input: Batch<'a>,
    takes: &[bool],
    bit: u64,
    ours: Stepped<'_>,
    theirs: Stepped<'_>,
) -> Stepped<'a> {
    match (ours, theirs) {
        (Stepped::Next(a), Stepped::Next(b)) => Stepped::Next(merge(&a, &b, &input.origins)),
        (Stepped::Routed(_, a), Stepped::Routed(_, b)) => {
            // Where each half's events sit in the unsplit batch.
            let (mut at_ours, mut at_theirs) = (Vec::new(), Vec::new());
            for (j, t) in takes.iter().enumerate() {
                if *t {
                    at_theirs.push(j as u32);
                } else {
                    at_ours.push(j as u32);
                }
            }
            let mut routes: Vec<Route> = Vec::with_capacity(a.len() + b.len());
            let place = |r: Route, at: &[u32]| Route {
                event: at[r.event as usize],
                ..r
            };
            routes.extend(a.into_iter().map(|r| place(r, &at_ours)));
            routes.extend(b.into_iter().map(|r| place(r, &at_theirs)));
            routes.sort_by_key(|r| r.event);
            let mut input = input;
            mark(&mut input, |j| takes[j], bit);
            Stepped::Routed(input, routes)
        }
        _ => unreachable!("both halves run the same step"),
    }
}

/// Two halves' outputs merged by origin, their event's index in the unsplit batch
/// (each half is in that order already, and an event is in one half only), then
/// given back the input records they came from (`origins`).
fn merge(a: &Batch<'_>, b: &Batch<'_>, origins: &[u32]) -> Batch<'static> {
    let ea = packed::decode(&a.buf).expect("checked by the step");
    let eb = packed::decode(&b.buf).expect("checked by the step");
    let mut out = Half {
        writer: Writer::with_capacity(a.buf.len() + b.buf.len()),
        ..Half::default()
    };
    let (mut i, mut j) = (0, 0);
    while i < ea.len() || j < eb.len() {
        let take_a = j == eb.len() || (i < ea.len() && a.origins[i] <= b.origins[j]);
        let (batch, events, k) = if take_a {
            i += 1;
            (a, &ea, i - 1)
        } else {
            j += 1;
            (b, &eb, j - 1)
        };
        out.writer.push_event(&events[k]);
        out.origins.push(origins[batch.origins[k] as usize]);
        out.candidates.push(batch.candidates_of(k));
    }
    out.finish()
}
