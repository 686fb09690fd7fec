//! A group's members and the answers their requests wait for: what a join asks,
//! what it is answered, and how a request is answered now or later.

use std::time::{Duration, Instant};

use bytes::Bytes;
use kafka_protocol::ResponseError;
use tokio::sync::oneshot;

/// The answer to a join: the new generation, and for the leader every member's
/// subscription in the chosen protocol.
#[derive(Debug, Clone)]
pub(crate) struct Joined {
    pub generation: i32,
    pub protocol_type: String,
    pub protocol: String,
    pub leader: String,
    pub member: String,
    /// (member id, its metadata): filled for the leader only.
    pub members: Vec<(String, Bytes)>,
}

pub(crate) type JoinOutcome = Result<Joined, ResponseError>;
pub(crate) type SyncOutcome = Result<Bytes, ResponseError>;

/// What a join asks.
#[derive(Debug)]
pub(crate) struct JoinAsk {
    pub member: String,
    /// Static membership (`group.instance.id`): a new member with the instance id
    /// of an existing one replaces it (a restarted consumer sends no LeaveGroup).
    pub instance: Option<String>,
    pub client_id: String,
    pub client_host: String,
    pub session: Duration,
    pub rebalance: Duration,
    pub protocol_type: String,
    /// (name, metadata), in the member's order of preference.
    pub protocols: Vec<(String, Bytes)>,
}

/// One member.
#[derive(Debug)]
pub(crate) struct Member {
    pub id: String,
    pub instance: Option<String>,
    pub client_id: String,
    pub client_host: String,
    pub session: Duration,
    pub rebalance: Duration,
    pub protocols: Vec<(String, Bytes)>,
    pub last_seen: Instant,
    /// The member's part of the assignment (the chosen protocol's bytes).
    pub assignment: Bytes,
    pub(super) join: Option<oneshot::Sender<JoinOutcome>>,
    pub(super) sync: Option<oneshot::Sender<SyncOutcome>>,
}

impl Member {
    /// Whether a join or sync of this member waits for its answer on a live
    /// connection (such a member is alive whatever its last heartbeat).
    pub(super) fn waiting(&self) -> bool {
        self.join.as_ref().is_some_and(|j| !j.is_closed())
            || self.sync.as_ref().is_some_and(|s| !s.is_closed())
    }

    /// The member's metadata for `protocol`.
    pub(crate) fn metadata(&self, protocol: &str) -> Bytes {
        self.protocols
            .iter()
            .find(|(n, _)| n == protocol)
            .map(|(_, m)| m.clone())
            .unwrap_or_default()
    }
}

/// A request is answered now, or once the state moves on.
pub(crate) enum Answer<T> {
    Now(Result<T, ResponseError>),
    Later(oneshot::Receiver<Result<T, ResponseError>>),
}
