//! Who may hold a connection. Three bounds, checked when a connection is accepted,
//! before any request is read (so before anyone is authenticated):
//!
//! - the total cap (`max_connections`): sockets and tasks are finite;
//! - a cap per client address (`max_connections_per_address`): one address cannot
//!   take the slots everyone else needs;
//! - a cap on connections still waiting for their first request
//!   (`max_pending_connections`): when it is full, the connection that has waited
//!   longest is closed to make room. A client that sends its request at once is
//!   never the oldest waiter for long, so a flood of idle sockets from many addresses
//!   evicts itself rather than the clients that do send requests.
//!
//! A connection stops waiting when the headers of its first request have arrived; from
//! then on only the keep-alive deadline applies to it. Waiting connections are fewer
//! than the total cap, so they can never take every slot from clients that send
//! requests; an unauthenticated request's 401 closes its connection, so credentials
//! are needed to keep one.

use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, Ordering};
use std::time::Duration;

use parking_lot::Mutex;
use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore};

use crate::config::Limits;

/// Why a connection was not admitted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Refused {
    /// `max_connections` are open.
    Full,
    /// Its address holds `max_connections_per_address`.
    AddressFull,
}

/// The bounds and what holds them.
#[derive(Debug)]
pub(crate) struct Admission {
    total: Arc<Semaphore>,
    max_per_address: usize,
    /// Open connections per client address (entries at zero are removed).
    per_address: Mutex<HashMap<IpAddr, usize>>,
    max_pending: usize,
    /// Connections in accept order that may still be waiting; ones that stopped
    /// waiting are dropped lazily from the front (and compacted when the queue grows).
    waiting: Mutex<Waiting>,
}

#[derive(Debug, Default)]
struct Waiting {
    queue: VecDeque<Arc<Pending>>,
    /// How many entries of `queue` are still waiting.
    count: usize,
}

/// States of a connection's first request.
const WAITING: u8 = 0;
const STARTED: u8 = 1;
const DISMISSED: u8 = 2;

/// One connection's wait for its first request.
#[derive(Debug, Default)]
pub(crate) struct Pending {
    state: AtomicU8,
    /// Woken when the connection is evicted to make room.
    evicted: Notify,
}

/// A connection's hold on its slots; dropping it frees them.
#[derive(Debug)]
pub(crate) struct Ticket {
    admission: Arc<Admission>,
    address: IpAddr,
    pending: Arc<Pending>,
    _slot: OwnedSemaphorePermit,
}

impl Admission {
    pub(crate) fn new(limits: &Limits) -> Arc<Self> {
        Arc::new(Self {
            total: Arc::new(Semaphore::new(limits.max_connections)),
            max_per_address: limits.max_connections_per_address,
            per_address: Mutex::new(HashMap::new()),
            // Below the total (the config check says so; in-process configs are
            // not checked), so waiting connections can never take every slot.
            max_pending: limits
                .max_pending_connections
                .min(limits.max_connections.saturating_sub(1))
                .max(1),
            waiting: Mutex::new(Waiting::default()),
        })
    }

    /// Admits a connection from `address`, evicting the longest-waiting connection if
    /// too many wait for their first request.
    pub(crate) fn admit(self: &Arc<Self>, address: IpAddr) -> Result<Ticket, Refused> {
        {
            let mut per_address = self.per_address.lock();
            let held = per_address.entry(address).or_insert(0);
            if *held >= self.max_per_address {
                return Err(Refused::AddressFull);
            }
            *held += 1;
        }
        let slot = match self.total.clone().try_acquire_owned() {
            Ok(slot) => slot,
            Err(_) => {
                self.release_address(address);
                return Err(Refused::Full);
            }
        };
        let pending = Arc::new(Pending::default());
        let evict = {
            let mut w = self.waiting.lock();
            w.queue.push_back(pending.clone());
            w.count += 1;
            let mut evict = None;
            if w.count > self.max_pending {
                while let Some(oldest) = w.queue.pop_front() {
                    if oldest.leave(DISMISSED) {
                        w.count -= 1;
                        evict = Some(oldest);
                        break;
                    }
                }
            }
            w.tidy(self.max_pending);
            evict
        };
        if let Some(oldest) = evict {
            oldest.evicted.notify_one();
        }
        Ok(Ticket {
            admission: self.clone(),
            address,
            pending,
            _slot: slot,
        })
    }

    fn release_address(&self, address: IpAddr) {
        let mut per_address = self.per_address.lock();
        if let Some(held) = per_address.get_mut(&address) {
            *held -= 1;
            if *held == 0 {
                per_address.remove(&address);
            }
        }
    }

    /// A connection stopped waiting, one way or another.
    fn left(&self) {
        self.waiting.lock().count -= 1;
    }
}

