//! Running a chain over one packed batch.
//!
//! Each step is one call across the host/guest boundary for the whole batch. When a
//! call fails in a way that may concern only some events (a trap, a `bad-input` or
//! `failed` error, an invalid result), the batch is split in halves and each half
//! called again, recursively, so one bad event costs its own error policy and not its
//! neighbours': about 2·log2(n) extra calls per bad event, within a fixed budget per
//! step. Timeouts and memory errors are not retried (each retry would cost the whole
//! deadline); quarantine and missing plugins fail the batch without a call. Only the
//! first call of a step counts toward the plugin's quarantine.

use std::borrow::Cow;
use std::ops::Range;
use std::sync::Arc;

use weir_host::packed::{self, Writer};
use weir_host::{BatchInfo, CallKind, Kind, Plugin, PluginError};

use super::chain::{Chain, Step};
use super::outcome::StepFailure;

/// Most extra calls a step makes to isolate failing events in one batch.
const ISOLATION_BUDGET: u32 = 64;

/// Events in flight: a packed buffer (the request's own until a step rewrites it)
/// and, per event, the index of the input record it came from and which steps ran
/// on a canary's candidate for it.
#[derive(Debug, Default)]
pub(crate) struct Batch<'a> {
    pub buf: Cow<'a, [u8]>,
    pub origins: Vec<u32>,
    /// Per event, bit `i` set when step `i` ran its canary's candidate on it; empty
    /// while no candidate ran on any event.
    pub candidates: Vec<u64>,
}

impl<'a> Batch<'a> {
    /// The request's `count` packed records, before any step.
    pub fn input(buf: &'a [u8], count: usize) -> Self {
        Batch {
            buf: Cow::Borrowed(buf),
            origins: (0..count as u32).collect(),
            candidates: Vec::new(),
        }
    }

    pub fn len(&self) -> usize {
        self.origins.len()
    }

    /// Which steps ran a candidate on event `j` (bit per step).
    pub fn candidates_of(&self, j: usize) -> u64 {
        self.candidates.get(j).copied().unwrap_or(0)
    }

    /// Whether step `step` ran its canary's candidate on event `j`.
    pub fn ran_candidate(&self, j: usize, step: usize) -> bool {
        step < 64 && self.candidates_of(j) & (1 << step) != 0
    }
}

/// A router's choice for one event of the final batch.
#[derive(Debug)]
pub(crate) struct Route {
    /// The event's index in the router's input batch.
    pub event: u32,
    pub topic: String,
    pub key: Option<Vec<u8>>,
}

/// An event a step failed on.
#[derive(Debug)]
pub(crate) struct Failure {
    /// The input record it came from.
    pub origin: u32,
    /// The step's index in the chain.
    pub step: usize,
    pub error: StepFailure,
    /// Whether the version ran on it (not quarantined, missing, or without its
    /// state): a canary judges a version by the failures it had itself.
    pub ran: bool,
}

/// What a chain made of a batch.
#[derive(Debug)]
pub(crate) struct Executed<'a> {
    /// The events that passed every step (before routing).
    pub out: Batch<'a>,
    /// The router's choices, if the chain ends with a router.
    pub routes: Option<Vec<Route>>,
    /// Events that failed a step.
    pub failures: Vec<Failure>,
}

/// A step's answer for some events.
enum Output {
    Keep(Vec<bool>),
    Rewrite { events: Vec<u8>, counts: Vec<u32> },
    Route(Vec<weir_host::Destination>),
}

/// Runs `chain` over `input`.
pub(crate) fn run<'a>(chain: &Chain, info: &BatchInfo, input: Batch<'a>) -> Executed<'a> {
    let mut batch = input;
    let mut failures = Vec::new();
    for (index, step) in chain.steps.iter().enumerate() {
        if batch.len() == 0 {
            break;
        }
        let stepped = match &step.canary {
            Some(canary) => {
                super::canary::run_step_with_canary(step, index, canary, info, batch, &mut failures)
            }
            None => run_step(&Version::serving(step), index, info, batch, &mut failures),
        };
        match stepped {
            Stepped::Next(next) => batch = next,
            Stepped::Routed(out, routes) => {
                return Executed {
                    out,
                    routes: Some(routes),
                    failures,
                };
            }
        }
    }
    Executed {
        out: batch,
        routes: None,
        failures,
    }
}

