//! One Kafka consumer group's membership, as Kafka's classic group protocol runs it:
//! members join (the coordinator waits for every known member to rejoin, or for the
//! rebalance timeout), the first member becomes the leader and is handed everyone's
//! subscriptions, it computes the assignment (range, round-robin, sticky: the
//! client's choice) and sends it in its SyncGroup, and every member gets its part.
//! Heartbeats keep members alive and tell them when a rebalance begins.
//!
//! Plain state, no I/O: requests that must wait (a join until the rebalance ends, a
//! follower's sync until the leader's) leave a sender here and are answered when the
//! state moves on.

use std::time::Instant;

use bytes::Bytes;
use kafka_protocol::ResponseError;
use tokio::sync::oneshot;

pub(crate) use super::member::{Answer, JoinAsk, Joined, Member};

/// Members one group may have (Kafka's `group.max.size`).
pub(crate) const MAX_MEMBERS: usize = 1000;

/// Where the group is in a rebalance (Kafka's names, as DescribeGroups shows them).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Phase {
    /// No members.
    Empty,
    /// Waiting for members to (re)join.
    PreparingRebalance,
    /// Joined; waiting for the leader's assignment.
    CompletingRebalance,
    /// Assigned.
    Stable,
}

impl Phase {
    pub(crate) fn name(self) -> &'static str {
        match self {
            Phase::Empty => "Empty",
            Phase::PreparingRebalance => "PreparingRebalance",
            Phase::CompletingRebalance => "CompletingRebalance",
            Phase::Stable => "Stable",
        }
    }
}

/// One group.
#[derive(Debug)]
pub(crate) struct GroupState {
    pub phase: Phase,
    pub generation: i32,
    pub protocol_type: Option<String>,
    pub protocol: Option<String>,
    pub leader: Option<String>,
    /// In the order they joined (the first is the next leader if the leader left).
    pub members: Vec<Member>,
    deadline: Option<Instant>,
}

impl Default for GroupState {
    fn default() -> Self {
        Self {
            phase: Phase::Empty,
            generation: 0,
            protocol_type: None,
            protocol: None,
            leader: None,
            members: Vec::new(),
            deadline: None,
        }
    }
}

impl GroupState {
    fn member(&mut self, id: &str) -> Option<&mut Member> {
        self.members.iter_mut().find(|m| m.id == id)
    }

    /// A member joins (`ask.member` empty: as a new member named `new_id`).
    pub(crate) fn join(&mut self, ask: JoinAsk, new_id: String, now: Instant) -> Answer<Joined> {
        if ask.protocols.is_empty() {
            return Answer::Now(Err(ResponseError::InconsistentGroupProtocol));
        }
        if ask.member.is_empty()
            && let Some(instance) = &ask.instance
            && let Some(old) = self
                .members
                .iter()
                .find(|m| m.instance.as_ref() == Some(instance))
                .map(|m| m.id.clone())
        {
            self.remove(&old, ResponseError::FencedInstanceId);
        }
        // Some protocol must be common to the joiner and every other member.
        let others = || {
            self.members
                .iter()
                .filter(|m| ask.member.is_empty() || m.id != ask.member)
        };
        let common = ask
            .protocols
            .iter()
            .any(|(n, _)| others().all(|m| m.protocols.iter().any(|(o, _)| o == n)));
        let other_type = others().next().is_some()
            && self
                .protocol_type
                .as_ref()
                .is_some_and(|t| *t != ask.protocol_type);
        if !common || other_type {
            return Answer::Now(Err(ResponseError::InconsistentGroupProtocol));
        }
        if ask.member.is_empty() && self.members.len() >= MAX_MEMBERS {
            return Answer::Now(Err(ResponseError::GroupMaxSizeReached));
        }
        let (tx, rx) = oneshot::channel();
        let id = if ask.member.is_empty() {
            new_id
        } else {
            ask.member.clone()
        };
        match self.member(&id) {
            Some(m) => {
                m.session = ask.session;
                m.rebalance = ask.rebalance;
                m.protocols = ask.protocols;
                m.last_seen = now;
                // A second join of the same member replaces the first.
                if let Some(old) = m.join.replace(tx) {
                    let _ = old.send(Err(ResponseError::RebalanceInProgress));
                }
            }
            None if !ask.member.is_empty() => {
                return Answer::Now(Err(ResponseError::UnknownMemberId));
            }
            None => self.members.push(Member {
                id,
                instance: ask.instance,
                client_id: ask.client_id,
                client_host: ask.client_host,
                session: ask.session,
                rebalance: ask.rebalance,
                protocols: ask.protocols,
                last_seen: now,
                assignment: Bytes::new(),
                join: Some(tx),
                sync: None,
            }),
        }
        self.protocol_type = Some(ask.protocol_type);
        if self.phase != Phase::PreparingRebalance {
            self.begin_rebalance(now);
        }
        self.try_complete_join(now);
        Answer::Later(rx)
    }

