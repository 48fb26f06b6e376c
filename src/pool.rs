//! A pool: an immutable list of members (a backend and its weight), the balancer built for
//! exactly that list, and the pool's policies (panic threshold, slow start, outlier limits,
//! retry budget). Membership never changes in place: a new `Pool` is built and swapped in whole
//! with the rest of the snapshot, reusing the live [`Backend`] of every address that stays, so
//! its health and in-flight count carry over (the connections to it carry over the same way,
//! in `upstream::PoolClients`, kept beside the pool by member index).

mod retry_budget;
mod slow_start;

pub use retry_budget::RetryBudget;
pub use slow_start::slow_start_factor;

use crate::backend::{Backend, BackendSpec};
use crate::balance::{Balancer, Candidates};
use crate::config::PoolConfig;
use crate::metrics::{ByClass, PoolSeries};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

/// A backend's place in a pool.
#[derive(Debug, Clone)]
pub struct Member {
    /// The live backend.
    pub backend: Arc<Backend>,
    /// Its weight in this pool.
    pub weight: u32,
    /// Its `portero_upstream_requests_total{pool,backend,code_class}` series, carried over
    /// with the backend.
    pub requests: Arc<ByClass>,
}

/// An immutable pool snapshot.
#[derive(Debug)]
pub struct Pool {
    name: Arc<str>,
    config: PoolConfig,
    members: Vec<Member>,
    balancer: Balancer,
    retry_budget: Arc<RetryBudget>,
    series: PoolSeries,
}

/// What a pick needs to know about the request.
#[derive(Debug, Clone, Copy)]
pub struct PickRequest<'a> {
    /// Now, in µs on [`crate::clock::now_us`].
    pub now: u64,
    /// The consistent-hash key's hash, when the pool hashes and the request has the key.
    pub key: Option<u64>,
    /// Backends already tried for this request (retries go elsewhere).
    pub exclude: &'a [SocketAddr],
}

/// A pick.
#[derive(Debug)]
pub struct Picked<'a> {
    /// The member's index, which its client in `upstream::PoolClients` shares.
    pub index: usize,
    /// The backend.
    pub backend: &'a Arc<Backend>,
    /// Whether panic mode chose it (fewer than half the pool healthy: spread over all).
    pub panic: bool,
}

impl Pool {
    /// Builds the pool for `config` with the members `specs` (the config's `backends`, or the
    /// latest set from discovery or a push), taking live backends from `previous` where the address
    /// is the same and making new ones for the rest. New backends of a pool that already ran
    /// start their slow-start ramp `now`.
    pub fn build(
        config: &PoolConfig,
        specs: &[BackendSpec],
        previous: Option<&Pool>,
        now: u64,
    ) -> Pool {
        let up_since = if previous.is_some() { now } else { 0 };
        let unproven = !config.allows_panic();
        let members = specs
            .iter()
            .map(|spec| match previous.and_then(|p| p.member(spec.address)) {
                Some(old) => Member {
                    weight: spec.weight,
                    ..old.clone()
                },
                None => Member {
                    backend: Arc::new(if unproven {
                        Backend::unproven(spec.address)
                    } else {
                        Backend::new(spec.address, up_since)
                    }),
                    weight: spec.weight,
                    requests: Arc::default(),
                },
            })
            .collect();
        let retry_budget = previous
            .map(|p| Arc::clone(&p.retry_budget))
            .unwrap_or_else(|| Arc::new(RetryBudget::new(config.retry_budget, now)));
        Self::from_members(config.clone(), members, retry_budget)
    }

    fn from_members(
        config: PoolConfig,
        members: Vec<Member>,
        retry_budget: Arc<RetryBudget>,
    ) -> Pool {
        let weights: Vec<u32> = members.iter().map(|m| m.weight).collect();
        let names: Vec<&str> = members.iter().map(|m| &**m.backend.label()).collect();
        let balancer = Balancer::new(config.balance, &weights, &names);
        Pool {
            name: Arc::from(config.name.as_str()),
            config,
            members,
            balancer,
            retry_budget,
            series: PoolSeries::default(),
        }
    }

    fn member(&self, address: SocketAddr) -> Option<&Member> {
        self.members.iter().find(|m| m.backend.address() == address)
    }

