//! InitProducerId: ids for Kafka's idempotent producers. Their batches are then
//! published through Weir's producer sessions (the dedup state HTTP's
//! `Weir-Producer-Id` uses), one session per producer id and epoch: a retried batch
//! gets the first attempt's offsets and stores nothing, durably across restarts.
//! Transactions are not served.

use std::sync::atomic::{AtomicI64, Ordering};

use kafka_protocol::ResponseError;
use kafka_protocol::messages::{InitProducerIdRequest, InitProducerIdResponse, ProducerId};

/// Kafka producers' sequences wrap to 0 after `i32::MAX`.
pub(super) const SEQUENCE_WRAP: u64 = 1 << 31;

/// The last id handed out.
static LAST_ID: AtomicI64 = AtomicI64::new(0);

/// A new producer id, unique across restarts without stored state: the clock in
/// milliseconds times 1024, plus a random part below 1024 (two nodes of a cluster
/// handing out ids in the same millisecond rarely agree), and always above the
/// last id handed out.
fn new_producer_id() -> i64 {
    let salt = std::hash::BuildHasher::hash_one(
        &std::collections::hash_map::RandomState::new(),
        weir_broker::now_ms(),
    ) % 1024;
    let floor = weir_broker::now_ms().saturating_mul(1024) + salt as i64;
    let mut last = LAST_ID.load(Ordering::Relaxed);
    loop {
        let next = (last + 1).max(floor);
        match LAST_ID.compare_exchange_weak(last, next, Ordering::Relaxed, Ordering::Relaxed) {
            Ok(_) => return next,
            Err(seen) => last = seen,
        }
    }
}

pub(super) fn init(request: InitProducerIdRequest) -> InitProducerIdResponse {
    if request
        .transactional_id
        .as_ref()
        .is_some_and(|t| !t.is_empty())
    {
        return InitProducerIdResponse::default()
            .with_producer_id(ProducerId(-1))
            .with_producer_epoch(-1)
            .with_error_code(ResponseError::TransactionalIdAuthorizationFailed.code());
    }
    // v3+: a producer that had an id asks for its next epoch (after a fatal error),
    // which starts its sequences again; otherwise a new id.
    let (id, epoch) = if request.producer_id.0 >= 0 && request.producer_epoch >= 0 {
        match request.producer_epoch.checked_add(1) {
            Some(e) => (request.producer_id.0, e),
            None => (new_producer_id(), 0),
        }
    } else {
        (new_producer_id(), 0)
    };
    InitProducerIdResponse::default()
        .with_producer_id(ProducerId(id))
        .with_producer_epoch(epoch)
}

/// Weir's producer-session name for a Kafka producer's id and epoch.
pub(super) fn session_name(id: i64, epoch: i16) -> String {
    format!("kafka:{id}:{epoch}")
}
