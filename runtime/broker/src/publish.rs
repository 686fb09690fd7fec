//! The publish path: a request's records, through the topic's pipeline if it has one,
//! into one atomic append; then the answer.
//!
//! A publish is prepared first ([`Prepared`]: the batches to append and how to answer
//! once their base offsets are known), then appended. The split lets an idempotent
//! publish store the answer's template with the records in the same write
//! ([`crate::idempotence`]).

use weir_host::BatchInfo;
use weir_host::packed::{FLAG_VALUE_JSON, Writer};
use weir_storage::TopicBatch;

use crate::error::{BrokerError, Result};
use crate::pipeline::plan::Plan;
use crate::pipeline::{self, RecordResult};
use crate::produce::{self, NewRecord, RecordPosition};
use crate::{Acks, Broker, KvOp, Topic, cluster};

use std::sync::Arc;

/// What a publish returns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Published {
    /// The topic has no pipeline: each record's position, in request order.
    Plain(Vec<RecordPosition>),
    /// The records went through the topic's pipeline: per input record, where its
    /// outputs went, or that it was filtered, skipped or dead-lettered.
    Pipeline(Vec<RecordResult>),
}

/// How a prepared request is answered once its batches have their base offsets.
pub(crate) enum Answer {
    /// No pipeline: per batch its partition, per record its partition and index.
    Plain {
        partitions: Vec<u32>,
        placement: Vec<(u32, u32)>,
    },
    /// Through a pipeline.
    Pipeline(Plan),
}

impl Answer {
    /// The answer, given the bases the append returned.
    pub(crate) fn resolve(self, bases: &[u64]) -> Published {
        match self {
            Answer::Plain {
                partitions,
                placement,
            } => Published::Plain(produce::positions(&partitions, bases, &placement)),
            Answer::Pipeline(plan) => Published::Pipeline(plan.finish(bases)),
        }
    }

    /// The answer without consuming the plan.
    pub(crate) fn resolve_ref(&self, bases: &[u64]) -> Published {
        match self {
            Answer::Plain {
                partitions,
                placement,
            } => Published::Plain(produce::positions(partitions, bases, placement)),
            Answer::Pipeline(plan) => Published::Pipeline(plan.answer(bases)),
        }
    }
}

/// A request ready to append.
pub(crate) struct Prepared {
    pub batches: Vec<TopicBatch>,
    pub answer: Answer,
}

