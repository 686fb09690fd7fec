//! Idempotent produce: a retried request gets the first attempt's answer, and what it
//! stores is stored once.
//!
//! A request is named in one of two ways:
//! - [`keys`]: an `Idempotency-Key` the client picks per request, scoped to topic and
//!   principal, remembered for a window;
//! - [`sessions`]: a producer id and a sequence number per partition, Kafka's
//!   idempotent producer, for clients that send many requests.
//!
//! Either way the answer is stored in the same atomic write as the records
//! ([`note`]): after a crash both exist or neither does, so a retry after a restart
//! finds the answer exactly when the records were stored. A publish that fails stores
//! nothing and is not remembered: its retry runs again.
//!
//! An attempt, once prepared, is appended by a task of its own, so a client that hangs
//! up cannot leave the records stored but the answer unrecorded.

pub mod keys;
pub(crate) mod note;
pub mod sessions;

use std::sync::Arc;
use std::time::Duration;

use weir_storage::{BasesNote, Log};

use crate::error::{BrokerError, Result};
use crate::partitioner::partition_for_key;
use crate::produce::NewRecord;
use crate::publish::{Prepared, Published};
use crate::{Acks, Broker, KvOp, Topic};
use note::StoredAnswer;
use sessions::{Session, Verdict};

/// Bounds of the dedup state (`[idempotence]` in weir.toml).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IdempotenceOptions {
    /// How long an idempotency key is remembered.
    pub key_window: Duration,
    /// Most keys remembered; beyond it the oldest are forgotten early (counted).
    pub max_keys: usize,
    /// A producer session idle this long is forgotten.
    pub session_idle: Duration,
    /// Most producer sessions (per topic partition) kept; beyond it idle ones go first.
    pub max_sessions: usize,
}

impl Default for IdempotenceOptions {
    fn default() -> Self {
        Self {
            key_window: Duration::from_secs(600),
            max_keys: 200_000,
            session_idle: Duration::from_secs(24 * 3600),
            max_sessions: 10_000,
        }
    }
}

/// How a request names itself for retries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Retry<'a> {
    /// An `Idempotency-Key`, scoped to the topic and the principal that sent it.
    Key {
        /// Who sent it (`anonymous` when authentication is off).
        principal: &'a str,
        /// The key.
        key: &'a str,
    },
    /// A producer session: the producer's id and this request's number among its
    /// requests to the partition the records go to.
    Session {
        /// The producer's id.
        producer: &'a str,
        /// The request's sequence number (0 first).
        sequence: u64,
        /// How many numbers the request takes: 1 for an HTTP request (requests are
        /// numbered), its record count for a Kafka batch (records are).
        span: u64,
        /// Where sequences wrap to 0 (Kafka's: `i32::MAX + 1`), if they do.
        wraps_at: Option<u64>,
    },
}

/// The answer to an idempotent publish.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answered {
    /// What the request stored (the first attempt's answer, for a repeat).
    pub published: Published,
    /// Whether this was a repeat answered from memory, storing nothing.
    pub replayed: bool,
}

/// The dedup state's counters.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct IdempotenceStats {
    /// Keys remembered now.
    pub keys: usize,
    /// Keys forgotten before their window ended (the memory bound).
    pub keys_evicted: u64,
    /// Producer sessions known now.
    pub sessions: usize,
}

/// The dedup state of one broker.
pub(crate) struct Idempotence {
    keys: Arc<keys::KeyTable>,
    sessions: sessions::Sessions,
    /// Why the stored state could not be read at start: idempotent publishes are
    /// refused rather than risk a duplicate.
    broken: Option<String>,
}

impl std::fmt::Debug for Idempotence {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Idempotence").finish_non_exhaustive()
    }
}

impl Idempotence {
    /// The state stored in `log`, read back.
    pub(crate) fn load(log: &dyn Log, options: IdempotenceOptions) -> Self {
        let ms = |d: Duration| i64::try_from(d.as_millis()).unwrap_or(i64::MAX);
        let mut me = Self {
            keys: Arc::new(keys::KeyTable::new(
                ms(options.key_window),
                options.max_keys,
            )),
            sessions: sessions::Sessions::new(ms(options.session_idle), options.max_sessions),
            broken: None,
        };
        if let Err(e) = me.restore(log) {
            tracing::error!(error = %e, "the idempotency state cannot be read; idempotent publishes are refused");
            me.broken = Some(e);
        }
        me
    }