/// The version of a step that runs on some events.
pub(crate) struct Version<'s> {
    pub step: &'s Step,
    /// `None` when no version is loaded.
    pub plugin: Option<&'s Arc<Plugin>>,
    /// `Batch` for the serving version, `Canary` for a canary's candidate.
    pub kind: CallKind,
}

impl<'s> Version<'s> {
    pub fn serving(step: &'s Step) -> Self {
        Version {
            step,
            plugin: step.plugin.as_ref(),
            kind: CallKind::Batch,
        }
    }
}

/// What one step made of a batch.
pub(crate) enum Stepped<'a> {
    /// The events for the next step.
    Next(Batch<'a>),
    /// The router's input and its choices: the chain ends here.
    Routed(Batch<'a>, Vec<Route>),
}

/// Runs one step's `version` over `batch`, adding the events it failed on to
/// `failures`.
pub(crate) fn run_step<'a>(
    version: &Version<'_>,
    index: usize,
    info: &BatchInfo,
    batch: Batch<'a>,
    failures: &mut Vec<Failure>,
) -> Stepped<'a> {
    let pieces = run_isolating(version, info, &batch);
    let mut fail = |range: Range<usize>, e: &PluginError| {
        let error = StepFailure::new(version.step, version.plugin.map(|p| &**p), e);
        let ran = !matches!(
            e,
            PluginError::Quarantined { .. }
                | PluginError::Unavailable { .. }
                | PluginError::StateUnavailable { .. }
        );
        for j in range {
            failures.push(Failure {
                origin: batch.origins[j],
                step: index,
                error: error.clone(),
                ran,
            });
        }
    };
    if version.step.kind() == Some(Kind::Router) {
        let mut routes = Vec::new();
        for (range, result) in pieces {
            match result {
                Ok(Output::Route(list)) => routes.extend(list.into_iter().map(|d| Route {
                    event: d.event + range.start as u32,
                    topic: d.topic,
                    key: d.key,
                })),
                Ok(_) => unreachable!("a router answers routes"),
                Err(e) => fail(range, &e),
            }
        }
        return Stepped::Routed(batch, routes);
    }
    let whole = pieces.len() == 1 && pieces[0].0.len() == batch.len();
    let all_kept = whole && matches!(&pieces[0].1, Ok(Output::Keep(f)) if f.iter().all(|k| *k));
    if all_kept {
        return Stepped::Next(batch);
    }
    let events = packed::decode(&batch.buf).expect("the broker packed this batch");
    let mut next = Next::default();
    for (range, result) in pieces {
        match result {
            Ok(out) => next.add(&events, &batch, range, out, whole),
            Err(e) => fail(range, &e),
        }
    }
    Stepped::Next(next.finish())
}

/// Builds the batch after a filter or transform step from its pieces.
#[derive(Default)]
struct Next {
    writer: Option<Writer>,
    /// A transform's single whole-batch output, used as is.
    taken: Option<Vec<u8>>,
    origins: Vec<u32>,
    candidates: Vec<u64>,
}

impl Next {
    fn add(
        &mut self,
        events: &[packed::Event<'_>],
        batch: &Batch<'_>,
        range: Range<usize>,
        out: Output,
        whole: bool,
    ) {
        let marked = !batch.candidates.is_empty();
        match out {
            Output::Keep(flags) => {
                let w = self
                    .writer
                    .get_or_insert_with(|| Writer::with_capacity(4096));
                for (j, keep) in range.zip(flags) {
                    if keep {
                        w.push_event(&events[j]);
                        self.origins.push(batch.origins[j]);
                        if marked {
                            self.candidates.push(batch.candidates[j]);
                        }
                    }
                }
            }
            Output::Rewrite {
                events: out,
                counts,
            } => {
                for (j, n) in range.zip(counts) {
                    self.origins
                        .extend(std::iter::repeat_n(batch.origins[j], n as usize));
                    if marked {
                        self.candidates
                            .extend(std::iter::repeat_n(batch.candidates[j], n as usize));
                    }
                }
                if whole {
                    self.taken = Some(out);
                    return;
                }
                let decoded = packed::decode(&out).expect("validated when called");
                let w = self
                    .writer
                    .get_or_insert_with(|| Writer::with_capacity(out.len()));
                for e in &decoded {
                    w.push_event(e);
                }
            }
            Output::Route(_) => unreachable!("routers are handled apart"),
        }
    }

    fn finish(self) -> Batch<'static> {
        let buf = match (self.taken, self.writer) {
            (Some(buf), _) => buf,
            (None, Some(w)) => w.finish(),
            (None, None) => Writer::default().finish(),
        };
        Batch {
            buf: Cow::Owned(buf),
            origins: self.origins,
            candidates: self.candidates,
        }
    }
}

