//! From a chain's outputs to one atomic append: destination topics, error policies,
//! dead letters, encoding; then, once stored, where every input record's outputs went.

use std::borrow::Cow;
use std::sync::Arc;

use weir_host::PolicyAction;
use weir_host::packed::{self, FLAG_VALUE_JSON};
use weir_storage::{Log, Topic, TopicBatch, TopicConfig};

use super::LINEAGE_HEADER;
use super::chain::Chain;
use super::exec::{Executed, Failure};
use super::outcome::{Placed, RecordResult, StepFailure};
use super::spec::{MissingTopic, OnError, PipelineOptions};
use crate::error::{BrokerError, Result};
use crate::partitioner::Sticky;
use crate::produce::{self, NewRecord, RecordPosition};

/// The W3C trace context header, carried from each input to its outputs.
pub const TRACEPARENT: &str = "traceparent";

/// What the planner needs besides the chain's result.
pub(crate) struct PlanContext<'a> {
    pub log: &'a dyn Log,
    pub topic: &'a Arc<Topic>,
    pub chain: &'a Chain,
    pub options: PipelineOptions,
    pub sticky: &'a Sticky,
    pub max_record_bytes: usize,
    /// The request's explicit partitions, per input record.
    pub partitions: &'a [Option<u32>],
}

/// The records of one destination topic in the append.
pub(crate) struct Group {
    topic: Arc<Topic>,
    /// Its batches' range in [`Plan::batches`], and their partitions.
    batches: std::ops::Range<usize>,
    partitions: Vec<u32>,
    placement: Vec<(u32, u32)>,
    /// Per record: the input record it answers, and whether it is a dead letter.
    targets: Vec<(u32, bool)>,
}

/// Everything one request stores, and its answer once stored.
pub(crate) struct Plan {
    pub batches: Vec<TopicBatch>,
    groups: Vec<Group>,
    results: Vec<RecordResult>,
}

/// Topics of one plan by name, created on demand.
struct Destinations<'a> {
    log: &'a dyn Log,
    topics: Vec<Arc<Topic>>,
}

impl Destinations<'_> {
    fn index(&mut self, name: &str, create_partitions: Option<u32>) -> Result<Option<usize>> {
        if let Some(i) = self.topics.iter().position(|t| t.name() == name) {
            return Ok(Some(i));
        }
        let topic = match self.log.topic(name) {
            Ok(t) => t,
            Err(weir_storage::StorageError::TopicNotFound(_)) => match create_partitions {
                None => return Ok(None),
                Some(_) if !weir_storage::config::is_valid_name(name) => return Ok(None),
                Some(n) => {
                    // The planner runs on a blocking thread: it may wait here.
                    tokio::runtime::Handle::current()
                        .block_on(self.log.create_topic(name, TopicConfig::with_partitions(n)))
                        .or_else(|e| match e {
                            // Created meanwhile with another config: use it.
                            weir_storage::StorageError::TopicExists(_) => {
                                Ok(weir_storage::Created::Existing)
                            }
                            e => Err(e),
                        })?;
                    tracing::info!(topic = name, partitions = n, "topic created by a pipeline");
                    self.log.topic(name)?
                }
            },
            Err(e) => return Err(e.into()),
        };
        self.topics.push(topic);
        Ok(Some(self.topics.len() - 1))
    }
}

