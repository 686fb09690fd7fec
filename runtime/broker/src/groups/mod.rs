//! Consumer groups: membership, partition assignment, positions and committed offsets.
//!
//! A group is named by its clients. Members join by fetching (`member` id given or
//! assigned) and stay alive by fetching again within the session timeout; a member with
//! a request in flight is always alive. Each topic a group reads is assigned on its
//! own: its partitions are dealt round-robin over the members that read it, sorted by
//! id, so the split is even and every partition has exactly one owner. Any change of
//! membership recomputes the assignment and bumps the generation; members learn their
//! new partitions in their next response.
//!
//! When several Weir nodes serve one log (cluster mode), the members live in the
//! log's shared key-value store instead, and commits are fenced by compare-and-set
//! ([`roster`]).
//!
//! Positions (the next offset to hand a member) live in memory, per member and
//! partition. Committed offsets live in storage's durable key-value tree, keyed by
//! topic *id*, so a topic deleted and created again starts with no offsets. A committed
//! offset is the next offset to read (Kafka's convention).

use std::collections::HashMap;
use std::hash::{BuildHasher, Hasher};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use dashmap::DashMap;
use parking_lot::Mutex;
use tokio::sync::Notify;
use weir_storage::{KvOp, Log, ReadLimits, ReadResult, Topic};

use crate::error::{BrokerError, Result};

mod describe;
mod external;
mod fetch;
mod membership;
mod offsets;
mod roster;

pub use external::ExternalGroup;
use membership::{Group, GroupState};
pub use offsets::validate_group_name;
use offsets::{decode_offset, encode_offset, group_prefix, offset_key};
use roster::Want;

/// Where a group starts on a partition it has no committed offset for.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum OffsetReset {
    /// The log start offset.
    #[default]
    Earliest,
    /// The high watermark: only records published from now on.
    Latest,
}

/// Where `reset` moves a group's committed offsets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResetTarget {
    /// The log start offset.
    Earliest,
    /// The high watermark.
    Latest,
    /// An explicit offset (must be within the log).
    Offset(u64),
    /// The first record at or after this time.
    Timestamp(i64),
}

/// What a group member asks for.
#[derive(Debug, Clone, Copy)]
pub struct FetchRequest<'a> {
    /// Group name.
    pub group: &'a str,
    /// Member id; `None` joins as a new member with an assigned id.
    pub member: Option<&'a str>,
    /// Topic to read.
    pub topic: &'a str,
    /// Records and bytes per response.
    pub limits: ReadLimits,
    /// How long to wait at the end of the log.
    pub wait: Duration,
    /// Commit what the member's previous fetch of this topic returned.
    pub auto_commit: bool,
    /// Where a partition without a committed offset starts.
    pub reset: OffsetReset,
}

/// One fetch of a group member.
#[derive(Debug)]
pub struct GroupFetch {
    /// The member's id (assigned if the request had none).
    pub member: String,
    /// The assignment generation.
    pub generation: u64,
    /// Partitions of the topic assigned to this member.
    pub partitions: Vec<u32>,
    /// Records read, per partition.
    pub results: Vec<(u32, ReadResult)>,
}

/// A committed offset with its lag.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartitionLag {
    /// Topic name.
    pub topic: String,
    /// Partition.
    pub partition: u32,
    /// Next offset the group reads, if it committed one.
    pub committed_offset: Option<u64>,
    /// When the offset was committed (ms since the epoch).
    pub committed_at_ms: Option<i64>,
    /// The partition's high watermark.
    pub high_watermark: u64,
    /// The partition's log start offset.
    pub log_start_offset: u64,
    /// Records not yet consumed (from the committed offset, or from the log start).
    pub lag_records: u64,
    /// Age of the oldest unconsumed record, 0 when there is none.
    pub lag_ms: u64,
    /// Member that owns the partition now.
    pub owner: Option<String>,
}

/// A member as described by `describe`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemberInfo {
    /// Member id.
    pub member: String,
    /// Assigned partitions per topic.
    pub assignments: Vec<(String, Vec<u32>)>,
    /// Milliseconds since its last request ended (0 while one is in flight).
    pub idle_ms: u64,
}