    /// The pool's name.
    pub fn name(&self) -> &Arc<str> {
        &self.name
    }

    /// The metric series its requests are counted in.
    pub fn series(&self) -> &PoolSeries {
        &self.series
    }

    /// The config it was built from.
    pub fn config(&self) -> &PoolConfig {
        &self.config
    }

    /// The members, in config order.
    pub fn members(&self) -> &[Member] {
        &self.members
    }

    /// The retry budget (shared with the pools this one replaces).
    pub fn retry_budget(&self) -> &RetryBudget {
        &self.retry_budget
    }

    /// The backend for a request, or `None` when no member is healthy (and not excluded).
    /// Outside panic mode only healthy members are candidates; in panic mode (fewer than half
    /// the members that could take traffic are healthy, but at least one is) every one of
    /// them is, so the last healthy backends are not crushed.
    ///
    /// A pool whose members all drain is one a swap replaced after the request loaded its
    /// snapshot: a live pool never holds a draining member (an address that comes back gets
    /// a new one). Its backends are within their drain time and the request was under way
    /// when they were removed, so it goes to them rather than failing with 503.
    pub fn pick(&self, request: &PickRequest<'_>) -> Option<Picked<'_>> {
        let replaced = self.members.iter().all(|m| m.backend.is_draining());
        let (mut usable, mut healthy) = (0usize, 0usize);
        for member in &self.members {
            let backend = &member.backend;
            if (backend.is_draining() && !replaced) || request.exclude.contains(&backend.address())
            {
                continue;
            }
            usable += 1;
            healthy += usize::from(is_healthy(backend, request.now, replaced));
        }
        if healthy == 0 {
            return None;
        }
        let panic = healthy * 2 < usable && self.config.allows_panic();
        let view = View {
            pool: self,
            request,
            panic,
            replaced,
        };
        let mut rng = fastrand::Rng::with_seed(fastrand::u64(..));
        let index = self.balancer.pick(&view, request.key, &mut rng)?;
        Some(Picked {
            index,
            backend: &self.members[index].backend,
            panic,
        })
    }

    /// Ejects `backend` for passive outlier detection unless half the pool is out already.
    /// Returns the ejection's length when it was ejected.
    pub fn try_eject(&self, backend: &Backend, now: u64) -> Option<Duration> {
        let ejected = self
            .members
            .iter()
            .filter(|m| m.backend.ejected_at(now))
            .count();
        if (ejected + 1) * 2 > self.members.len() {
            return None;
        }
        Some(backend.eject(now, self.config.outlier.ejection))
    }
}

/// Whether `backend` counts as healthy for a pick at `now`: up and not draining, or only up
/// in a pool `replaced` under the request.
fn is_healthy(backend: &Backend, now: u64, replaced: bool) -> bool {
    if replaced {
        backend.is_up(now)
    } else {
        backend.is_selectable(now)
    }
}

/// The pool's members as the balancing algorithms see them for one pick.
struct View<'a> {
    pool: &'a Pool,
    request: &'a PickRequest<'a>,
    panic: bool,
    /// Every member drains: the pool was replaced under the request (see [`Pool::pick`]).
    replaced: bool,
}

impl Candidates for View<'_> {
    fn len(&self) -> usize {
        self.pool.members.len()
    }

    fn eligible(&self, i: usize) -> bool {
        let backend = &self.pool.members[i].backend;
        (self.replaced || !backend.is_draining())
            && !self.request.exclude.contains(&backend.address())
            && (self.panic || is_healthy(backend, self.request.now, self.replaced))
    }

    fn weight(&self, i: usize) -> u32 {
        self.pool.members[i].weight
    }

    fn ramp(&self, i: usize) -> f64 {
        let since = self.pool.members[i].backend.up_since();
        if since == 0 {
            // In the pool since the daemon started: nothing to ramp.
            return 1.0;
        }
        let elapsed = Duration::from_micros(self.request.now.saturating_sub(since));
        slow_start_factor(elapsed, self.pool.config.slow_start)
    }

    fn in_flight(&self, i: usize) -> u64 {
        self.pool.members[i].backend.in_flight()
    }
}

#[cfg(test)]
mod tests;