/// Turns a chain's result into the batches of one append. A failure under `reject`
/// fails the whole request here, before anything is stored.
pub(crate) fn build(
    cx: &PlanContext<'_>,
    input: &[u8],
    mut executed: Executed<'_>,
) -> Result<Plan> {
    let inputs = packed::decode(input).expect("the broker packed the request");
    // Decoded once each: the outputs are the input itself when no step rewrote or
    // dropped anything.
    let rewritten;
    let outs: &[packed::Event<'_>] = if std::ptr::eq(executed.out.buf.as_ref(), input) {
        &inputs
    } else {
        rewritten = packed::decode(&executed.out.buf).expect("checked by the chain");
        &rewritten
    };
    let mut dest = Destinations {
        log: cx.log,
        topics: vec![cx.topic.clone()],
    };
    // (topic index, output event, key override)
    let mut sends: Vec<(usize, usize, Option<Vec<u8>>)> = Vec::with_capacity(outs.len());
    match executed.routes.take() {
        None => sends.extend((0..outs.len()).map(|j| (0, j, None))),
        Some(routes) => {
            let router = cx.chain.steps.len() - 1;
            let create = match cx.options.missing_topic {
                MissingTopic::Create => Some(cx.options.auto_create_partitions),
                MissingTopic::Error => None,
            };
            let step = &cx.chain.steps[router];
            for r in routes {
                // A route outside the declared (and, for a configured step,
                // approved) destinations is refused before the topic is even looked
                // up or created: what was checked is all a router can reach.
                let candidate = executed.out.ran_candidate(r.event as usize, router);
                let problem = if !step.may_route_to(&r.topic, candidate) {
                    Some((
                        "route_not_declared",
                        format!(
                            "the router chose topic '{}', which its manifest does not declare in [router] destinations{}",
                            r.topic,
                            if step.approved.is_some() {
                                " or the topic's pipeline did not approve for this step"
                            } else {
                                ""
                            }
                        ),
                    ))
                } else {
                    match dest.index(&r.topic, create)? {
                        Some(t) => {
                            sends.push((t, r.event as usize, r.key));
                            None
                        }
                        None => Some((
                            "unknown_topic",
                            format!(
                                "the router chose topic '{}', which does not exist{}",
                                r.topic,
                                if weir_storage::config::is_valid_name(&r.topic) {
                                    ""
                                } else {
                                    " (and is not a valid topic name)"
                                }
                            ),
                        )),
                    }
                };
                if let Some((kind, message)) = problem {
                    executed.failures.push(Failure {
                        origin: executed.out.origins[r.event as usize],
                        step: router,
                        error: StepFailure {
                            plugin: step.name.clone(),
                            version: match (&step.canary, candidate) {
                                (Some(c), true) => Some(c.plugin.hash().to_string()),
                                _ => step.plugin.as_ref().map(|p| p.hash().to_string()),
                            },
                            kind: Cow::Borrowed(kind),
                            message,
                        },
                        ran: true,
                    });
                }
            }
        }
    }
    let mut results = vec![RecordResult::default(); inputs.len()];
    apply_policies(cx, &mut executed.failures, &mut results)?;
    // With a canary in the chain, an output a candidate made names it: the lineage
    // is then each record's own instead of its batch's.
    let lineages: Vec<(u64, String)> = if cx.chain.has_canary() {
        let mut masks: Vec<u64> = sends
            .iter()
            .map(|(_, j, _)| executed.out.candidates_of(*j))
            .collect();
        masks.sort_unstable();
        masks.dedup();
        masks
            .into_iter()
            .map(|m| (m, cx.chain.lineage_of(m)))
            .collect()
    } else {
        Vec::new()
    };

    // The outputs, per destination topic, read straight from the chain's packed
    // buffer; dead letters apart (rare, and with headers of their own).
    let mut outputs: Vec<Vec<Out<'_>>> = Vec::new();
    let mut output_targets: Vec<Vec<(u32, bool)>> = Vec::new();
    for (t, j, key) in &sends {
        let e = outs[*j];
        let origin = executed.out.origins[*j];
        let original = &inputs[origin as usize];
        let key = match key {
            Some(k) => Some(&k[..]),
            None => e.key,
        };
        let partition = match cx.partitions[origin as usize] {
            Some(p) if *t == 0 && key == original.key => Some(p),
            _ => None,
        };
        // The trace goes on through the chain, whatever the plugins did with headers.
        let trace = original
            .header(TRACEPARENT)
            .filter(|_| e.header(TRACEPARENT).is_none());
        let candidates = executed.out.candidates_of(*j);
        let lineage = lineages
            .iter()
            .find(|(m, _)| *m == candidates)
            .map(|(_, l)| l.as_bytes())
            .filter(|l| !l.is_empty());
        grow(&mut outputs, &mut output_targets, *t);
        outputs[*t].push(Out {
            event: e,
            key,
            partition,
            trace,
            lineage,
        });
        output_targets[*t].push((origin, false));
    }
    let mut dead: Vec<Vec<NewRecord<'_>>> = Vec::new();
    let mut dead_targets: Vec<Vec<(u32, bool)>> = Vec::new();
    for f in &executed.failures {
        let step = &cx.chain.steps[f.step];
        let result = &mut results[f.origin as usize];
        if step.on_error != OnError::DeadLetter || result.dead_letter.is_some() {
            continue;
        }
        let Some(t) = dest.index(
            &step.dead_letter_topic,
            Some(cx.options.dead_letter_partitions),
        )?
        else {
            unreachable!("dead-letter topics are created on demand");
        };
        // Marks the input as dead-lettered; the real position is filled in later.
        result.dead_letter = Some(Placed {
            topic: Arc::from(""),
            partition: 0,
            offset: 0,
        });
        let original = &inputs[f.origin as usize];
        let mut headers: Vec<(Cow<'_, str>, Cow<'_, [u8]>)> = original
            .headers()
            .map(|(n, v)| (Cow::Borrowed(n), Cow::Borrowed(v)))
            .collect();
        let e = &f.error;
        headers.push(("weir-dlq-topic".into(), cx.topic.name().as_bytes().into()));
        headers.push(("weir-dlq-plugin".into(), e.plugin.as_bytes().into()));
        if let Some(v) = &e.version {
            headers.push(("weir-dlq-version".into(), v.as_bytes().into()));
        }
        headers.push(("weir-dlq-error-kind".into(), e.kind.as_bytes().into()));
        headers.push(("weir-dlq-error".into(), e.message.as_bytes().into()));
        grow(&mut dead, &mut dead_targets, t);
        dead[t].push(NewRecord {
            key: original.key.map(Cow::Borrowed),
            value: original.value.map(Cow::Borrowed),
            value_is_json: original.flags & FLAG_VALUE_JSON != 0,
            headers,
            partition: None,
        });
        dead_targets[t].push((f.origin, true));
    }

    let now = weir_storage::now_ms();
    let mut batches = Vec::new();
    let mut groups = Vec::new();
    let mut add = |topic: &Arc<Topic>,
                   encoded: produce::Encoded,
                   targets: Vec<(u32, bool)>,
                   batches: &mut Vec<TopicBatch>| {
        let start = batches.len();
        batches.extend(
            encoded
                .batches
                .into_iter()
                .map(|(partition, batch)| TopicBatch {
                    topic: topic.clone(),
                    partition,
                    batch,
                }),
        );
        groups.push(Group {
            topic: topic.clone(),
            partitions: batches[start..].iter().map(|b| b.partition).collect(),
            batches: start..batches.len(),
            placement: encoded.placement,
            targets,
        });
    };
    for (t, (recs, targets)) in outputs.into_iter().zip(output_targets).enumerate() {
        if recs.is_empty() {
            continue;
        }
        let topic = &dest.topics[t];
        // Without a canary the lineage is the same for every output: stored once per
        // batch.
        let shared: &[(&str, &[u8])] = if cx.chain.lineage.is_empty() || cx.chain.has_canary() {
            &[]
        } else {
            &[(LINEAGE_HEADER, cx.chain.lineage.as_bytes())]
        };
        let encoded = produce::encode(topic, &recs, shared, cx.sticky, now, cx.max_record_bytes)?;
        add(topic, encoded, targets, &mut batches);
    }
    for (t, (recs, targets)) in dead.into_iter().zip(dead_targets).enumerate() {
        if recs.is_empty() {
            continue;
        }
        let topic = &dest.topics[t];
        let encoded = produce::encode(topic, &recs, &[], cx.sticky, now, cx.max_record_bytes)?;
        add(topic, encoded, targets, &mut batches);
    }
    Ok(Plan {
        batches,
        groups,
        results,
    })
}