/// A group as described by `describe`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupInfo {
    /// Group name.
    pub group: String,
    /// Assignment generation.
    pub generation: u64,
    /// Live members.
    pub members: Vec<MemberInfo>,
    /// Every partition of every topic the group reads or has offsets for.
    pub partitions: Vec<PartitionLag>,
}

/// The group coordinator. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Groups {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    log: Arc<dyn Log>,
    groups: DashMap<String, Arc<Group>>,
    /// Groups another protocol coordinates (Kafka clients), by name.
    external: DashMap<String, ExternalGroup>,
    session_timeout: Duration,
    member_seq: AtomicU64,
}

impl Groups {
    /// A coordinator keeping offsets in `log` with the given session timeout.
    pub fn new(log: Arc<dyn Log>, session_timeout: Duration) -> Self {
        Self {
            inner: Arc::new(Inner {
                log,
                groups: DashMap::new(),
                external: DashMap::new(),
                session_timeout,
                member_seq: AtomicU64::new(1),
            }),
        }
    }

    /// The session timeout.
    pub fn session_timeout(&self) -> Duration {
        self.inner.session_timeout
    }

    fn group(&self, name: &str) -> Arc<Group> {
        self.inner
            .groups
            .entry(name.to_string())
            .or_insert_with(|| {
                Arc::new(Group {
                    state: Mutex::new(GroupState::default()),
                    changed: Notify::new(),
                })
            })
            .clone()
    }

    fn partition_counts(&self) -> HashMap<String, u32> {
        self.inner
            .log
            .topics()
            .iter()
            .map(|t| (t.name().to_string(), t.partition_count()))
            .collect()
    }

    fn new_member_id(&self) -> String {
        let n = self.inner.member_seq.fetch_add(1, Ordering::Relaxed);
        let mut h = std::collections::hash_map::RandomState::new().build_hasher();
        h.write_u64(n);
        format!("m-{n}-{:08x}", h.finish() as u32)
    }

    /// The committed offset of one partition and when it was committed.
    pub fn committed(
        &self,
        group: &str,
        topic: &Topic,
        partition: u32,
    ) -> Result<Option<(u64, i64)>> {
        Ok(self
            .inner
            .log
            .kv_get(&offset_key(group, topic, partition))?
            .and_then(|v| decode_offset(&v)))
    }

    /// Commits offsets. With `member`, it must own every partition; without, no live
    /// member may own them. Durable before it returns.
    pub async fn commit(
        &self,
        group: &str,
        member: Option<&str>,
        offsets: &[(String, u32, u64)],
    ) -> Result<()> {
        validate_group_name(group)?;
        let g = self.group(group);
        let ops = self.offset_ops(group, offsets)?;
        if self.shared().is_none() {
            self.check_owners(&g, group, member, offsets, None)?;
            self.inner.log.kv_write(ops).await?;
            return Ok(());
        }
        // Written only if the roster the owners were checked against still stands.
        self.write_fenced(&g, group, ops, |_, version| {
            self.check_owners(&g, group, member, offsets, Some(version))
        })
        .await
    }

    /// Commits offsets for the holder of a lease (a sink connector in cluster mode,
    /// which reads every partition itself and has no members): written only while
    /// `fence` stands, so a node that lost the lease commits nothing.
    pub async fn commit_fenced(
        &self,
        group: &str,
        offsets: &[(String, u32, u64)],
        fence: &crate::cluster::Fence,
    ) -> Result<()> {
        validate_group_name(group)?;
        let ops = self.offset_ops(group, offsets)?;
        let kv = self.shared().ok_or_else(|| {
            BrokerError::Internal("a fenced commit needs a log several nodes share".into())
        })?;
        kv.write_if(&fence.key, fence.version, ops).await?;
        Ok(())
    }

    /// The key-value writes that commit `offsets` for `group`, to be stored with
    /// other writes in one atomic append (a stream processor's outputs and state,
    /// [`Broker::produce_committing`](crate::Broker::produce_committing)). Checked
    /// like a commit's offsets; the caller owns the partitions (no member check).
    pub fn commit_ops(&self, group: &str, offsets: &[(String, u32, u64)]) -> Result<Vec<KvOp>> {
        validate_group_name(group)?;
        self.offset_ops(group, offsets)
    }