impl Broker {
    /// Publishes `records` to `topic` through its pipeline, if it has one; otherwise
    /// as [`produce`](Self::produce). With a pipeline, everything the request
    /// produces — outputs on this and other topics, dead letters — is stored with one
    /// atomic append and acknowledged together.
    pub async fn publish(
        &self,
        topic: &Arc<Topic>,
        records: &[NewRecord<'_>],
        acks: Acks,
    ) -> Result<Published> {
        self.publish_committing(topic, records, Vec::new(), acks)
            .await
    }

    /// [`publish`](Self::publish), with key-value writes (a source's cursor) stored
    /// in the same atomic append as everything the request produces: after a crash
    /// either the records and the writes exist, or neither.
    pub async fn publish_committing(
        &self,
        topic: &Arc<Topic>,
        records: &[NewRecord<'_>],
        commit: Vec<KvOp>,
        acks: Acks,
    ) -> Result<Published> {
        self.publish_guarded(topic, records, commit, acks, None)
            .await
    }

    /// [`publish_committing`](Self::publish_committing) by the holder of a lease
    /// (a connector's, in cluster mode): stored only while `fence` stands, so a node
    /// that lost the lease publishes and commits nothing (`version_conflict`).
    pub async fn publish_fenced(
        &self,
        topic: &Arc<Topic>,
        records: &[NewRecord<'_>],
        commit: Vec<KvOp>,
        fence: Option<&cluster::Fence>,
    ) -> Result<Published> {
        self.publish_guarded(topic, records, commit, Acks::All, fence)
            .await
    }

    async fn publish_guarded(
        &self,
        topic: &Arc<Topic>,
        records: &[NewRecord<'_>],
        commit: Vec<KvOp>,
        acks: Acks,
        fence: Option<&cluster::Fence>,
    ) -> Result<Published> {
        if records.is_empty() {
            self.commit_only(commit, acks, fence).await?;
            return Ok(Published::Plain(Vec::new()));
        }
        let Prepared { batches, answer } = self.prepare(topic, records).await?;
        let bases = self.append(batches, commit, acks, fence).await?;
        Ok(answer.resolve(&bases))
    }

    /// The batches `records` make on `topic`, through its pipeline if it has one.
    /// `records` is not empty.
    pub(crate) async fn prepare(
        &self,
        topic: &Arc<Topic>,
        records: &[NewRecord<'_>],
    ) -> Result<Prepared> {
        let chain = match &self.pipelines {
            Some(p) => p.chain(topic)?,
            None => pipeline::Chain::default(),
        };
        if chain.is_empty() {
            return self.prepare_plain(topic, records);
        }
        let pipelines = self.pipelines.clone().expect("a chain needs pipelines");
        let now = weir_storage::now_ms();
        let mut writer = Writer::with_capacity(records.iter().map(|r| r.size() + 32).sum());
        let mut partitions = Vec::with_capacity(records.len());
        for (index, r) in records.iter().enumerate() {
            let size = r.size();
            if size > self.limits.max_record_bytes {
                return Err(BrokerError::RecordTooLarge {
                    index,
                    size,
                    limit: self.limits.max_record_bytes,
                });
            }
            if let Some(p) = r.partition {
                topic.partition(p)?;
            }
            partitions.push(r.partition);
            writer.push(
                now,
                if r.value_is_json { FLAG_VALUE_JSON } else { 0 },
                r.key.as_deref(),
                r.value.as_deref(),
                r.headers.iter().map(|(n, v)| (n.as_ref(), v.as_ref())),
            );
        }
        let input = writer.finish();
        let (log, sticky, max_record_bytes) = (
            self.log.clone(),
            self.sticky.clone(),
            self.limits.max_record_bytes,
        );
        let topic_for_plan = topic.clone();
        let permit = pipelines.run_slot().await;
        let mut plan = tokio::task::spawn_blocking(move || {
            let _permit = permit;
            let info = BatchInfo {
                topic: topic_for_plan.name().to_string(),
                partitions: topic_for_plan.partition_count(),
            };
            let batch = pipeline::exec::Batch::input(&input, partitions.len());
            let executed = pipeline::exec::run(&chain, &info, batch);
            let cx = pipeline::plan::PlanContext {
                log: &*log,
                topic: &topic_for_plan,
                chain: &chain,
                options: pipelines.options(),
                sticky: &sticky,
                max_record_bytes,
                partitions: &partitions,
            };
            pipeline::plan::build(&cx, &input, executed)
        })
        .await
        .map_err(|e| BrokerError::Internal(format!("pipeline did not finish: {e}")))??;
        Ok(Prepared {
            batches: std::mem::take(&mut plan.batches),
            answer: Answer::Pipeline(plan),
        })
    }

    fn prepare_plain(&self, topic: &Arc<Topic>, records: &[NewRecord<'_>]) -> Result<Prepared> {
        let (batches, partitions, placement) = self.encode_plain(topic, records)?;
        Ok(Prepared {
            batches,
            answer: Answer::Plain {
                partitions,
                placement,
            },
        })
    }

    /// The batches of `records` without a pipeline, each batch's partition, and each
    /// record's partition and index among that partition's records.
    #[allow(clippy::type_complexity)]
    fn encode_plain(
        &self,
        topic: &Arc<Topic>,
        records: &[NewRecord<'_>],
    ) -> Result<(Vec<TopicBatch>, Vec<u32>, Vec<(u32, u32)>)> {
        let produce::Encoded { batches, placement } = produce::encode(
            topic,
            records,
            &[],
            &self.sticky,
            weir_storage::now_ms(),
            self.limits.max_record_bytes,
        )?;
        let partitions: Vec<u32> = batches.iter().map(|(p, _)| *p).collect();
        let batches = batches
            .into_iter()
            .map(|(partition, batch)| TopicBatch {
                topic: topic.clone(),
                partition,
                batch,
            })
            .collect();
        Ok((batches, partitions, placement))
    }

    /// Key-value writes alone, fenced when a lease holder writes.
    async fn commit_only(
        &self,
        commit: Vec<KvOp>,
        acks: Acks,
        fence: Option<&cluster::Fence>,
    ) -> Result<()> {
        if fence.is_some() {
            self.append(Vec::new(), commit, acks, fence).await?;
        } else {
            self.log.kv_write(commit).await?;
        }
        Ok(())
    }

    /// One atomic append, fenced when a lease holder writes.
    async fn append(
        &self,
        batches: Vec<TopicBatch>,
        commit: Vec<KvOp>,
        acks: Acks,
        fence: Option<&cluster::Fence>,
    ) -> Result<Vec<u64>> {
        let Some(fence) = fence else {
            return Ok(self.log.append(batches, commit, acks).await?);
        };
        let kv = self.log.shared_kv().ok_or_else(|| {
            BrokerError::Internal("a fenced write needs a log several nodes share".into())
        })?;
        if batches.is_empty() {
            kv.write_if(&fence.key, fence.version, commit).await?;
            return Ok(Vec::new());
        }
        Ok(kv
            .append_if(&fence.key, fence.version, batches, commit)
            .await?)
    }

    /// Records for several topics and key-value writes in one atomic append, past any
    /// pipeline: what a stream processor's batch makes (its outputs, its state changes
    /// and the offsets it consumed, see [`Groups::commit_ops`](crate::groups::Groups::commit_ops)),
    /// so after a crash all of it exists or none does and the input is neither lost
    /// nor processed twice. With `fence`, stored only while the lease stands.
    /// Returns each output's record positions, in `outputs` order.
    pub async fn produce_committing(
        &self,
        outputs: &[(Arc<Topic>, Vec<NewRecord<'_>>)],
        commit: Vec<KvOp>,
        acks: Acks,
        fence: Option<&cluster::Fence>,
    ) -> Result<Vec<Vec<RecordPosition>>> {
        let mut batches = Vec::new();
        let mut encoded = Vec::with_capacity(outputs.len());
        for (topic, records) in outputs {
            if records.is_empty() {
                encoded.push(None);
                continue;
            }
            let (topic_batches, partitions, placement) = self.encode_plain(topic, records)?;
            let first = batches.len();
            batches.extend(topic_batches);
            encoded.push(Some((first..batches.len(), partitions, placement)));
        }
        if batches.is_empty() {
            self.commit_only(commit, acks, fence).await?;
            return Ok(vec![Vec::new(); outputs.len()]);
        }
        let bases = self.append(batches, commit, acks, fence).await?;
        Ok(encoded
            .into_iter()
            .map(|e| match e {
                Some((range, partitions, placement)) => {
                    produce::positions(&partitions, &bases[range], &placement)
                }
                None => Vec::new(),
            })
            .collect())
    }

    /// Publishes `records` to `topic` atomically, past any pipeline: all are stored or
    /// none. Returns each record's partition and offset in request order, once `acks`
    /// is satisfied. A topic deleted meanwhile fails with `topic_not_found`.
    pub async fn produce(
        &self,
        topic: &Arc<Topic>,
        records: &[NewRecord<'_>],
        acks: Acks,
    ) -> Result<Vec<RecordPosition>> {
        if records.is_empty() {
            return Ok(Vec::new());
        }
        let (batches, partitions, placement) = self.encode_plain(topic, records)?;
        let bases = self.append(batches, Vec::new(), acks, None).await?;
        Ok(produce::positions(&partitions, &bases, &placement))
    }
}