/// One output as the encoder reads it: the plugin's event in place, with the
/// router's key (if it chose one), the pinned partition and the input's trace.
struct Out<'a> {
    event: packed::Event<'a>,
    key: Option<&'a [u8]>,
    partition: Option<u32>,
    /// The input's `traceparent`, when the output lacks one.
    trace: Option<&'a [u8]>,
    /// Its own lineage, when a canary runs in the chain.
    lineage: Option<&'a [u8]>,
}

impl produce::Record for Out<'_> {
    fn key(&self) -> Option<&[u8]> {
        self.key
    }

    fn value(&self) -> Option<&[u8]> {
        self.event.value
    }

    fn value_is_json(&self) -> bool {
        self.event.flags & FLAG_VALUE_JSON != 0
    }

    fn partition(&self) -> Option<u32> {
        self.partition
    }

    fn headers(&self) -> impl Iterator<Item = (&str, &[u8])> {
        self.event
            .headers()
            .chain(self.trace.map(|t| (TRACEPARENT, t)))
            .chain(self.lineage.map(|l| (LINEAGE_HEADER, l)))
    }
}

/// Grows per-topic lists to hold topic `t`.
fn grow<T>(records: &mut Vec<Vec<T>>, targets: &mut Vec<Vec<(u32, bool)>>, t: usize) {
    while records.len() <= t {
        records.push(Vec::new());
        targets.push(Vec::new());
    }
}

