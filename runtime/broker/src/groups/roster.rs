//! Group membership shared by several Weir nodes (cluster mode).
//!
//! On one node, a group's members live in the coordinator's memory. When several
//! nodes serve one log, a group's members may talk to different nodes, so the
//! membership lives in the log's shared key-value store instead: one *roster* per
//! group (its generation and each member's topics and lease), changed only by
//! compare-and-set. Every node deals partitions from the same roster with the same
//! rule ([`GroupState::rebalance`](super::membership::GroupState::rebalance)), so
//! all agree on the owners of a roster version; a commit is written only if the
//! roster is still at the version its ownership was checked against, so a member
//! that lost a partition is refused (409 `not_assigned`) whichever node it asks.
//!
//! A member's lease covers the session timeout plus the long-poll it is in, and is
//! renewed by its fetches (a write every third of the session timeout, not every
//! fetch). A lease that ran out is removed by the next node that reads the roster;
//! only then do its partitions move, so ownership changes only with the roster.
//! Leases compare wall clocks of the nodes: keep them in sync (NTP), as any
//! lease-based system asks.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use weir_storage::{KvOp, SharedKv, StorageError};

use super::Groups;
use super::membership::{Group, Member};
use crate::error::{BrokerError, Result};

/// Compare-and-set rounds before giving up (each is lost only to another change).
const ROUNDS: usize = 16;

/// A group's members as the cluster knows them.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub(super) struct Roster {
    /// Bumped by every change of members or of their topics.
    pub(super) generation: u64,
    pub(super) members: BTreeMap<String, Lease>,
}

/// One member's topics and how long it counts as alive.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(super) struct Lease {
    pub(super) topics: BTreeSet<String>,
    /// Wall-clock time (ms since the epoch) the member is removed after.
    pub(super) expires_ms: i64,
}

/// What a roster update is for.
#[derive(Debug, Clone, Copy)]
pub(super) enum Want<'a> {
    /// Only read it (removing leases that ran out).
    Read,
    /// The member reads `topic` and stays alive for `lease`.
    Join {
        member: &'a str,
        topic: &'a str,
        lease: Duration,
    },
    /// The member leaves.
    Leave { member: &'a str },
}

/// The roster's key in the shared key-value store.
fn roster_key(group: &str) -> Vec<u8> {
    let mut k = ROSTER_PREFIX.to_vec();
    k.extend_from_slice(group.as_bytes());
    k
}

/// Prefix of every roster key.
pub(super) const ROSTER_PREFIX: &[u8] = b"members/";

fn read(kv: &dyn SharedKv, key: &[u8]) -> Result<(Roster, u64)> {
    let (value, version) = kv.get_versioned(key);
    let roster = match value {
        Some(v) => serde_json::from_slice(&v).map_err(|e| {
            BrokerError::Storage(StorageError::corrupt(format!(
                "a group roster does not decode: {e}"
            )))
        })?,
        None => Roster::default(),
    };
    Ok((roster, version))
}

impl Roster {
    /// Members whose lease has not run out at `now_ms`.
    pub(super) fn live(&self, now_ms: i64) -> usize {
        self.members
            .values()
            .filter(|l| l.expires_ms > now_ms)
            .count()
    }
}

impl Groups {
    /// The shared key-value store, when the log has one.
    pub(super) fn shared(&self) -> Option<&dyn SharedKv> {
        self.inner.log.shared_kv()
    }

