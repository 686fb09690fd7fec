//! A step with a canary: the batch is split by key between the serving version and
//! the candidate, each half runs on its version, and the halves are joined again in
//! input order. Each output remembers that the candidate made it (its lineage names
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
    let before = failures.len();
    let (stepped, tallies) = match takes.iter().filter(|t| **t).count() {
        0 => {
            let n = batch.len() as u64;
            let stepped = run_step(&serving, index, info, batch, failures);
            (
                stepped,
                (tally(n, failures.len() - before), Tally::default()),
            )
        }
        all if all == takes.len() => {
            let n = batch.len() as u64;
            let mut batch = batch;
            mark(&mut batch, |_| true, bit);
            let stepped = run_step(&candidate, index, info, batch, failures);
            (
                stepped,
                (Tally::default(), tally(n, failures.len() - before)),
            )
        }
        _ => {
            let (ours, theirs) = split(&batch, &takes, bit);
            let (n_ours, n_theirs) = (ours.len() as u64, theirs.len() as u64);
            let ours = run_step(&serving, index, info, ours, failures);
            let failed_ours = failures.len() - before;
            let theirs = run_step(&candidate, index, info, theirs, failures);
            let failed_theirs = failures.len() - before - failed_ours;
            let stepped = join(batch, &takes, bit, ours, theirs);
            (
                stepped,
                (tally(n_ours, failed_ours), tally(n_theirs, failed_theirs)),
            )
        }
    };
    if let Some(verdict) = canary.observe(tallies.0, tallies.1)
        && let Some(slot) = &step.slot
    {
        slot.conclude_canary(canary, verdict);
    }
    stepped
}

fn tally(events: u64, failed: usize) -> Tally {
    Tally {
        events,
        failed: failed as u64,
    }
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

/// The events the serving version keeps and those the candidate takes (marked).
fn split(batch: &Batch<'_>, takes: &[bool], bit: u64) -> (Batch<'static>, Batch<'static>) {
    let events = packed::decode(&batch.buf).expect("the broker packed this batch");
    let mut halves = [Half::default(), Half::default()];
    for (j, e) in events.iter().enumerate() {
        let h = &mut halves[usize::from(takes[j])];
        h.writer.push_event(e);
        h.origins.push(batch.origins[j]);
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
        (Stepped::Next(a), Stepped::Next(b)) => Stepped::Next(merge(&a, &b)),
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

/// Two batches merged by origin (each is in origin order already); on a tie the
/// serving version's outputs come first.
fn merge(a: &Batch<'_>, b: &Batch<'_>) -> Batch<'static> {
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
        out.origins.push(batch.origins[k]);
        out.candidates.push(batch.candidates_of(k));
    }
    out.finish()
}