type Piece = (Range<usize>, Result<Output, PluginError>);

/// Calls the step on the whole batch, then on halves of what failed, while the
/// failure may be event-specific and the budget lasts.
fn run_isolating(version: &Version<'_>, info: &BatchInfo, batch: &Batch<'_>) -> Vec<Piece> {
    let n = batch.len();
    match call(version, version.kind, info, &batch.buf, n) {
        Err(e) if e.isolatable() && n > 1 => {
            let events = packed::decode(&batch.buf).expect("the broker packed this batch");
            let mut pieces = Vec::new();
            let mut budget = ISOLATION_BUDGET;
            split(version, info, &events, 0..n, e, &mut budget, &mut pieces);
            pieces
        }
        result => vec![(0..n, result)],
    }
}

fn split(
    version: &Version<'_>,
    info: &BatchInfo,
    events: &[packed::Event<'_>],
    range: Range<usize>,
    error: PluginError,
    budget: &mut u32,
    pieces: &mut Vec<Piece>,
) {
    if range.len() <= 1 || !error.isolatable() || *budget < 2 {
        pieces.push((range, Err(error)));
        return;
    }
    let mid = range.start + range.len() / 2;
    for half in [range.start..mid, mid..range.end] {
        *budget -= 1;
        let mut w = Writer::with_capacity(256 * half.len());
        for e in &events[half.clone()] {
            w.push_event(e);
        }
        let buf = w.finish();
        match call(version, CallKind::Retry, info, &buf, half.len()) {
            Ok(out) => pieces.push((half, Ok(out))),
            Err(e) => split(version, info, events, half, e, budget, pieces),
        }
    }
}

/// One call of a step's plugin over `count` packed events, with its result checked.
fn call(
    version: &Version<'_>,
    kind: CallKind,
    info: &BatchInfo,
    buf: &[u8],
    count: usize,
) -> Result<Output, PluginError> {
    let step = version.step;
    let (Some(plugin), Some(slot)) = (version.plugin, &step.slot) else {
        return Err(PluginError::Unavailable {
            plugin: step.name.clone(),
            reason: step
                .slot
                .as_ref()
                .and_then(|s| s.current_or_unavailable().err())
                .map_or_else(
                    || "no plugin of that name is installed".to_string(),
                    |e| e.to_string(),
                ),
        });
    };
    // OpenTelemetry messaging names: a plugin step processes the batch.
    let _span = tracing::debug_span!(
        "process",
        messaging.system = "weir",
        messaging.operation.type = "process",
        messaging.destination.name = %info.topic,
        messaging.batch.message_count = count,
        weir.plugin.name = %step.name,
        weir.plugin.version = %plugin.version_tag(),
    )
    .entered();
    match plugin.kind() {
        Kind::Filter => slot
            .filter(plugin, kind, info, buf, count)
            .map(Output::Keep),
        Kind::Transform => {
            slot.transform(plugin, kind, info, buf, count)
                .map(|t| Output::Rewrite {
                    events: t.events,
                    counts: t.counts,
                })
        }
        Kind::Router => slot
            .route(plugin, kind, info, buf, count)
            .map(Output::Route),
        other => Err(PluginError::WrongKind {
            plugin: step.name.clone(),
            expected: "filter, transform or router",
            actual: other.as_str(),
        }),
    }
}