    /// The group's roster (and its version) as it stands after `want`, written if
    /// anything changed, and mirrored into the node's state of the group.
    pub(super) async fn update_roster(
        &self,
        g: &Group,
        group: &str,
        want: Want<'_>,
    ) -> Result<(Roster, u64)> {
        let kv = self
            .shared()
            .expect("rosters are kept only in a shared store");
        let key = roster_key(group);
        for _ in 0..ROUNDS {
            let (mut roster, version) = read(kv, &key)?;
            let now = weir_storage::now_ms();
            let before = roster.members.len();
            roster.members.retain(|_, l| l.expires_ms > now);
            let mut changed = roster.members.len() != before;
            let mut renew = false;
            match want {
                Want::Read => {}
                Want::Join {
                    member,
                    topic,
                    lease,
                } => {
                    let until = now + lease.as_millis() as i64;
                    let third = self.inner.session_timeout.as_millis() as i64 / 3;
                    let l = roster.members.entry(member.to_string()).or_insert_with(|| {
                        changed = true;
                        Lease {
                            topics: BTreeSet::new(),
                            expires_ms: until,
                        }
                    });
                    changed |= l.topics.insert(topic.to_string());
                    if l.expires_ms + third < until {
                        l.expires_ms = until;
                        renew = true;
                    }
                }
                Want::Leave { member } => changed |= roster.members.remove(member).is_some(),
            }
            if !changed && !renew {
                self.mirror(g, &roster, version);
                return Ok((roster, version));
            }
            if changed {
                roster.generation += 1;
            }
            let value = serde_json::to_vec(&roster).expect("rosters serialise");
            match kv
                .write_if(&key, version, vec![(key.clone(), Some(value))])
                .await
            {
                Ok(version) => {
                    self.mirror(g, &roster, version);
                    return Ok((roster, version));
                }
                Err(StorageError::VersionConflict(_)) => continue,
                Err(e) => return Err(e.into()),
            }
        }
        Err(BrokerError::Storage(StorageError::Unavailable(format!(
            "group '{group}': its members kept changing; retry"
        ))))
    }

    /// Writes `ops` fenced on the group's roster: only while the roster stands at a
    /// version `approve` accepted (`Ok(false)`: the state moved on, ask again).
    pub(super) async fn write_fenced(
        &self,
        g: &Group,
        group: &str,
        ops: Vec<KvOp>,
        approve: impl Fn(&Roster, u64) -> Result<bool>,
    ) -> Result<()> {
        let kv = self
            .shared()
            .expect("rosters are kept only in a shared store");
        for _ in 0..ROUNDS {
            let (roster, version) = self.update_roster(g, group, Want::Read).await?;
            if !approve(&roster, version)? {
                continue;
            }
            match kv.write_if(&roster_key(group), version, ops.clone()).await {
                Ok(_) => return Ok(()),
                Err(StorageError::VersionConflict(_)) => continue,
                Err(e) => return Err(e.into()),
            }
        }
        Err(BrokerError::Storage(StorageError::Unavailable(format!(
            "group '{group}': its members kept changing; retry"
        ))))
    }

    /// Makes the node's state of the group follow the roster at `version`: the same
    /// members and topics, so the same deal; positions of partitions still owned are
    /// kept. An older roster than the one mirrored (a slower task) is ignored.
    fn mirror(&self, g: &Group, roster: &Roster, version: u64) {
        let counts = self.partition_counts();
        let mut st = g.state.lock();
        if version < st.roster_version {
            return;
        }
        st.roster_version = version;
        st.members.retain(|id, _| roster.members.contains_key(id));
        for (id, lease) in &roster.members {
            let m = st.members.entry(id.clone()).or_insert_with(Member::new);
            m.topics = lease.topics.clone();
        }
        let moved = st.rebalance(&counts);
        let renumbered = st.generation != roster.generation;
        st.generation = roster.generation;
        if moved || renumbered {
            g.changed.notify_waiters();
        }
    }

    /// Live members of the group's roster.
    pub(super) fn roster_live(&self, group: &str) -> Result<usize> {
        let kv = self
            .shared()
            .expect("rosters are kept only in a shared store");
        let (roster, _) = read(kv, &roster_key(group))?;
        Ok(roster.live(weir_storage::now_ms()))
    }

    /// Groups with live members in the shared store.
    pub(super) fn roster_groups(&self) -> Result<Vec<String>> {
        let now = weir_storage::now_ms();
        let mut out = Vec::new();
        for (key, value) in self.inner.log.kv_scan(ROSTER_PREFIX)? {
            let live = serde_json::from_slice::<Roster>(&value).is_ok_and(|r| r.live(now) > 0);
            if live {
                out.push(String::from_utf8_lossy(&key[ROSTER_PREFIX.len()..]).into_owned());
            }
        }
        Ok(out)
    }
}
