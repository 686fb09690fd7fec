//! Who may hold a connection. Three bounds, checked when a connection is accepted,
//! before any request is read (so before anyone is authenticated):
//!
//! - the total cap (`max_connections`): sockets and tasks are finite;
//! - a cap per client address (`max_connections_per_address`; IPv6 addresses count
//!   by /64, the block one host is given): one address cannot take the slots
//!   everyone else needs;
//! - a cap on connections still waiting for their first request
//!   (`max_pending_connections`, always below the total): when it is full, a waiter
//!   of the address with the most waiters is closed to make room, the one that has
//!   waited longest. A flood of idle sockets from one address evicts itself, never
//!   the one connection of a client that is about to send its request.
//!
//! A connection stops waiting when its first request's headers have arrived; from
//! then on only the keep-alive deadline applies. The API closes the connection of
//! every answer to a caller without credentials (a 401, a public probe), so only
//! authenticated clients keep connections.

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
    /// Connections that may still be waiting for their first request. Every change
    /// of a connection's waiting state happens under this lock, so the counts are
    /// exact.
    waiting: Mutex<Waiting>,
}

#[derive(Debug, Default)]
struct Waiting {
    /// In accept order; entries that stopped waiting are dropped lazily.
    queue: VecDeque<Arc<Pending>>,
    /// How many entries of `queue` are still waiting, in all and per address.
    count: usize,
    per_address: HashMap<IpAddr, usize>,
}

/// States of a connection's first request.
const WAITING: u8 = 0;
const STARTED: u8 = 1;
const DISMISSED: u8 = 2;

/// One connection's wait for its first request.
#[derive(Debug)]
pub(crate) struct Pending {
    /// The client's address as it is counted (an IPv6 /64).
    address: IpAddr,
    /// Changed only under [`Admission::waiting`]; read without it.
    state: AtomicU8,
    /// Woken when the connection is evicted to make room.
    evicted: Notify,
}

/// A connection's hold on its slots; dropping it frees them.
#[derive(Debug)]
pub(crate) struct Ticket {
    admission: Arc<Admission>,
    pending: Arc<Pending>,
    _slot: OwnedSemaphorePermit,
}

/// How a client address is counted: IPv4 as it is, IPv6 by its /64 (one host is
/// usually given a whole /64, so counting single addresses would bound nothing).
fn address_key(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(_) => ip,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => IpAddr::V6((u128::from(v6) & !0u128 << 64).into()),
        },
    }
}

impl Admission {
    pub(crate) fn new(limits: &Limits) -> Arc<Self> {
        Arc::new(Self {
            total: Arc::new(Semaphore::new(limits.max_connections)),
            max_per_address: limits.max_connections_per_address.max(1),
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

    /// Admits a connection from `ip`, evicting a waiter of the address with the most
    /// of them if too many wait for their first request.
    pub(crate) fn admit(self: &Arc<Self>, ip: IpAddr) -> Result<Ticket, Refused> {
        let address = address_key(ip);
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
        let pending = Arc::new(Pending {
            address,
            state: AtomicU8::new(WAITING),
            evicted: Notify::new(),
        });
        let evicted = {
            let mut w = self.waiting.lock();
            w.queue.push_back(pending.clone());
            w.count += 1;
            *w.per_address.entry(address).or_insert(0) += 1;
            let evicted = (w.count > self.max_pending).then(|| w.evict()).flatten();
            w.tidy(self.max_pending);
            evicted
        };
        if let Some(p) = evicted {
            p.evicted.notify_one();
        }
        Ok(Ticket {
            admission: self.clone(),
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

    /// Moves `p` from waiting to `to`; false if it had already left.
    fn leave(&self, p: &Pending, to: u8) -> bool {
        let mut w = self.waiting.lock();
        w.leave(p, to)
    }
}

impl Waiting {
    fn leave(&mut self, p: &Pending, to: u8) -> bool {
        if p.state
            .compare_exchange(WAITING, to, Ordering::AcqRel, Ordering::Acquire)
            .is_err()
        {
            return false;
        }
        self.count -= 1;
        if let Some(n) = self.per_address.get_mut(&p.address) {
            *n -= 1;
            if *n == 0 {
                self.per_address.remove(&p.address);
            }
        }
        true
    }

    /// Dismisses the longest waiter of the address with the most waiters.
    fn evict(&mut self) -> Option<Arc<Pending>> {
        let (&address, _) = self.per_address.iter().max_by_key(|(_, n)| **n)?;
        let i = self
            .queue
            .iter()
            .position(|p| p.address == address && p.is_waiting())?;
        let p = self.queue.remove(i)?;
        self.leave(&p, DISMISSED).then_some(p)
    }

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
                if self.admission.leave(&self.pending, DISMISSED) {
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
        if self.pending.is_waiting() {
            self.admission.leave(&self.pending, STARTED);
        }
    }
}

impl Drop for Ticket {
    fn drop(&mut self) {
        self.admission.leave(&self.pending, DISMISSED);
        self.admission.release_address(self.pending.address);
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

    #[test]
    fn ipv6_clients_count_by_their_64() {
        let a: IpAddr = "2001:db8:1:2:aaaa::1".parse().unwrap();
        let b: IpAddr = "2001:db8:1:2:bbbb::2".parse().unwrap();
        let c: IpAddr = "2001:db8:1:3::1".parse().unwrap();
        assert_eq!(address_key(a), address_key(b));
        assert_ne!(address_key(a), address_key(c));
        let mapped: IpAddr = "::ffff:10.0.0.1".parse().unwrap();
        assert_eq!(address_key(mapped), ip_v4(10, 0, 0, 1));
        let adm = Admission::new(&limits(100, 2, 50));
        let _t = (adm.admit(a).unwrap(), adm.admit(b).unwrap());
        assert_eq!(adm.admit(c).map(|_| ()), Ok(()));
        assert_eq!(adm.admit(a).unwrap_err(), Refused::AddressFull);
    }

    fn ip_v4(a: u8, b: u8, c: u8, d: u8) -> IpAddr {
        IpAddr::from([a, b, c, d])
    }

    #[tokio::test]
    async fn a_flooding_address_evicts_its_own_waiters_first() {
        let a = Admission::new(&limits(100, 100, 4));
        let honest = a.admit(ip(1)).unwrap();
        let flood: Vec<Ticket> = (0..10).map(|_| a.admit(ip(2)).unwrap()).collect();
        assert_eq!(a.waiting.lock().count, 4);
        // The honest connection waited longest, yet the flood made room from itself.
        assert!(
            tokio::time::timeout(
                Duration::from_millis(50),
                honest.dismissed(Duration::from_secs(60))
            )
            .await
            .is_err(),
            "the honest waiter stays"
        );
        assert_eq!(a.waiting.lock().per_address.get(&ip(2)), Some(&3));
        drop(flood);
        assert_eq!(a.waiting.lock().count, 1);
    }

    #[tokio::test]
    async fn the_longest_waiting_connection_makes_room_and_started_ones_never_do() {
        let a = Admission::new(&limits(100, 100, 2));
        let first = a.admit(ip(1)).unwrap();
        let second = a.admit(ip(1)).unwrap();
        // The first sends its request: it no longer waits, so it is never evicted.
        first.arrivals().request_arrived();
        let third = a.admit(ip(1)).unwrap();
        assert_eq!(a.waiting.lock().count, 2);
        let fourth = a.admit(ip(1)).unwrap();
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