impl Waiting {
    /// Drops entries that stopped waiting: from the front always, everywhere once
    /// the queue has grown well past the cap (a long waiter at the front would
    /// otherwise keep every later entry).
    fn tidy(&mut self, max_pending: usize) {
        while self.queue.front().is_some_and(|p| !p.is_waiting()) {
            self.queue.pop_front();
        }
        if self.queue.len() > 2 * max_pending + 64 {
            self.queue.retain(|p| p.is_waiting());
        }
    }
}

impl Pending {
    fn is_waiting(&self) -> bool {
        self.state.load(Ordering::Acquire) == WAITING
    }

    /// Moves from waiting to `to`; false if it had already left.
    fn leave(&self, to: u8) -> bool {
        self.state
            .compare_exchange(WAITING, to, Ordering::AcqRel, Ordering::Acquire)
            .is_ok()
    }
}

impl Ticket {
    /// What the connection's service tells when a request arrives.
    pub(crate) fn arrivals(&self) -> Arrivals {
        Arrivals {
            admission: self.admission.clone(),
            pending: self.pending.clone(),
        }
    }

    /// Resolves when the connection must be closed without an answer: it was
    /// evicted to make room, or sent no request within `deadline`. Never resolves
    /// once its first request has arrived.
    pub(crate) async fn dismissed(&self, deadline: Duration) -> &'static str {
        tokio::select! {
            () = self.pending.evicted.notified() => "evicted: too many connections waiting for a first request",
            () = tokio::time::sleep(deadline) => {
                if self.pending.leave(DISMISSED) {
                    self.admission.left();
                    "no request within first_request_timeout_ms"
                } else {
                    std::future::pending().await
                }
            }
        }
    }
}

/// A connection's service's handle on its wait for a first request.
#[derive(Debug, Clone)]
pub(crate) struct Arrivals {
    admission: Arc<Admission>,
    pending: Arc<Pending>,
}

impl Arrivals {
    /// Called for every request on the connection: the first one ends the wait.
    pub(crate) fn request_arrived(&self) {
        if self.pending.is_waiting() && self.pending.leave(STARTED) {
            self.admission.left();
        }
    }
}

impl Drop for Ticket {
    fn drop(&mut self) {
        if self.pending.leave(DISMISSED) {
            self.admission.left();
        }
        self.admission.release_address(self.address);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits(total: usize, per_address: usize, pending: usize) -> Limits {
        Limits {
            max_connections: total,
            max_connections_per_address: per_address,
            max_pending_connections: pending,
            ..Limits::default()
        }
    }

    fn ip(last: u8) -> IpAddr {
        IpAddr::from([127, 0, 0, last])
    }

    #[test]
    fn caps_per_address_and_in_total_free_up_on_drop() {
        let a = Admission::new(&limits(3, 2, 10));
        let t1 = a.admit(ip(1)).unwrap();
        let _t2 = a.admit(ip(1)).unwrap();
        assert_eq!(a.admit(ip(1)).unwrap_err(), Refused::AddressFull);
        let _t3 = a.admit(ip(2)).unwrap();
        assert_eq!(a.admit(ip(3)).unwrap_err(), Refused::Full);
        drop(t1);
        assert!(a.admit(ip(1)).is_ok());
        assert!(a.per_address.lock().len() <= 2);
    }

    #[tokio::test]
    async fn the_longest_waiting_connection_makes_room_and_started_ones_never_do() {
        let a = Admission::new(&limits(100, 100, 2));
        let first = a.admit(ip(1)).unwrap();
        let second = a.admit(ip(1)).unwrap();
        // The first sends its request: it no longer waits, so it is never evicted.
        first.arrivals().request_arrived();
        let third = a.admit(ip(2)).unwrap();
        assert_eq!(a.waiting.lock().count, 2);
        let fourth = a.admit(ip(2)).unwrap();
        // `second` waited longest: dismissed at once.
        let why = tokio::time::timeout(
            Duration::from_secs(1),
            second.dismissed(Duration::from_secs(60)),
        )
        .await
        .expect("the oldest waiter is evicted");
        assert!(why.starts_with("evicted"), "{why}");
        assert!(
            tokio::time::timeout(
                Duration::from_millis(50),
                first.dismissed(Duration::from_millis(10))
            )
            .await
            .is_err(),
            "a started connection is never dismissed"
        );
        assert_eq!(a.waiting.lock().count, 2);
        drop((third, fourth));
        assert_eq!(a.waiting.lock().count, 0);
    }

    #[tokio::test]
    async fn a_silent_connection_is_dismissed_at_its_deadline() {
        let a = Admission::new(&limits(10, 10, 10));
        let t = a.admit(ip(1)).unwrap();
        let why = t.dismissed(Duration::from_millis(20)).await;
        assert!(why.contains("first_request_timeout_ms"), "{why}");
        assert_eq!(a.waiting.lock().count, 0);
        drop(t);
        assert_eq!(a.waiting.lock().count, 0);
    }
}
