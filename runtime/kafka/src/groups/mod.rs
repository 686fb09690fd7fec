//! Kafka consumer groups: the classic group protocol ([`state`]) for every group a
//! Kafka client joins, with committed offsets kept by Weir's own group coordinator.
//! A Kafka consumer and an HTTP client therefore see one set of offsets and one
//! lag, and HTTP's `GET /v1/groups/{g}` shows Kafka members with the partitions
//! their assignor gave them.
//!
//! Membership lives in this process (as in Kafka, where it lives in the
//! coordinator's memory and members rejoin after a failover): after a restart
//! members rejoin and resume from the committed offsets.

mod member;
pub(crate) mod state;

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use kafka_protocol::messages::ConsumerProtocolAssignment;
use kafka_protocol::protocol::Decodable;
use parking_lot::Mutex;
use weir_broker::Broker;
use weir_broker::groups::{ExternalGroup, MemberInfo};

use state::GroupState;

/// How often sessions and rebalance deadlines are checked.
const TICK: Duration = Duration::from_millis(200);

/// Every Kafka group of this listener.
#[derive(Debug)]
pub(crate) struct Coordinator {
    broker: Broker,
    groups: Mutex<HashMap<String, Arc<Mutex<GroupState>>>>,
    member_seq: AtomicU64,
}

impl Coordinator {
    pub(crate) fn new(broker: Broker) -> Self {
        Self {
            broker,
            groups: Mutex::new(HashMap::new()),
            member_seq: AtomicU64::new(1),
        }
    }

    /// The group, created empty if it is new.
    pub(crate) fn group(&self, name: &str) -> Arc<Mutex<GroupState>> {
        self.groups
            .lock()
            .entry(name.to_string())
            .or_default()
            .clone()
    }

    /// The group if a Kafka client has joined it.
    pub(crate) fn existing(&self, name: &str) -> Option<Arc<Mutex<GroupState>>> {
        self.groups.lock().get(name).cloned()
    }

    /// Names of the groups with Kafka members.
    pub(crate) fn names(&self) -> Vec<String> {
        self.groups.lock().keys().cloned().collect()
    }

    /// A new member's id: its client id, a number and a random part (Kafka's form).
    pub(crate) fn new_member_id(&self, client_id: &str) -> String {
        let n = self.member_seq.fetch_add(1, Ordering::Relaxed);
        let salt =
            std::hash::BuildHasher::hash_one(&std::collections::hash_map::RandomState::new(), n);
        let client: String = client_id
            .chars()
            .filter(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
            .take(64)
            .collect();
        format!(
            "{}-{n}-{:08x}",
            if client.is_empty() { "kafka" } else { &client },
            salt as u32
        )
    }

    /// Tells Weir's coordinator who holds `name` now, so HTTP shows them and keeps
    /// its own members out.
    pub(crate) fn publish(&self, name: &str, st: &GroupState) {
        let now = Instant::now();
        let view = (!st.members.is_empty()).then(|| ExternalGroup {
            protocol: "kafka",
            generation: st.generation.max(0) as u64,
            members: st
                .members
                .iter()
                .map(|m| MemberInfo {
                    member: m.id.clone(),
                    assignments: assigned_partitions(st.protocol_type.as_deref(), &m.assignment),
                    idle_ms: now.duration_since(m.last_seen).as_millis() as u64,
                })
                .collect(),
        });
        self.broker.groups().set_external(name, view);
    }

    /// Forgets every group's members (the listener stops): HTTP no longer shows
    /// them or keeps its members out.
    pub(crate) fn clear(&self) {
        for (name, _) in self.groups.lock().drain() {
            self.broker.groups().set_external(&name, None);
        }
    }

    /// Expires silent members and ends overdue joins until the listener stops.
    pub(crate) async fn run(self: Arc<Self>) {
        let mut tick = tokio::time::interval(TICK);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            let now = Instant::now();
            let groups: Vec<(String, Arc<Mutex<GroupState>>)> = self
                .groups
                .lock()
                .iter()
                .map(|(n, g)| (n.clone(), g.clone()))
                .collect();
            for (name, g) in groups {
                let mut st = g.lock();
                st.tick(now);
                self.publish(&name, &st);
            }
            // Groups left empty are forgotten (their offsets stay with Weir), unless a
            // request holds one (it is about to join it).
            self.groups.lock().retain(|_, g| {
                Arc::strong_count(g) > 1 || {
                    let st = g.lock();
                    st.phase != state::Phase::Empty || !st.members.is_empty()
                }
            });
        }
    }
}

/// The partitions a member's assignment names, when the group speaks Kafka's
/// consumer protocol (anything else is opaque to the broker, as in Kafka).
fn assigned_partitions(protocol_type: Option<&str>, assignment: &Bytes) -> Vec<(String, Vec<u32>)> {
    if protocol_type != Some("consumer") || assignment.len() < 2 {
        return Vec::new();
    }
    let mut buf = assignment.clone();
    let version = i16::from_be_bytes([buf[0], buf[1]]);
    let _ = bytes::Buf::get_i16(&mut buf);
    match ConsumerProtocolAssignment::decode(&mut buf, version.clamp(0, 3)) {
        Ok(a) => a
            .assigned_partitions
            .into_iter()
            .map(|tp| {
                let mut ps: Vec<u32> = tp
                    .partitions
                    .iter()
                    .filter_map(|p| u32::try_from(*p).ok())
                    .collect();
                ps.sort_unstable();
                (tp.topic.as_str().to_string(), ps)
            })
            .collect(),
        Err(_) => Vec::new(),
    }
}
