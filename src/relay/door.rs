//! Who gets in: the connection limit, a limit per peer address, and a rate of new connections
//! per address, checked the moment a connection is accepted.
//!
//! Without the per-address limits one peer holding `max_connections` idle or half-handshaken
//! sockets locks every broadcaster out. Addresses are grouped as an attacker holds them: an
//! IPv4 address alone, an IPv6 address by its /64 (one host gets a whole /64). Many addresses
//! together can still fill the door with connections that never publish; so when it is full,
//! a newcomer evicts the oldest connection that has not published after [`EVICTABLE_AFTER`]
//! (a real broadcaster publishes within a second), and only a door full of streams refuses.

use crate::locks::Locked;
use std::collections::BTreeMap;
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;

/// A connection that has not published for this long may be evicted for a newcomer.
pub const EVICTABLE_AFTER: Duration = Duration::from_secs(2);

/// The door's settings (`[limits]`).
#[derive(Debug, Clone, Copy)]
pub struct DoorLimits {
    /// Most open connections in all.
    pub max_connections: usize,
    /// Most open connections from one address (0: no limit).
    pub max_per_address: usize,
    /// New connections per second one address may open, sustained (0: no limit).
    pub rate_per_address: f64,
    /// New connections one address may open at once before the rate applies.
    pub burst_per_address: f64,
}

/// Why a connection was turned away.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// `limits.max_connections`.
    Total,
    /// `limits.max_connections_per_address`.
    PerAddress,
    /// `limits.connection_rate_per_address`.
    Rate,
}

impl Refusal {
    /// The config key of the limit.
    pub fn limit(self) -> &'static str {
        match self {
            Refusal::Total => "max_connections",
            Refusal::PerAddress => "max_connections_per_address",
            Refusal::Rate => "connection_rate_per_address",
        }
    }
}

/// An address's open connections and its token bucket.
#[derive(Debug)]
struct Peer {
    open: usize,
    tokens: f64,
    refilled: Instant,
}

/// Counts connections in total and per address.
#[derive(Debug)]
pub struct Door {
    limits: DoorLimits,
    open: AtomicUsize,
    peers: Mutex<HashMap<IpAddr, Peer>>,
    /// Connections not yet publishing, oldest first: when they came, and how to end them.
    waiting: Mutex<BTreeMap<u64, (Instant, CancellationToken)>>,
    next_seq: std::sync::atomic::AtomicU64,
}

/// An admitted connection; its slots free when dropped.
#[derive(Debug)]
pub struct Admission {
    door: Arc<Door>,
    group: IpAddr,
    seq: u64,
    evicted: CancellationToken,
}

impl Door {
    /// A door with `limits`.
    pub fn new(limits: DoorLimits) -> Door {
        Door {
            limits,
            open: AtomicUsize::new(0),
            peers: Mutex::new(HashMap::new()),
            waiting: Mutex::new(BTreeMap::new()),
            next_seq: std::sync::atomic::AtomicU64::new(0),
        }
    }

    /// Ends the oldest connection that has waited [`EVICTABLE_AFTER`] without publishing;
    /// whether there was one.
    fn evict_oldest_waiting(&self, now: Instant) -> bool {
        let mut waiting = self.waiting.locked();
        let oldest = waiting
            .iter()
            .next()
            .filter(|(_, (since, _))| now.saturating_duration_since(*since) >= EVICTABLE_AFTER)
            .map(|(seq, _)| *seq);
        match oldest.and_then(|seq| waiting.remove(&seq)) {
            Some((_, token)) => {
                token.cancel();
                true
            }
            None => false,
        }
    }

    /// Connections open now.
    pub fn open(&self) -> usize {
        self.open.load(Ordering::Acquire)
    }

    /// Lets a connection from `peer` in, or says which limit refuses it.
    pub fn admit(self: &Arc<Self>, peer: IpAddr) -> Result<Admission, Refusal> {
        let group = group_of(peer);
        let now = Instant::now();
        let mut peers = self.peers.locked();
        if peers.len() > 4 * self.limits.max_connections.max(256) {
            // Forget idle addresses whose buckets have refilled: the map stays bounded.
            let limits = self.limits;
            peers.retain(|_, p| p.open > 0 || !p.full(now, limits));
        }
        let entry = peers.entry(group).or_insert(Peer {
            open: 0,
            tokens: self.limits.burst_per_address,
            refilled: now,
        });
        entry.refill(now, self.limits);
        if self.limits.rate_per_address > 0.0 {
            if entry.tokens < 1.0 {
                return Err(Refusal::Rate);
            }
            entry.tokens -= 1.0;
        }
        if self.limits.max_per_address > 0 && entry.open >= self.limits.max_per_address {
            return Err(Refusal::PerAddress);
        }
        let total = self.limits.max_connections;
        let room = self
            .open
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < total).then_some(n + 1)
            })
            .is_ok();
        if !room {
            // The evicted connection frees its slot as it closes, a moment later: until then
            // the count runs over by the evictions in flight.
            if !self.evict_oldest_waiting(now) {
                return Err(Refusal::Total);
            }
            self.open.fetch_add(1, Ordering::AcqRel);
        }
        entry.open += 1;
        drop(peers);
        let seq = self.next_seq.fetch_add(1, Ordering::Relaxed);
        let evicted = CancellationToken::new();
        self.waiting.locked().insert(seq, (now, evicted.clone()));
        Ok(Admission {
            door: self.clone(),
            group,
            seq,
            evicted,
        })
    }
}

