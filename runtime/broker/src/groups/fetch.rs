//! A member's fetch: joining, being assigned partitions, reading from its positions
//! (long-polling at the end of the log), and moving those positions.

use std::sync::atomic::Ordering;
use std::time::Instant;

use weir_storage::{ReadLimits, ReadResult, Topic};

use super::membership::{Group, Member};
use super::offsets::validate_group_name;
use super::roster::Want;
use super::{FetchRequest, GroupFetch, Groups, InFlight, OffsetReset};
use crate::error::{BrokerError, Result};

/// How often a long poll in a shared store re-reads its group's roster.
const ROSTER_RECHECK: std::time::Duration = std::time::Duration::from_secs(1);

/// A member's assignment in one generation and where to read each partition.
struct Assigned {
    generation: u64,
    partitions: Vec<u32>,
    starts: Vec<(u32, u64)>,
}

impl Groups {
    /// Joins (or refreshes) the member and reads records from its partitions of the
    /// topic, waiting up to `wait` at the end of the log. With `auto_commit`, first
    /// commits what this member's previous fetch of that topic returned.
    pub async fn fetch(&self, request: FetchRequest<'_>) -> Result<GroupFetch> {
        let FetchRequest {
            group,
            member,
            topic: topic_name,
            limits,
            wait,
            auto_commit,
            reset,
        } = request;
        validate_group_name(group)?;
        if let Some(m) = member {
            validate_group_name(m).map_err(|_| {
                BrokerError::InvalidRequest(format!(
                    "invalid member id '{m}': use 1-249 characters of A-Z, a-z, 0-9, '.', '_', '-'"
                ))
            })?;
        }
        self.refuse_if_external(group)?;
        let topic = self.inner.log.topic(topic_name)?;
        let g = self.group(group);
        let member_id = member.map_or_else(|| self.new_member_id(), str::to_string);
        let shared = self.shared().is_some();
        if shared {
            let join = Want::Join {
                member: &member_id,
                topic: topic_name,
                lease: self.inner.session_timeout + wait,
            };
            self.update_roster(&g, group, join).await?;
        }
        let to_commit = {
            let mut st = g.state.lock();
            let mut changed = !shared && st.evict_expired(self.inner.session_timeout);
            let m = st.members.entry(member_id.clone()).or_insert_with(|| {
                changed = true;
                Member::new()
            });
            changed |= m.topics.insert(topic_name.to_string());
            m.in_flight += 1;
            m.last_seen = Instant::now();
            let to_commit: Vec<(u32, u64)> = if auto_commit {
                // Only this topic's positions: a member may read several topics.
                let mut mine = Vec::new();
                m.uncommitted.retain(|(t, p), o| {
                    let take = t == topic_name;
                    if take {
                        mine.push((*p, *o));
                    }
                    !take
                });
                mine
            } else {
                Vec::new()
            };
            if changed && !shared && st.rebalance(&self.partition_counts()) {
                g.changed.notify_waiters();
            }
            to_commit
        };
        // Whatever happens below, the member's request ends.
        let _done = InFlight {
            group: g.clone(),
            member: member_id.clone(),
        };
        if !to_commit.is_empty() && shared {
            // Only forward: another node may have committed further for this member.
            let mut named = Vec::new();
            for (p, o) in to_commit {
                if self.committed(group, &topic, p)?.is_none_or(|(c, _)| c < o) {
                    named.push((topic_name.to_string(), p, o));
                }
            }
            let committed = if named.is_empty() {
                Ok(())
            } else {
                self.commit(group, Some(&member_id), &named).await
            };
            match committed {
                // The partitions moved meanwhile: their new owner reads them again.
                Ok(()) | Err(BrokerError::NotAssigned { .. }) => {}
                Err(e) => return Err(e),
            }
        } else if !to_commit.is_empty() {
            let owned: Vec<(u32, u64)> = {
                let st = g.state.lock();
                to_commit
                    .into_iter()
                    .filter(|(p, _)| st.owner(topic_name, *p) == Some(member_id.as_str()))
                    .collect()
            };
            self.write_offsets(group, &topic, &owned).await?;
        }

        let deadline = tokio::time::Instant::now() + wait;
        loop {
            let notified = g.changed.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if shared {
                // Other nodes' members may have come or gone meanwhile.
                self.update_roster(&g, group, Want::Read).await?;
            }
            let Assigned {
                generation,
                partitions,
                starts,
            } = self.positions(&g, group, &member_id, &topic, reset)?;
            let results = self.read_round(&topic, &starts, limits).await?;
            let got = results.iter().map(|(_, r)| r.count).sum::<usize>();
            let now = tokio::time::Instant::now();
            // max_records 0 joins (or probes) without reading: answer at once.
            if got > 0 || now >= deadline || limits.max_records == 0 {
                self.advance(&g, &member_id, topic_name, generation, &results);
                return Ok(GroupFetch {
                    member: member_id,
                    generation,
                    partitions,
                    results,
                });
            }
            // Wait for data on any assigned partition, or a new assignment.
            let mut waits: Vec<std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>>> =
                vec![Box::pin(tokio::time::sleep_until(deadline))];
            if shared {
                // Members that come or go through other nodes change the roster, not
                // this node's state: look again at least this often.
                waits.push(Box::pin(tokio::time::sleep(ROSTER_RECHECK)));
            }
            for &(p, offset) in &starts {
                let topic = topic.clone();
                waits.push(Box::pin(async move {
                    if let Ok(part) = topic.partition(p) {
                        part.wait_beyond(offset, deadline - now).await;
                    }
                }));
            }
            tokio::select! {
                _ = futures_util::future::select_all(waits) => {}
                _ = notified => {}
            }
        }
    }