    /// Everyone must rejoin: pending syncs are told so, assignments are void.
    fn begin_rebalance(&mut self, now: Instant) {
        let longest = self.members.iter().map(|m| m.rebalance).max();
        self.deadline = Some(now + longest.unwrap_or_default());
        self.phase = Phase::PreparingRebalance;
        for m in &mut self.members {
            m.assignment = Bytes::new();
            if let Some(s) = m.sync.take() {
                let _ = s.send(Err(ResponseError::RebalanceInProgress));
            }
        }
    }

    /// Ends the join phase once every member rejoined, or the deadline passed (those
    /// that did not rejoin are dropped). Returns whether membership changed.
    pub(crate) fn try_complete_join(&mut self, now: Instant) -> bool {
        if self.phase != Phase::PreparingRebalance {
            return false;
        }
        let all_in = self.members.iter().all(|m| m.join.is_some());
        if !all_in && self.deadline.is_some_and(|d| now < d) {
            return false;
        }
        self.members.retain(|m| m.join.is_some());
        self.generation = self.generation.wrapping_add(1).max(1);
        if self.members.is_empty() {
            self.become_empty();
            return true;
        }
        let protocol = self.vote();
        let leader = match &self.leader {
            Some(l) if self.members.iter().any(|m| &m.id == l) => l.clone(),
            _ => self.members[0].id.clone(),
        };
        let everyone: Vec<(String, Bytes)> = self
            .members
            .iter()
            .map(|m| (m.id.clone(), m.metadata(&protocol)))
            .collect();
        let protocol_type = self.protocol_type.clone().unwrap_or_default();
        for m in &mut self.members {
            let joined = Joined {
                generation: self.generation,
                protocol_type: protocol_type.clone(),
                protocol: protocol.clone(),
                leader: leader.clone(),
                member: m.id.clone(),
                members: if m.id == leader {
                    everyone.clone()
                } else {
                    Vec::new()
                },
            };
            if let Some(j) = m.join.take() {
                let _ = j.send(Ok(joined));
            }
            m.last_seen = now;
        }
        self.protocol = Some(protocol);
        self.leader = Some(leader);
        self.phase = Phase::CompletingRebalance;
        // The leader has as long to send the assignment as members had to rejoin.
        let longest = self.members.iter().map(|m| m.rebalance).max();
        self.deadline = Some(now + longest.unwrap_or_default());
        true
    }

    /// The protocol every member supports that most members prefer (Kafka's vote).
    fn vote(&self) -> String {
        let common = |name: &str| {
            self.members
                .iter()
                .all(|m| m.protocols.iter().any(|(n, _)| n == name))
        };
        let mut votes: Vec<(String, usize)> = Vec::new();
        for m in &self.members {
            if let Some((choice, _)) = m.protocols.iter().find(|(n, _)| common(n)) {
                match votes.iter_mut().find(|(n, _)| n == choice) {
                    Some((_, c)) => *c += 1,
                    None => votes.push((choice.clone(), 1)),
                }
            }
        }
        votes
            .into_iter()
            .max_by_key(|(_, c)| *c)
            .map(|(n, _)| n)
            .unwrap_or_default()
    }

    fn become_empty(&mut self) {
        self.phase = Phase::Empty;
        self.protocol = None;
        self.leader = None;
        self.deadline = None;
    }

