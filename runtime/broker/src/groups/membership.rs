//! A group's members and who owns which partition: joining, expiry, and the
//! round-robin deal that every membership change recomputes. Pure state, no I/O, so
//! the rules are unit-tested here.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use tokio::sync::Notify;

#[derive(Debug)]
pub(super) struct Group {
    pub(super) state: Mutex<GroupState>,
    /// Woken when the assignment changes, so long polls return and members see it.
    pub(super) changed: Notify,
}

#[derive(Debug, Default)]
pub(super) struct GroupState {
    pub(super) members: BTreeMap<String, Member>,
    pub(super) generation: u64,
    /// With a shared store: the version of the roster this state mirrors.
    pub(super) roster_version: u64,
    /// Per topic: the owner of each partition.
    pub(super) owners: HashMap<String, Vec<Option<String>>>,
}

#[derive(Debug)]
pub(super) struct Member {
    pub(super) topics: BTreeSet<String>,
    pub(super) last_seen: Instant,
    pub(super) in_flight: u32,
    /// Next offset to hand out, per (topic, partition) this member owns.
    pub(super) positions: HashMap<(String, u32), u64>,
    /// What `commit=auto` commits on the next fetch: positions after the last fetch.
    pub(super) uncommitted: HashMap<(String, u32), u64>,
}

impl Member {
    pub(super) fn new() -> Self {
        Self {
            topics: BTreeSet::new(),
            last_seen: Instant::now(),
            in_flight: 0,
            positions: HashMap::new(),
            uncommitted: HashMap::new(),
        }
    }
}

impl GroupState {
    pub(super) fn evict_expired(&mut self, timeout: Duration) -> bool {
        let now = Instant::now();
        let before = self.members.len();
        self.members
            .retain(|_, m| m.in_flight > 0 || now.duration_since(m.last_seen) < timeout);
        before != self.members.len()
    }

    /// Deals every topic's partitions over its members; true if anything moved.
    pub(super) fn rebalance(&mut self, partition_counts: &HashMap<String, u32>) -> bool {
        let mut changed = false;
        let mut topics: BTreeSet<String> = self.owners.keys().cloned().collect();
        for m in self.members.values() {
            topics.extend(m.topics.iter().cloned());
        }
        for topic in topics {
            let readers: Vec<&String> = self
                .members
                .iter()
                .filter(|(_, m)| m.topics.contains(&topic))
                .map(|(id, _)| id)
                .collect();
            let count = partition_counts.get(&topic).copied().unwrap_or(0);
            let owners: Vec<Option<String>> = (0..count as usize)
                .map(|p| (!readers.is_empty()).then(|| readers[p % readers.len()].clone()))
                .collect();
            let old = self.owners.get(&topic);
            if old != Some(&owners) {
                changed = true;
                if owners.iter().all(Option::is_none) {
                    self.owners.remove(&topic);
                } else {
                    self.owners.insert(topic.clone(), owners);
                }
            }
        }
        if changed {
            self.generation += 1;
            // Positions of partitions a member no longer owns are forgotten; the new
            // owner starts from the committed offset.
            let owners = &self.owners;
            for (id, m) in self.members.iter_mut() {
                let owns = |(t, p): &(String, u32)| {
                    owners
                        .get(t)
                        .and_then(|o| o.get(*p as usize))
                        .is_some_and(|o| o.as_deref() == Some(id.as_str()))
                };
                m.positions.retain(|k, _| owns(k));
                m.uncommitted.retain(|k, _| owns(k));
            }
        }
        changed
    }

    pub(super) fn owner(&self, topic: &str, partition: u32) -> Option<&str> {
        self.owners
            .get(topic)
            .and_then(|o| o.get(partition as usize))
            .and_then(|o| o.as_deref())
    }