    fn restore(&self, log: &dyn Log) -> std::result::Result<(), String> {
        let now = crate::now_ms();
        let mut keys = Vec::new();
        for (k, v) in log.kv_scan(keys::PREFIX).map_err(|e| e.to_string())? {
            let scope = stored_scope(&k, keys::PREFIX)?;
            let note: keys::KeyNote = note::decode(&v).ok_or_else(|| damaged(&k))?;
            keys.push((scope, note));
        }
        keys.sort_by_key(|(_, n)| n.at_ms);
        for (scope, note) in keys {
            self.keys.restore(scope, note, now);
        }
        for (k, v) in log.kv_scan(sessions::PREFIX).map_err(|e| e.to_string())? {
            let scope = stored_scope(&k, sessions::PREFIX)?;
            let note: sessions::SessionNote = note::decode(&v).ok_or_else(|| damaged(&k))?;
            self.sessions.restore(scope, note, now);
        }
        Ok(())
    }

    pub(crate) fn stats(&self) -> IdempotenceStats {
        let k = self.keys.stats();
        IdempotenceStats {
            keys: k.remembered,
            keys_evicted: k.evicted,
            sessions: self.sessions.len(),
        }
    }

    /// Removals of forgotten notes, to ride along with the next write.
    fn removals(&self) -> Vec<KvOp> {
        let mut r = self.keys.take_removals();
        r.extend(self.sessions.take_removals());
        r.into_iter().map(|k| (k, None)).collect()
    }
}

/// A stored note's scope: its key without the prefix and the trailing time.
fn stored_scope(key: &[u8], prefix: &[u8]) -> std::result::Result<Box<[u8]>, String> {
    key.strip_prefix(prefix)
        .and_then(|rest| rest.get(..rest.len().checked_sub(8)?))
        .map(Into::into)
        .ok_or_else(|| damaged(key))
}

fn damaged(key: &[u8]) -> String {
    format!(
        "stored idempotency note {} does not decode",
        String::from_utf8_lossy(key)
    )
}