    /// A commit's key-value writes, every offset checked against its partition
    /// first: nothing is written if one is out of range.
    fn offset_ops(&self, group: &str, offsets: &[(String, u32, u64)]) -> Result<Vec<KvOp>> {
        let now = weir_storage::now_ms();
        let mut ops = Vec::with_capacity(offsets.len());
        for (topic, p, offset) in offsets {
            let t = self.inner.log.topic(topic)?;
            let part = t.partition(*p)?;
            let (start, hw) = (part.log_start_offset(), part.high_watermark());
            if *offset > hw || *offset < start {
                return Err(BrokerError::Storage(
                    weir_storage::StorageError::OffsetOutOfRange {
                        offset: *offset,
                        log_start_offset: start,
                        high_watermark: hw,
                    },
                ));
            }
            ops.push((offset_key(group, &t, *p), Some(encode_offset(*offset, now))));
        }
        Ok(ops)
    }

    /// Refuses unless `member` owns every partition (or, without one, no member
    /// owns them); marks a member's commit done. Without a roster version (one node)
    /// it expires members first; with one, it checks the deal of exactly that roster
    /// and returns false when the state mirrors another one by now (retry).
    fn check_owners(
        &self,
        g: &Group,
        group: &str,
        member: Option<&str>,
        offsets: &[(String, u32, u64)],
        roster_version: Option<u64>,
    ) -> Result<bool> {
        let mut st = g.state.lock();
        if let Some(version) = roster_version
            && st.roster_version != version
        {
            return Ok(false);
        }
        if roster_version.is_none()
            && st.evict_expired(self.inner.session_timeout)
            && st.rebalance(&self.partition_counts())
        {
            g.changed.notify_waiters();
        }
        for (topic, p, _) in offsets {
            let owner = st.owner(topic, *p);
            if owner != member && (member.is_some() || owner.is_some()) {
                return Err(BrokerError::NotAssigned {
                    group: group.to_string(),
                    topic: topic.clone(),
                    partition: *p,
                    owner: owner.map(str::to_string),
                });
            }
        }
        if let Some(m) = member.and_then(|m| st.members.get_mut(m)) {
            m.last_seen = Instant::now();
            for (topic, p, _) in offsets {
                m.uncommitted.remove(&(topic.clone(), *p));
            }
        }
        Ok(true)
    }

    async fn write_offsets(
        &self,
        group: &str,
        topic: &Topic,
        offsets: &[(u32, u64)],
    ) -> Result<()> {
        let now = weir_storage::now_ms();
        let ops = offsets
            .iter()
            .map(|(p, o)| (offset_key(group, topic, *p), Some(encode_offset(*o, now))))
            .collect();
        Ok(self.inner.log.kv_write(ops).await?)
    }

    /// Writes an administrator's change of the group's offsets (reset, delete), only
    /// while the group has no live member. With a shared store the write is fenced
    /// on the roster, so a member joining meanwhile on another node wins instead.
    async fn write_while_empty(&self, group: &str, ops: Vec<KvOp>) -> Result<()> {
        if self.shared().is_none() {
            return Ok(self.inner.log.kv_write(ops).await?);
        }
        let g = self.group(group);
        self.write_fenced(&g, group, ops, |roster, _| {
            if roster.members.is_empty() {
                Ok(true)
            } else {
                Err(BrokerError::GroupNotEmpty {
                    group: group.to_string(),
                    members: roster.members.len(),
                })
            }
        })
        .await
    }

    /// Removes a member at once (a clean leave), handing its partitions to the others.
    /// False when the group has no such member.
    pub async fn leave(&self, group: &str, member: &str) -> Result<bool> {
        if self.shared().is_some() {
            let g = self.group(group);
            let present = g.state.lock().members.contains_key(member)
                || self
                    .update_roster(&g, group, Want::Read)
                    .await?
                    .0
                    .members
                    .contains_key(member);
            if present {
                self.update_roster(&g, group, Want::Leave { member })
                    .await?;
            }
            return Ok(present);
        }
        let Some(g) = self.inner.groups.get(group).map(|g| g.clone()) else {
            return Ok(false);
        };
        let mut st = g.state.lock();
        let removed = st.members.remove(member).is_some();
        if removed && st.rebalance(&self.partition_counts()) {
            g.changed.notify_waiters();
        }
        Ok(removed)
    }