    pub(super) fn assigned(&self, topic: &str, member: &str) -> Vec<u32> {
        self.owners
            .get(topic)
            .map(|o| {
                o.iter()
                    .enumerate()
                    .filter(|(_, owner)| owner.as_deref() == Some(member))
                    .map(|(p, _)| p as u32)
                    .collect()
            })
            .unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state(members: &[(&str, &[&str])]) -> GroupState {
        let mut st = GroupState::default();
        for (id, topics) in members {
            let mut m = Member::new();
            m.topics = topics.iter().map(|t| t.to_string()).collect();
            st.members.insert(id.to_string(), m);
        }
        st
    }

    fn counts(topics: &[(&str, u32)]) -> HashMap<String, u32> {
        topics.iter().map(|(t, n)| (t.to_string(), *n)).collect()
    }

    #[test]
    fn partitions_are_dealt_round_robin_over_the_topics_readers_by_id() {
        let mut st = state(&[("b", &["t"]), ("a", &["t", "u"]), ("c", &["u"])]);
        assert!(st.rebalance(&counts(&[("t", 5), ("u", 2)])));
        assert_eq!(st.generation, 1);
        // Readers of t sorted by id: a, b.
        assert_eq!(st.assigned("t", "a"), [0, 2, 4]);
        assert_eq!(st.assigned("t", "b"), [1, 3]);
        assert!(st.assigned("t", "c").is_empty());
        // Readers of u: a, c.
        assert_eq!(st.assigned("u", "a"), [0]);
        assert_eq!(st.assigned("u", "c"), [1]);
        assert_eq!(st.owner("t", 3), Some("b"));
        assert_eq!(st.owner("t", 9), None);
        // Every partition has exactly one owner.
        for p in 0..5 {
            assert!(st.owner("t", p).is_some());
        }
    }

    #[test]
    fn an_unchanged_membership_keeps_the_generation() {
        let mut st = state(&[("a", &["t"]), ("b", &["t"])]);
        let topics = counts(&[("t", 4)]);
        assert!(st.rebalance(&topics));
        assert!(!st.rebalance(&topics), "nothing moved");
        assert_eq!(st.generation, 1);
    }

    #[test]
    fn a_leaving_member_hands_its_partitions_over_and_positions_are_forgotten() {
        let mut st = state(&[("a", &["t"]), ("b", &["t"])]);
        let topics = counts(&[("t", 2)]);
        st.rebalance(&topics);
        // a reads partition 0, b partition 1; both have positions.
        st.members
            .get_mut("a")
            .unwrap()
            .positions
            .insert(("t".into(), 0), 7);
        st.members
            .get_mut("b")
            .unwrap()
            .positions
            .insert(("t".into(), 1), 9);
        st.members
            .get_mut("b")
            .unwrap()
            .uncommitted
            .insert(("t".into(), 1), 9);
        st.members.remove("b");
        assert!(st.rebalance(&topics));
        assert_eq!(st.assigned("t", "a"), [0, 1]);
        assert_eq!(st.generation, 2);
        // a keeps its position on 0; partition 1 starts from the committed offset.
        let a = &st.members["a"];
        assert_eq!(a.positions.get(&("t".into(), 0)), Some(&7));
        assert_eq!(a.positions.get(&("t".into(), 1)), None);
        // The last reader gone, the topic has no owners at all.
        st.members.remove("a");
        assert!(st.rebalance(&topics));
        assert!(st.owners.is_empty());
    }

    #[test]
    fn members_expire_after_the_session_timeout_unless_a_request_is_in_flight() {
        let mut st = state(&[("idle", &["t"]), ("busy", &["t"]), ("fresh", &["t"])]);
        let long_ago = Instant::now() - Duration::from_secs(60);
        st.members.get_mut("idle").unwrap().last_seen = long_ago;
        let busy = st.members.get_mut("busy").unwrap();
        busy.last_seen = long_ago;
        busy.in_flight = 1;
        assert!(st.evict_expired(Duration::from_secs(30)));
        let left: Vec<&String> = st.members.keys().collect();
        assert_eq!(left, ["busy", "fresh"]);
        assert!(
            !st.evict_expired(Duration::from_secs(30)),
            "nothing more to evict"
        );
    }
}
