//! What a group looks like from outside: the groups there are, their members and
//! assignments, committed offsets and lag.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;
use std::time::Instant;

use weir_storage::{ReadLimits, Topic};

use super::offsets::{decode_offset, group_prefix, validate_group_name};
use super::roster::Want;
use super::{GroupInfo, Groups, MemberInfo, PartitionLag};
use crate::error::{BrokerError, Result};

impl Groups {
    /// Names of all groups with live members or committed offsets.
    pub fn list(&self) -> Result<Vec<String>> {
        let mut names: BTreeSet<String> = BTreeSet::new();
        for entry in self.inner.groups.iter() {
            let mut st = entry.value().state.lock();
            if self.shared().is_none() {
                st.evict_expired(self.inner.session_timeout);
            }
            if !st.members.is_empty() {
                names.insert(entry.key().clone());
            }
        }
        names.extend(self.external_names());
        if self.shared().is_some() {
            names.extend(self.roster_groups()?);
        }
        for (key, _) in self.inner.log.kv_scan(b"group/")? {
            let rest = &key[b"group/".len()..];
            if let Some(end) = rest.iter().position(|&b| b == 0) {
                names.insert(String::from_utf8_lossy(&rest[..end]).into_owned());
            }
        }
        Ok(names.into_iter().collect())
    }

    /// The group's committed offsets and when they were committed, by (topic,
    /// partition), over the topics that exist.
    fn committed_all(
        &self,
        group: &str,
        topics: &[Arc<Topic>],
    ) -> Result<BTreeMap<(String, u32), (u64, i64)>> {
        let by_id: HashMap<u32, &Arc<Topic>> = topics.iter().map(|t| (t.id(), t)).collect();
        let mut committed = BTreeMap::new();
        let prefix = group_prefix(group);
        for (key, value) in self.inner.log.kv_scan(&prefix)? {
            let rest = &key[prefix.len()..];
            if rest.len() != 8 {
                continue;
            }
            let id = u32::from_be_bytes([rest[0], rest[1], rest[2], rest[3]]);
            let p = u32::from_be_bytes([rest[4], rest[5], rest[6], rest[7]]);
            if let (Some(t), Some(v)) = (by_id.get(&id), decode_offset(&value)) {
                committed.insert((t.name().to_string(), p), v);
            }
        }
        Ok(committed)
    }

    /// Records of `topics` the group has not consumed: from its committed offsets (or
    /// the log start) to the high watermarks. Answered from memory and the offsets,
    /// without reading records (unlike [`describe`](Self::describe)'s age of the
    /// oldest).
    pub fn lag_records(&self, group: &str, topics: &[String]) -> Result<u64> {
        validate_group_name(group)?;
        let all = self.inner.log.topics();
        let committed = self.committed_all(group, &all)?;
        let mut lag = 0;
        for topic in all.iter().filter(|t| topics.iter().any(|n| n == t.name())) {
            for p in 0..topic.partition_count() {
                let part = topic.partition(p)?;
                let (start, hw) = (part.log_start_offset(), part.high_watermark());
                let c = committed.get(&(topic.name().to_string(), p));
                let from = c.map_or(start, |(o, _)| (*o).max(start)).min(hw);
                lag += self.inner.log.records_between(topic, p, from, hw);
            }
        }
        Ok(lag)
    }

    /// Members, assignments, committed offsets and lag of a group.
    pub async fn describe(&self, group: &str) -> Result<GroupInfo> {
        validate_group_name(group)?;
        let topics = self.inner.log.topics();
        let committed = self.committed_all(group, &topics)?;
        if self.shared().is_some() {
            self.update_roster(&self.group(group), group, Want::Read)
                .await?;
        }
        let (generation, members, owners) = match self.inner.groups.get(group).map(|g| g.clone()) {
            Some(g) => {
                let mut st = g.state.lock();
                // In a shared store the roster (read above) decides who is alive.
                if self.shared().is_none()
                    && st.evict_expired(self.inner.session_timeout)
                    && st.rebalance(&self.partition_counts())
                {
                    g.changed.notify_waiters();
                }
                let now = Instant::now();
                let members: Vec<MemberInfo> = st
                    .members
                    .iter()
                    .map(|(id, m)| MemberInfo {
                        member: id.clone(),
                        assignments: m
                            .topics
                            .iter()
                            .map(|t| (t.clone(), st.assigned(t, id)))
                            .collect(),
                        idle_ms: if m.in_flight > 0 {
                            0
                        } else {
                            now.duration_since(m.last_seen).as_millis() as u64
                        },
                    })
                    .collect();
                (st.generation, members, st.owners.clone())
            }
            None => (0, Vec::new(), HashMap::new()),
        };
        if members.is_empty() && committed.is_empty() && !self.inner.external.contains_key(group) {
            return Err(BrokerError::GroupNotFound(group.to_string()));
        }
        let mut topic_names: BTreeSet<String> = committed.keys().map(|(t, _)| t.clone()).collect();
        topic_names.extend(owners.keys().cloned());
        let mut partitions = Vec::new();
        let now = weir_storage::now_ms();
        for name in topic_names {
            let Some(topic) = topics.iter().find(|t| t.name() == name) else {
                continue;
            };
            for p in 0..topic.partition_count() {
                let part = topic.partition(p)?;
                let (start, hw) = (part.log_start_offset(), part.high_watermark());
                let c = committed.get(&(name.clone(), p)).copied();
                let from = c.map_or(start, |(o, _)| o.max(start)).min(hw);
                let lag_records = self.inner.log.records_between(topic, p, from, hw);
                let lag_ms = if lag_records == 0 {
                    0
                } else {
                    let r = self
                        .inner
                        .log
                        .read(
                            topic,
                            p,
                            from,
                            ReadLimits {
                                max_records: 1,
                                max_bytes: 1,
                            },
                        )
                        .await?;
                    r.records()
                        .next()
                        .map_or(0, |rec| (now - rec.timestamp_ms).max(0) as u64)
                };
                partitions.push(PartitionLag {
                    topic: name.clone(),
                    partition: p,
                    committed_offset: c.map(|(o, _)| o),
                    committed_at_ms: c.map(|(_, at)| at),
                    high_watermark: hw,
                    log_start_offset: start,
                    lag_records,
                    lag_ms,
                    owner: owners
                        .get(&name)
                        .and_then(|o| o.get(p as usize))
                        .cloned()
                        .flatten(),
                });
            }
        }
        let mut info = GroupInfo {
            group: group.to_string(),
            generation,
            members,
            partitions,
        };
        self.add_external(&mut info);
        Ok(info)
    }
}