/// `reject` fails the request; `skip` and `dead_letter` mark the record's result.
/// Every action is counted on the plugin.
fn apply_policies(
    cx: &PlanContext<'_>,
    failures: &mut [Failure],
    results: &mut [RecordResult],
) -> Result<()> {
    if let Some(f) = failures
        .iter()
        .find(|f| cx.chain.steps[f.step].on_error == OnError::Reject)
    {
        let step = &cx.chain.steps[f.step];
        if let Some(slot) = &step.slot {
            slot.note_policy(PolicyAction::Rejected, cx.partitions.len());
        }
        return Err(BrokerError::PluginRejected {
            index: f.origin as usize,
            failure: Box::new(f.error.clone()),
        });
    }
    for f in failures.iter() {
        let step = &cx.chain.steps[f.step];
        let action = match step.on_error {
            OnError::Skip => PolicyAction::Skipped,
            _ => PolicyAction::DeadLettered,
        };
        if let Some(slot) = &step.slot {
            slot.note_policy(action, 1);
        }
        let result = &mut results[f.origin as usize];
        if result.error.is_none() {
            result.error = Some(f.error.clone());
        }
    }
    Ok(())
}

impl Plan {
    /// Where everything went, given the base offsets the append of
    /// [`Plan::batches`] returned.
    pub(crate) fn finish(mut self, bases: &[u64]) -> Vec<RecordResult> {
        let mut results = std::mem::take(&mut self.results);
        self.place(&mut results, bases);
        results
    }

    /// [`finish`](Self::finish) without consuming the plan: the answer for `bases`.
    pub(crate) fn answer(&self, bases: &[u64]) -> Vec<RecordResult> {
        let mut results = self.results.clone();
        self.place(&mut results, bases);
        results
    }

    fn place(&self, results: &mut [RecordResult], bases: &[u64]) {
        for g in &self.groups {
            let name: Arc<str> = Arc::from(g.topic.name());
            let positions: Vec<RecordPosition> =
                produce::positions(&g.partitions, &bases[g.batches.clone()], &g.placement);
            for (pos, &(origin, dead)) in positions.into_iter().zip(&g.targets) {
                let placed = Placed {
                    topic: name.clone(),
                    partition: pos.partition,
                    offset: pos.offset,
                };
                let r = &mut results[origin as usize];
                if dead {
                    r.dead_letter = Some(placed);
                } else {
                    r.outputs.push(placed);
                }
            }
        }
    }
}