    /// Whether `member` of `generation` may act now; marks it alive.
    fn check(&mut self, generation: i32, member: &str, now: Instant) -> Result<(), ResponseError> {
        let phase = self.phase;
        let current = self.generation;
        let Some(m) = self.member(member) else {
            return Err(ResponseError::UnknownMemberId);
        };
        m.last_seen = now;
        if phase == Phase::PreparingRebalance {
            return Err(ResponseError::RebalanceInProgress);
        }
        if generation != current {
            return Err(ResponseError::IllegalGeneration);
        }
        Ok(())
    }

    /// A member's SyncGroup; the leader's carries everyone's assignment.
    pub(crate) fn sync(
        &mut self,
        generation: i32,
        member: &str,
        assignments: Vec<(String, Bytes)>,
        now: Instant,
    ) -> Answer<Bytes> {
        if let Err(e) = self.check(generation, member, now) {
            return Answer::Now(Err(e));
        }
        if self.phase == Phase::Stable {
            let mine = self.member(member).map(|m| m.assignment.clone());
            return Answer::Now(Ok(mine.unwrap_or_default()));
        }
        if self.leader.as_deref() == Some(member) {
            for m in &mut self.members {
                m.assignment = assignments
                    .iter()
                    .find(|(id, _)| *id == m.id)
                    .map(|(_, a)| a.clone())
                    .unwrap_or_default();
                if let Some(s) = m.sync.take() {
                    let _ = s.send(Ok(m.assignment.clone()));
                }
            }
            self.phase = Phase::Stable;
            self.deadline = None;
            let mine = self.member(member).map(|m| m.assignment.clone());
            return Answer::Now(Ok(mine.unwrap_or_default()));
        }
        let (tx, rx) = oneshot::channel();
        if let Some(m) = self.member(member)
            && let Some(old) = m.sync.replace(tx)
        {
            let _ = old.send(Err(ResponseError::RebalanceInProgress));
        }
        Answer::Later(rx)
    }

    /// A heartbeat: alive, and told when a rebalance has begun.
    pub(crate) fn heartbeat(
        &mut self,
        generation: i32,
        member: &str,
        now: Instant,
    ) -> Result<(), ResponseError> {
        self.check(generation, member, now)
    }

    /// A member commits offsets: it must belong to the assigned generation. A
    /// commit without member and generation (a consumer that assigns partitions
    /// itself) is accepted while the group has no members.
    pub(crate) fn may_commit(
        &mut self,
        generation: i32,
        member: &str,
        now: Instant,
    ) -> Result<(), ResponseError> {
        if generation < 0 && member.is_empty() {
            return if self.members.is_empty() {
                Ok(())
            } else {
                Err(ResponseError::UnknownMemberId)
            };
        }
        // Unlike a heartbeat, a commit of the current generation is taken while
        // members rejoin: a consumer commits what it read before giving its
        // partitions up (Kafka's eager rebalance).
        let (phase, current) = (self.phase, self.generation);
        let m = self.member(member).ok_or(ResponseError::UnknownMemberId)?;
        m.last_seen = now;
        match phase {
            Phase::CompletingRebalance => Err(ResponseError::RebalanceInProgress),
            _ if generation != current => Err(ResponseError::IllegalGeneration),
            _ => Ok(()),
        }
    }

    /// Members leave, each named by its id or, for a static member, by its
    /// instance id; the rest rebalance. Per member: whether it was known.
    pub(crate) fn leave(
        &mut self,
        members: &[(String, Option<String>)],
        now: Instant,
    ) -> Vec<bool> {
        let known: Vec<bool> = members
            .iter()
            .map(|(id, instance)| {
                let id = match instance {
                    Some(inst) if id.is_empty() => self
                        .members
                        .iter()
                        .find(|m| m.instance.as_ref() == Some(inst))
                        .map(|m| m.id.clone())
                        .unwrap_or_default(),
                    _ => id.clone(),
                };
                self.remove(&id, ResponseError::UnknownMemberId)
            })
            .collect();
        if known.iter().any(|k| *k) {
            self.after_removal(now);
        }
        known
    }