    /// The member's partitions and where to read each.
    fn positions(
        &self,
        g: &Group,
        group: &str,
        member: &str,
        topic: &Topic,
        reset: OffsetReset,
    ) -> Result<Assigned> {
        let (generation, partitions, known) = {
            let st = g.state.lock();
            let partitions = st.assigned(topic.name(), member);
            let m = st.members.get(member);
            let known: Vec<Option<u64>> = partitions
                .iter()
                .map(|p| m.and_then(|m| m.positions.get(&(topic.name().to_string(), *p)).copied()))
                .collect();
            (st.generation, partitions, known)
        };
        let mut starts = Vec::with_capacity(partitions.len());
        for (p, known) in partitions.iter().zip(known) {
            let part = topic.partition(*p)?;
            let start = match known {
                // Another node may have served (and committed for) this member since:
                // never go back behind what the group committed.
                Some(o) if self.shared().is_some() => match self.committed(group, topic, *p)? {
                    Some((c, _)) => o.max(c),
                    None => o,
                },
                Some(o) => o,
                None => match self.committed(group, topic, *p)? {
                    Some((o, _)) => o,
                    None => match reset {
                        OffsetReset::Earliest => part.log_start_offset(),
                        OffsetReset::Latest => part.high_watermark(),
                    },
                },
            };
            // Retention may have passed the position; resume at what is still there.
            let start = start.clamp(part.log_start_offset(), part.high_watermark());
            starts.push((*p, start));
        }
        Ok(Assigned {
            generation,
            partitions,
            starts,
        })
    }

    async fn read_round(
        &self,
        topic: &Topic,
        starts: &[(u32, u64)],
        limits: ReadLimits,
    ) -> Result<Vec<(u32, ReadResult)>> {
        let mut out = Vec::with_capacity(starts.len());
        let mut remaining = limits.max_records;
        // Start at a rotating partition so one busy partition cannot starve the rest.
        let rotate = if starts.is_empty() {
            0
        } else {
            (self.inner.member_seq.load(Ordering::Relaxed) as usize) % starts.len()
        };
        for i in 0..starts.len() {
            let (p, offset) = starts[(i + rotate) % starts.len()];
            let r = self
                .inner
                .log
                .read(
                    topic,
                    p,
                    offset,
                    ReadLimits {
                        max_records: remaining,
                        max_bytes: limits.max_bytes,
                    },
                )
                .await?;
            remaining = remaining.saturating_sub(r.count);
            out.push((p, r));
            if remaining == 0 {
                break;
            }
        }
        self.inner.member_seq.fetch_add(1, Ordering::Relaxed);
        Ok(out)
    }

    /// Moves the member's positions past what it was handed, if the assignment did not
    /// change meanwhile.
    fn advance(
        &self,
        g: &Group,
        member: &str,
        topic: &str,
        generation: u64,
        results: &[(u32, ReadResult)],
    ) {
        let mut st = g.state.lock();
        if st.generation != generation {
            return;
        }
        if let Some(m) = st.members.get_mut(member) {
            for (p, r) in results {
                let key = (topic.to_string(), *p);
                m.positions.insert(key.clone(), r.next_offset);
                if r.count > 0 {
                    m.uncommitted.insert(key, r.next_offset);
                }
            }
        }
    }
}