impl Peer {
    fn refill(&mut self, now: Instant, limits: DoorLimits) {
        let elapsed = now.saturating_duration_since(self.refilled).as_secs_f64();
        self.tokens =
            (self.tokens + elapsed * limits.rate_per_address).min(limits.burst_per_address);
        self.refilled = now;
    }

    fn full(&self, now: Instant, limits: DoorLimits) -> bool {
        let elapsed = now.saturating_duration_since(self.refilled).as_secs_f64();
        self.tokens + elapsed * limits.rate_per_address >= limits.burst_per_address
    }
}

impl Admission {
    /// The connection published: it is a stream now, never evicted.
    pub fn published(&self) {
        self.door.waiting.locked().remove(&self.seq);
    }

    /// Resolves when a newcomer evicted this connection before it published.
    pub async fn evicted(&self) {
        self.evicted.cancelled().await;
    }
}

impl Drop for Admission {
    fn drop(&mut self) {
        self.published();
        self.door.open.fetch_sub(1, Ordering::AcqRel);
        let mut peers = self.door.peers.locked();
        if let Some(peer) = peers.get_mut(&self.group) {
            peer.open = peer.open.saturating_sub(1);
        }
    }
}

/// The address group a limit counts `peer` in: IPv4 alone (IPv4-mapped IPv6 too), IPv6 by /64.
pub fn group_of(peer: IpAddr) -> IpAddr {
    match peer {
        IpAddr::V4(v4) => IpAddr::V4(v4),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let s = v6.segments();
                IpAddr::V6(std::net::Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0))
            }
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn door(total: usize, per: usize, rate: f64, burst: f64) -> Arc<Door> {
        Arc::new(Door::new(DoorLimits {
            max_connections: total,
            max_per_address: per,
            rate_per_address: rate,
            burst_per_address: burst,
        }))
    }

    fn ip(text: &str) -> IpAddr {
        text.parse().expect("address")
    }

    #[test]
    fn one_address_cannot_take_every_slot() {
        let d = door(10, 3, 0.0, 0.0);
        let held: Vec<_> = (0..3)
            .map(|_| d.admit(ip("10.0.0.1")).expect("in"))
            .collect();
        assert_eq!(d.admit(ip("10.0.0.1")).err(), Some(Refusal::PerAddress));
        let other = d.admit(ip("10.0.0.2"));
        assert!(other.is_ok(), "another address still gets in");
        drop(held);
        let again = d.admit(ip("10.0.0.1"));
        assert!(again.is_ok(), "slots free when connections end");
        assert_eq!(d.open(), 2);
    }

    #[test]
    fn ipv6_hosts_are_counted_by_their_64() {
        let d = door(10, 2, 0.0, 0.0);
        let _a = d.admit(ip("2001:db8:1:2::1")).expect("in");
        let _b = d.admit(ip("2001:db8:1:2:ffff::9")).expect("in");
        assert_eq!(
            d.admit(ip("2001:db8:1:2:dead::1")).err(),
            Some(Refusal::PerAddress)
        );
        assert!(d.admit(ip("2001:db8:1:3::1")).is_ok());
        assert_eq!(group_of(ip("::ffff:10.1.2.3")), ip("10.1.2.3"));
    }

    #[test]
    fn the_rate_allows_a_burst_then_refuses() {
        let d = door(100, 0, 1.0, 3.0);
        let held: Vec<_> = (0..3)
            .map(|_| d.admit(ip("10.0.0.1")).expect("burst"))
            .collect();
        assert_eq!(d.admit(ip("10.0.0.1")).err(), Some(Refusal::Rate));
        assert!(d.admit(ip("10.0.0.9")).is_ok());
        drop(held);
        assert_eq!(
            d.admit(ip("10.0.0.1")).err(),
            Some(Refusal::Rate),
            "closing does not refund the rate"
        );
    }

    #[test]
    fn a_full_door_of_streams_refuses_and_one_of_idlers_evicts_the_oldest() {
        let d = door(2, 0, 0.0, 0.0);
        let a = d.admit(ip("10.0.0.1")).expect("in");
        let b = d.admit(ip("10.0.0.2")).expect("in");
        assert_eq!(
            d.admit(ip("10.0.0.3")).err(),
            Some(Refusal::Total),
            "nobody has waited long enough to be evicted"
        );
        // Make both look old.
        for (since, _) in d.waiting.locked().values_mut() {
            *since -= EVICTABLE_AFTER;
        }
        b.published();
        let c = d.admit(ip("10.0.0.3")).expect("evicts the oldest idler");
        assert!(
            a.evicted.is_cancelled(),
            "the one that never published goes"
        );
        assert!(!b.evicted.is_cancelled(), "a stream is never evicted");
        drop(a);
        assert_eq!(d.open(), 2);
        c.published();
        assert_eq!(d.admit(ip("10.0.0.4")).err(), Some(Refusal::Total));
    }
}