    /// Removes a member; its waiting requests are answered with `why`.
    fn remove(&mut self, id: &str, why: ResponseError) -> bool {
        let Some(i) = self.members.iter().position(|m| m.id == id) else {
            return false;
        };
        let m = self.members.remove(i);
        if let Some(j) = m.join {
            let _ = j.send(Err(why));
        }
        if let Some(s) = m.sync {
            let _ = s.send(Err(why));
        }
        true
    }

    fn after_removal(&mut self, now: Instant) {
        if self.members.is_empty() {
            self.generation = self.generation.wrapping_add(1).max(1);
            self.become_empty();
            return;
        }
        if self.phase != Phase::PreparingRebalance {
            self.begin_rebalance(now);
        }
        self.try_complete_join(now);
    }

    /// Drops members silent past their session timeout (a member waiting for a join
    /// or sync answer is alive) and ends a join phase past its deadline. Returns
    /// whether anything changed.
    pub(crate) fn tick(&mut self, now: Instant) -> bool {
        let expired: Vec<String> = self
            .members
            .iter()
            .filter(|m| !m.waiting() && now.duration_since(m.last_seen) > m.session)
            .map(|m| m.id.clone())
            .collect();
        for id in &expired {
            tracing::info!(member = %id, "a Kafka group member's session expired");
            self.remove(id, ResponseError::UnknownMemberId);
        }
        if !expired.is_empty() {
            self.after_removal(now);
        }
        // A leader that never sends the assignment is dropped, and the rest go on.
        let mut stalled = false;
        if self.phase == Phase::CompletingRebalance
            && self.deadline.is_some_and(|d| now >= d)
            && let Some(leader) = self.leader.clone()
        {
            tracing::info!(member = %leader, "a Kafka group leader sent no assignment in time");
            self.remove(&leader, ResponseError::RebalanceInProgress);
            self.after_removal(now);
            stalled = true;
        }
        self.try_complete_join(now) || !expired.is_empty() || stalled
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn ask(member: &str) -> JoinAsk {
        JoinAsk {
            member: member.into(),
            instance: None,
            client_id: "c".into(),
            client_host: "h".into(),
            session: Duration::from_secs(10),
            rebalance: Duration::from_secs(30),
            protocol_type: "consumer".into(),
            protocols: vec![("range".into(), Bytes::from_static(b"m"))],
        }
    }

    fn joined(a: Answer<Joined>) -> Joined {
        match a {
            Answer::Later(mut rx) => rx.try_recv().expect("answered").expect("joined"),
            Answer::Now(r) => r.expect("joined"),
        }
    }

    #[test]
    fn a_second_member_waits_for_the_first_to_rejoin_and_the_leader_assigns() {
        let now = Instant::now();
        let mut g = GroupState::default();
        let a = joined(g.join(ask(""), "a".into(), now));
        assert_eq!((a.generation, a.leader.as_str()), (1, "a"));
        let Answer::Now(Ok(_)) =
            g.sync(1, "a", vec![("a".into(), Bytes::from_static(b"all"))], now)
        else {
            panic!("the leader's sync is answered at once");
        };
        // b joins: a rebalance begins; a learns it from its heartbeat.
        let Answer::Later(mut b) = g.join(ask(""), "b".into(), now) else {
            panic!()
        };
        assert!(b.try_recv().is_err(), "b waits for a");
        assert_eq!(
            g.heartbeat(1, "a", now),
            Err(ResponseError::RebalanceInProgress)
        );
        let a2 = joined(g.join(ask("a"), String::new(), now));
        let b2 = b.try_recv().unwrap().unwrap();
        assert_eq!((a2.generation, b2.generation), (2, 2));
        assert_eq!(a2.members.len(), 2, "the leader sees every member");
        assert!(b2.members.is_empty());
        let Answer::Later(mut bs) = g.sync(2, "b", Vec::new(), now) else {
            panic!()
        };
        let assignments = vec![
            ("a".into(), Bytes::from_static(b"0")),
            ("b".into(), Bytes::from_static(b"1")),
        ];
        let Answer::Now(Ok(mine)) = g.sync(2, "a", assignments, now) else {
            panic!()
        };
        assert_eq!(&mine[..], b"0");
        assert_eq!(&bs.try_recv().unwrap().unwrap()[..], b"1");
        assert_eq!(g.phase, Phase::Stable);
        assert_eq!(
            g.heartbeat(1, "a", now),
            Err(ResponseError::IllegalGeneration)
        );
        assert_eq!(
            g.heartbeat(2, "x", now),
            Err(ResponseError::UnknownMemberId)
        );
    }

    #[test]
    fn a_silent_member_expires_and_one_that_does_not_rejoin_is_dropped_at_the_deadline() {
        let now = Instant::now();
        let mut g = GroupState::default();
        joined(g.join(ask(""), "a".into(), now));
        let _ = g.sync(1, "a", Vec::new(), now);
        let Answer::Later(_b) = g.join(ask(""), "b".into(), now) else {
            panic!()
        };
        // a never rejoins: at the rebalance deadline it is dropped and b goes on.
        assert!(!g.tick(now + Duration::from_secs(5)));
        assert!(g.tick(now + Duration::from_secs(31)));
        assert_eq!(g.members.len(), 1);
        assert_eq!(g.leader.as_deref(), Some("b"));
        let _ = g.sync(2, "b", Vec::new(), now);
        // b falls silent: its session ends, the group is empty.
        assert!(g.tick(now + Duration::from_secs(60)));
        assert_eq!(g.phase, Phase::Empty);
        assert!(
            g.may_commit(-1, "", now).is_ok(),
            "a manual commit once empty"
        );
    }

    #[test]
    fn a_member_of_another_protocol_is_refused() {
        let now = Instant::now();
        let mut g = GroupState::default();
        joined(g.join(ask(""), "a".into(), now));
        let mut other = ask("");
        other.protocols = vec![("sticky".into(), Bytes::new())];
        assert!(matches!(
            g.join(other, "b".into(), now),
            Answer::Now(Err(ResponseError::InconsistentGroupProtocol))
        ));
    }

    #[test]
    fn a_leader_that_sends_no_assignment_is_dropped_and_a_restarted_static_member_replaces_itself()
    {
        let now = Instant::now();
        let mut g = GroupState::default();
        joined(g.join(ask(""), "a".into(), now));
        let Answer::Later(mut b) = g.join(ask(""), "b".into(), now) else {
            panic!()
        };
        joined(g.join(ask("a"), String::new(), now));
        b.try_recv().unwrap().unwrap();
        let Answer::Later(mut waiting) = g.sync(2, "b", Vec::new(), now) else {
            panic!()
        };
        // a (the leader) never syncs: past the rebalance timeout it is dropped and b,
        // alone, is the next generation's leader.
        assert!(!g.tick(now + Duration::from_secs(5)));
        assert!(g.tick(now + Duration::from_secs(31)));
        assert_eq!(
            waiting.try_recv().unwrap(),
            Err(ResponseError::RebalanceInProgress)
        );
        let b3 = joined(g.join(ask("b"), String::new(), now));
        assert_eq!((b3.generation, b3.leader.as_str()), (3, "b"));

        // A static member restarted without leaving takes its old place at once.
        let mut st = ask("");
        st.instance = Some("pod-1".into());
        let Answer::Later(_) = g.join(st, "s1".into(), now) else {
            panic!()
        };
        let mut again = ask("");
        again.instance = Some("pod-1".into());
        let Answer::Later(_) = g.join(again, "s2".into(), now) else {
            panic!()
        };
        let ids: Vec<&str> = g.members.iter().map(|m| m.id.as_str()).collect();
        assert_eq!(ids, ["b", "s2"]);
    }

    #[test]
    fn a_joiner_needs_one_protocol_every_member_has() {
        let now = Instant::now();
        let mut g = GroupState::default();
        let with = |protocols: &[&str]| {
            let mut a = ask("");
            a.protocols = protocols
                .iter()
                .map(|p| (p.to_string(), Bytes::new()))
                .collect();
            a
        };
        joined(g.join(with(&["range", "x"]), "a".into(), now));
        let Answer::Later(_) = g.join(with(&["rr", "x"]), "b".into(), now) else {
            panic!()
        };
        assert!(matches!(
            g.join(with(&["range", "rr"]), "c".into(), now),
            Answer::Now(Err(ResponseError::InconsistentGroupProtocol))
        ));
    }
}