/// A checksum of what a request asks to store, to catch a key reused for a different
/// request.
fn fingerprint(records: &[NewRecord<'_>]) -> u32 {
    let mut crc = 0u32;
    let field = |crc: &mut u32, bytes: Option<&[u8]>| {
        let len = bytes.map_or(u64::MAX, |b| b.len() as u64);
        *crc = crc32c::crc32c_append(*crc, &len.to_le_bytes());
        if let Some(b) = bytes {
            *crc = crc32c::crc32c_append(*crc, b);
        }
    };
    for r in records {
        field(
            &mut crc,
            r.partition.map(u32::to_le_bytes).as_ref().map(|b| &b[..]),
        );
        field(&mut crc, Some(&[u8::from(r.value_is_json)]));
        field(&mut crc, r.key.as_deref());
        field(&mut crc, r.value.as_deref());
        for (n, v) in &r.headers {
            field(&mut crc, Some(n.as_bytes()));
            field(&mut crc, Some(v));
        }
    }
    crc
}

/// The one partition a sequenced request's records go to.
fn single_partition(topic: &Topic, records: &[NewRecord<'_>]) -> Result<u32> {
    let mut only = None;
    for (i, r) in records.iter().enumerate() {
        let p = match (r.partition, r.key.as_deref()) {
            (Some(p), _) => {
                topic.partition(p)?;
                p
            }
            (None, Some(key)) => partition_for_key(key, topic.partition_count()),
            (None, None) => {
                return Err(BrokerError::InvalidRequest(format!(
                    "record {i} has neither key nor partition: a sequenced request's partition must not depend on the attempt"
                )));
            }
        };
        if only.is_some_and(|q| q != p) {
            return Err(BrokerError::InvalidRequest(
                "a sequenced request's records must all go to one partition (sequences are per partition)"
                    .into(),
            ));
        }
        only = Some(p);
    }
    only.ok_or_else(|| BrokerError::InvalidRequest("no records".into()))
}

impl Broker {
    /// [`publish`](Self::publish) that a retry cannot duplicate: a repeat of a
    /// request named by `retry` gets the first attempt's answer and stores nothing; a
    /// repeat that arrives while the first is in flight waits for its outcome.
    pub async fn publish_once(
        &self,
        topic: &Arc<Topic>,
        records: &[NewRecord<'_>],
        acks: Acks,
        retry: Retry<'_>,
    ) -> Result<Answered> {
        if records.is_empty() {
            return Ok(Answered {
                published: Published::Plain(Vec::new()),
                replayed: false,
            });
        }
        let dedup = self.idempotence.clone();
        if let Some(why) = &dedup.broken {
            return Err(BrokerError::Internal(format!(
                "idempotent publishes are refused: {why}"
            )));
        }
        match retry {
            Retry::Key { principal, key } => {
                self.publish_keyed(&dedup, topic, records, acks, principal, key)
                    .await
            }
            Retry::Session {
                producer,
                sequence,
                span,
                wraps_at,
            } => {
                let numbering = (sequence, span, wraps_at);
                self.publish_sequenced(&dedup, topic, records, acks, producer, numbering)
                    .await
            }
        }
    }

    async fn publish_keyed(
        &self,
        dedup: &Arc<Idempotence>,
        topic: &Arc<Topic>,
        records: &[NewRecord<'_>],
        acks: Acks,
        principal: &str,
        key: &str,
    ) -> Result<Answered> {
        let scope = keys::scope(topic.id(), principal, key)?;
        let fingerprint = fingerprint(records);
        let guard = match dedup.keys.claim(scope.clone(), fingerprint, key).await? {
            keys::Claim::Replay(answer) => return Ok(replay(&answer)),
            keys::Claim::Mine(guard) => guard,
        };
        let prepared = self.prepare(topic, records).await?;
        let at_ms = crate::now_ms();
        let note = BasesNote {
            key: keys::note_key(&scope, at_ms),
            prefix: note::encode(&keys::KeyNote {
                at_ms,
                fingerprint,
                answer: note::template(&prepared.answer, prepared.batches.len()),
            }),
        };
        self.append_remembering(dedup, prepared, note, acks, move |stored| {
            guard.finish(at_ms, fingerprint, stored);
        })
        .await
    }

    async fn publish_sequenced(
        &self,
        dedup: &Arc<Idempotence>,
        topic: &Arc<Topic>,
        records: &[NewRecord<'_>],
        acks: Acks,
        producer: &str,
        (sequence, span, wraps_at): (u64, u64, Option<u64>),
    ) -> Result<Answered> {
        let partition = single_partition(topic, records)?;
        let scope = sessions::scope(topic.id(), partition, producer)?;
        let now = crate::now_ms();
        let mut slot = dedup.sessions.slot(&scope, now).lock_owned().await;
        dedup.sessions.expire_if_idle(&scope, &mut slot, now);
        let sequence = match Session::judge(&slot, sequence, wraps_at, producer, partition)? {
            (Verdict::Repeat(answer), _) => return Ok(replay(&answer)),
            (Verdict::Next, counted) => counted,
        };
        let prepared = self.prepare(topic, records).await?;
        let at_ms = crate::now_ms();
        let started_ms = slot.as_ref().map_or(at_ms, |s| s.started_ms);
        let note = BasesNote {
            key: sessions::note_key(&scope, started_ms),
            prefix: note::encode(&sessions::SessionNote {
                started_ms,
                at_ms,
                sequence,
                span,
                answer: note::template(&prepared.answer, prepared.batches.len()),
            }),
        };
        self.append_remembering(dedup, prepared, note, acks, move |stored| {
            Session::record(&mut slot, started_ms, at_ms, (sequence, span), stored);
        })
        .await
    }

    /// Appends `prepared` with its `note` (and the removals of forgotten notes) on a
    /// task of its own, so it finishes even if the caller stops waiting; then hands
    /// the answer to `remember`.
    async fn append_remembering(
        &self,
        dedup: &Idempotence,
        prepared: Prepared,
        note: BasesNote,
        acks: Acks,
        remember: impl FnOnce(Arc<StoredAnswer>) + Send + 'static,
    ) -> Result<Answered> {
        let (log, removals) = (self.log.clone(), dedup.removals());
        let attempt = async move {
            let Prepared { batches, answer } = prepared;
            let bases = log.append_noting(batches, removals, note, acks).await?;
            let published = answer.resolve(&bases);
            remember(Arc::new(StoredAnswer::from_published(&published)));
            Ok::<_, BrokerError>(published)
        };
        let published = tokio::spawn(attempt).await.map_err(|e| {
            BrokerError::Internal(format!("an idempotent publish did not finish: {e}"))
        })??;
        Ok(Answered {
            published,
            replayed: false,
        })
    }

    /// The dedup state's counters.
    pub fn idempotence_stats(&self) -> IdempotenceStats {
        self.idempotence.stats()
    }
}

fn replay(answer: &StoredAnswer) -> Answered {
    Answered {
        published: answer.to_published(),
        replayed: true,
    }
}
