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

use weir_host::packed::{self, Writer};
use weir_host::{BatchInfo, CallKind, Kind, PluginError};

use super::chain::{Chain, Step};
use super::outcome::StepFailure;

/// Most extra calls a step makes to isolate failing events in one batch.
const ISOLATION_BUDGET: u32 = 64;

/// Events in flight: a packed buffer (the request's own until a step rewrites it)
/// and, per event, the index of the input record it came from.
#[derive(Debug, Default)]
pub(crate) struct Batch<'a> {
    pub buf: Cow<'a, [u8]>,
    pub origins: Vec<u32>,
}

impl Batch<'_> {
    pub fn len(&self) -> usize {
        self.origins.len()
    }
}

/// A router's choice for one event of the final batch.
#[derive(Debug)]
pub(crate) struct Route {
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
        let pieces = run_isolating(step, info, &batch);
        let mut fail = |range: Range<usize>, e: &PluginError| {
            let error = StepFailure::new(step, e);
            for j in range {
                failures.push(Failure {
                    origin: batch.origins[j],
                    step: index,
                    error: error.clone(),
                });
            }
        };
        match step.kind() {
            Some(Kind::Router) => {
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
                return Executed {
                    out: batch,
                    routes: Some(routes),
                    failures,
                };
            }
            _ => {
                let whole = pieces.len() == 1 && pieces[0].0.len() == batch.len();
                let all_kept =
                    whole && matches!(&pieces[0].1, Ok(Output::Keep(f)) if f.iter().all(|k| *k));
                if all_kept {
                    continue;
                }
                let next = {
                    let events = packed::decode(&batch.buf).expect("the broker packed this batch");
                    let mut next = Next::default();
                    for (range, result) in pieces {
                        match result {
                            Ok(out) => next.add(&events, &batch.origins, range, out, whole),
                            Err(e) => fail(range, &e),
                        }
                    }
                    next.finish()
                };
                batch = next;
            }
        }
    }
    Executed {
        out: batch,
        routes: None,
        failures,
    }
}

/// Builds the batch after a filter or transform step from its pieces.
#[derive(Default)]
struct Next {
    writer: Option<Writer>,
    /// A transform's single whole-batch output, used as is.
    taken: Option<Vec<u8>>,
    origins: Vec<u32>,
}

impl Next {
    fn add(
        &mut self,
        events: &[packed::Event<'_>],
        origins: &[u32],
        range: Range<usize>,
        out: Output,
        whole: bool,
    ) {
        match out {
            Output::Keep(flags) => {
                let w = self
                    .writer
                    .get_or_insert_with(|| Writer::with_capacity(4096));
                for (j, keep) in range.zip(flags) {
                    if keep {
                        w.push_event(&events[j]);
                        self.origins.push(origins[j]);
                    }
                }
            }
            Output::Rewrite {
                events: out,
                counts,
            } => {
                for (j, n) in range.zip(counts) {
                    self.origins
                        .extend(std::iter::repeat_n(origins[j], n as usize));
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
        }
    }
}

type Piece = (Range<usize>, Result<Output, PluginError>);

/// Calls the step on the whole batch, then on halves of what failed, while the
/// failure may be event-specific and the budget lasts.
fn run_isolating(step: &Step, info: &BatchInfo, batch: &Batch<'_>) -> Vec<Piece> {
    let n = batch.len();
    match call(step, CallKind::Batch, info, &batch.buf, n) {
        Err(e) if e.isolatable() && n > 1 => {
            let events = packed::decode(&batch.buf).expect("the broker packed this batch");
            let mut pieces = Vec::new();
            let mut budget = ISOLATION_BUDGET;
            split(step, info, &events, 0..n, e, &mut budget, &mut pieces);
            pieces
        }
        result => vec![(0..n, result)],
    }
}

fn split(
    step: &Step,
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
        match call(step, CallKind::Retry, info, &buf, half.len()) {
            Ok(out) => pieces.push((half, Ok(out))),
            Err(e) => split(step, info, events, half, e, budget, pieces),
        }
    }
}

/// One call of a step's plugin over `count` packed events, with its result checked.
fn call(
    step: &Step,
    kind: CallKind,
    info: &BatchInfo,
    buf: &[u8],
    count: usize,
) -> Result<Output, PluginError> {
    let (Some(plugin), Some(slot)) = (&step.plugin, &step.slot) else {
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
