//! Balancing algorithms, as pure functions over a [`Candidates`] view: no sockets, no clocks,
//! no allocation on the pick path. The pool describes its members (which are eligible, their
//! effective weights, their slow-start ramp, their in-flight requests) and gets back an index.
//!
//! One file per algorithm. [`Balance`] is the name a pool's `balance` key gives it;
//! [`Balancer`] is its state for one membership snapshot and the one place that dispatches
//! to it. A new algorithm is a new file and an arm in each of the two enums.

mod least_conn;
mod least_requests;
mod maglev;
mod random;
mod round_robin;

pub use least_conn::LeastConn;
pub use least_requests::least_requests;
pub use maglev::Maglev;
pub use random::random;
#[cfg(test)]
use round_robin::MAX_SEQUENCE;
pub use round_robin::{RoundRobin, smooth_weighted_sequence};

/// `pool.*.balance`: the algorithm a pool picks its backends with.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Balance {
    /// Smooth weighted round robin.
    #[default]
    RoundRobin,
    /// Power of two choices on in-flight requests.
    LeastRequests,
    /// The fewest in-flight requests per unit of weight, every member compared.
    LeastConn,
    /// Uniform random, weighted.
    Random,
    /// Consistent hashing on `hash_key`.
    ConsistentHash,
}

impl Balance {
    /// Every algorithm.
    pub const ALL: [Balance; 5] = [
        Balance::RoundRobin,
        Balance::LeastRequests,
        Balance::LeastConn,
        Balance::Random,
        Balance::ConsistentHash,
    ];

    /// Whether the algorithm picks by the request's `hash_key`.
    pub fn uses_key(self) -> bool {
        self == Balance::ConsistentHash
    }
}

/// An algorithm's state for one membership snapshot: built with the pool, never changed.
#[derive(Debug)]
pub enum Balancer {
    /// `round_robin`.
    RoundRobin(RoundRobin),
    /// `random`.
    Random,
    /// `least_requests`.
    LeastRequests,
    /// `least_conn`.
    LeastConn(LeastConn),
    /// `consistent_hash`.
    ConsistentHash(Maglev),
}

impl Balancer {
    /// The state of `balance` for members with these `weights` and `names` (their addresses,
    /// which identify them across rebuilds), by index.
    pub fn new(balance: Balance, weights: &[u32], names: &[&str]) -> Self {
        match balance {
            Balance::RoundRobin => Balancer::RoundRobin(RoundRobin::new(weights)),
            Balance::Random => Balancer::Random,
            Balance::LeastRequests => Balancer::LeastRequests,
            Balance::LeastConn => Balancer::LeastConn(LeastConn::default()),
            Balance::ConsistentHash => Balancer::ConsistentHash(Maglev::new(names, weights)),
        }
    }

    /// The member for a request whose hash key is `key` (when it has one), or `None` when no
    /// candidate is eligible.
    pub fn pick(
        &self,
        c: &impl Candidates,
        key: Option<u64>,
        rng: &mut fastrand::Rng,
    ) -> Option<usize> {
        match (self, key) {
            (Balancer::RoundRobin(rr), _) => rr.pick(c, rng),
            (Balancer::Random, _) => random(c, rng),
            (Balancer::LeastRequests, _) => least_requests(c, rng),
            (Balancer::LeastConn(lc), _) => lc.pick(c),
            (Balancer::ConsistentHash(maglev), Some(key)) => maglev.pick(key, c, rng),
            // No key in this request (no header, no cookie): spread at random.
            (Balancer::ConsistentHash(_), None) => random(c, rng),
        }
    }
}

/// A stable 64-bit hash of a consistent-hashing key (the same on every portero).
pub fn key_hash(bytes: &[u8]) -> u64 {
    maglev::hash(b"key", bytes)
}

/// The key hash of a client's IP address (`hash_key = "client_ip"`).
pub fn client_ip_key(ip: std::net::IpAddr) -> u64 {
    match ip {
        std::net::IpAddr::V4(ip) => key_hash(&ip.octets()),
        std::net::IpAddr::V6(ip) => key_hash(&ip.octets()),
    }
}

/// What an algorithm may know about the members of a pool, by index.
pub trait Candidates {
    /// How many members there are.
    fn len(&self) -> usize;
    /// Whether there are none.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// Whether member `i` may be picked.
    fn eligible(&self, i: usize) -> bool;
    /// Its configured weight.
    fn weight(&self, i: usize) -> u32;
    /// Its slow-start share, in (0, 1]: 1 once ramped up.
    fn ramp(&self, i: usize) -> f64;
    /// Requests in flight to it.
    fn in_flight(&self, i: usize) -> u64;

    /// Weight times ramp: what weighted algorithms draw by.
    fn effective_weight(&self, i: usize) -> f64 {
        f64::from(self.weight(i)) * self.ramp(i)
    }
}

/// Keeps `index` with probability `ramp` (slow start for algorithms that walk an order).
fn accepts(ramp: f64, rng: &mut fastrand::Rng) -> bool {
    ramp >= 1.0 || rng.f64() < ramp
}

/// Walks `order` (indexes) and returns the first eligible member its ramp accepts; when the
/// ramp turns every eligible one down, the first eligible one.
fn first_accepted(
    order: impl Iterator<Item = usize>,
    c: &impl Candidates,
    rng: &mut fastrand::Rng,
) -> Option<usize> {
    let mut fallback = None;
    for index in order {
        if !c.eligible(index) {
            continue;
        }
        if accepts(c.ramp(index), rng) {
            return Some(index);
        }
        fallback.get_or_insert(index);
    }
    fallback
}

#[cfg(test)]
pub(crate) mod view;

#[cfg(test)]
mod tests;