    /// Refuses while the group has live members, HTTP's or another protocol's
    /// (Kafka consumers): what an administrator's reset or delete needs.
    fn require_empty(&self, group: &str) -> Result<()> {
        self.require_no_http_members(group)?;
        match self.inner.external.get(group) {
            Some(v) => Err(BrokerError::GroupNotEmpty {
                group: group.to_string(),
                members: v.members.len(),
            }),
            None => Ok(()),
        }
    }

    fn require_no_http_members(&self, group: &str) -> Result<()> {
        if self.shared().is_some() {
            let members = self.roster_live(group)?;
            if members > 0 {
                return Err(BrokerError::GroupNotEmpty {
                    group: group.to_string(),
                    members,
                });
            }
            return Ok(());
        }
        if let Some(g) = self.inner.groups.get(group).map(|g| g.clone()) {
            let mut st = g.state.lock();
            st.evict_expired(self.inner.session_timeout);
            if !st.members.is_empty() {
                return Err(BrokerError::GroupNotEmpty {
                    group: group.to_string(),
                    members: st.members.len(),
                });
            }
        }
        Ok(())
    }

    /// Deletes a group's committed offsets. Refused while it has live members.
    pub async fn delete(&self, group: &str) -> Result<()> {
        validate_group_name(group)?;
        self.require_empty(group)?;
        let keys = self.inner.log.kv_scan(&group_prefix(group))?;
        let known = self.inner.groups.remove(group).is_some();
        if keys.is_empty() && !known {
            return Err(BrokerError::GroupNotFound(group.to_string()));
        }
        self.write_while_empty(group, keys.into_iter().map(|(k, _)| (k, None)).collect())
            .await
    }

    /// Moves the committed offsets of `topic` (all partitions, or those listed).
    /// Refused while the group has live members, as in Kafka. Returns the new offsets.
    pub async fn reset(
        &self,
        group: &str,
        topic_name: &str,
        partitions: Option<&[u32]>,
        target: ResetTarget,
    ) -> Result<Vec<(u32, u64)>> {
        validate_group_name(group)?;
        let topic = self.inner.log.topic(topic_name)?;
        self.require_empty(group)?;
        let all: Vec<u32> = (0..topic.partition_count()).collect();
        let mut out = Vec::new();
        for &p in partitions.unwrap_or(&all) {
            let part = topic.partition(p)?;
            let (start, hw) = (part.log_start_offset(), part.high_watermark());
            let offset = match target {
                ResetTarget::Earliest => start,
                ResetTarget::Latest => hw,
                ResetTarget::Offset(o) if o >= start && o <= hw => o,
                ResetTarget::Offset(o) => {
                    return Err(BrokerError::Storage(
                        weir_storage::StorageError::OffsetOutOfRange {
                            offset: o,
                            log_start_offset: start,
                            high_watermark: hw,
                        },
                    ));
                }
                ResetTarget::Timestamp(ts) => {
                    self.inner.log.offset_for_timestamp(&topic, p, ts).await?
                }
            };
            out.push((p, offset));
        }
        let now = weir_storage::now_ms();
        let ops = out
            .iter()
            .map(|(p, o)| (offset_key(group, &topic, *p), Some(encode_offset(*o, now))))
            .collect();
        self.write_while_empty(group, ops).await?;
        Ok(out)
    }
}

/// Marks the end of a member's request, whatever way it ends.
struct InFlight {
    group: Arc<Group>,
    member: String,
}

impl Drop for InFlight {
    fn drop(&mut self) {
        let mut st = self.group.state.lock();
        if let Some(m) = st.members.get_mut(&self.member) {
            m.in_flight = m.in_flight.saturating_sub(1);
            m.last_seen = Instant::now();
        }
    }
}
