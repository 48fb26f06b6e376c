//! A pool: an immutable list of members (a backend and its weight) plus the balancer state
//! for exactly that list. Membership never changes in place: a new `Pool` is built and
//! swapped in whole with the rest of the [`Snapshot`](crate::snapshot::Snapshot), reusing
//! the live [`Backend`] of every address that stays, so its health, in-flight count and
//! pooled connections carry over.

use crate::backend::{Backend, BackendSpec};
use crate::balance::RoundRobin;
use crate::config::PoolConfig;
use crate::upstream::{Upstream, UpstreamSettings};
use std::sync::Arc;

/// A backend's place in a pool.
#[derive(Debug, Clone)]
pub struct Member {
    /// The live backend.
    pub backend: Arc<Backend>,
    /// Its weight in this pool.
    pub weight: u32,
}

/// An immutable pool snapshot.
#[derive(Debug)]
pub struct Pool {
    name: Arc<str>,
    members: Vec<Member>,
    round_robin: RoundRobin,
}

impl Pool {
    /// Builds the pool for `config`, taking live backends from `previous` where the address
    /// is the same and making new ones (with new upstream clients) for the rest.
    pub fn build(
        config: &PoolConfig,
        settings: &UpstreamSettings,
        previous: Option<&Pool>,
    ) -> Pool {
        let members = config
            .backends
            .iter()
            .map(|spec| Member {
                backend: previous.and_then(|p| p.backend(spec)).unwrap_or_else(|| {
                    Arc::new(Backend::new(spec.address, Upstream::new(settings)))
                }),
                weight: spec.weight,
            })
            .collect();
        Self::from_members(Arc::from(config.name.as_str()), members)
    }

    /// A pool over the given members.
    pub fn from_members(name: Arc<str>, members: Vec<Member>) -> Pool {
        let weights: Vec<u32> = members.iter().map(|m| m.weight).collect();
        Pool {
            name,
            round_robin: RoundRobin::new(&weights),
            members,
        }
    }

    fn backend(&self, spec: &BackendSpec) -> Option<Arc<Backend>> {
        self.members
            .iter()
            .find(|m| m.backend.address() == spec.address)
            .map(|m| Arc::clone(&m.backend))
    }

    /// The pool's name.
    pub fn name(&self) -> &Arc<str> {
        &self.name
    }

    /// The members, in config order.
    pub fn members(&self) -> &[Member] {
        &self.members
    }

    /// The backend for the next request, or `None` when no member can take it.
    pub fn pick(&self) -> Option<&Arc<Backend>> {
        let index = self
            .round_robin
            .pick(|i| self.members[i].backend.is_selectable())?;
        Some(&self.members[index].backend)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::BackendState;
    use crate::config::{Balance, UpstreamProtocol};
    use std::time::Duration;

    fn settings() -> UpstreamSettings {
        UpstreamSettings {
            protocol: UpstreamProtocol::Http1,
            connect_timeout: Duration::from_secs(1),
            idle_timeout: Duration::from_secs(60),
        }
    }

    fn config(backends: &[(&str, u32)]) -> PoolConfig {
        PoolConfig {
            name: "api".into(),
            balance: Balance::RoundRobin,
            protocol: UpstreamProtocol::Http1,
            backends: backends
                .iter()
                .map(|(a, w)| BackendSpec::new(a.parse().unwrap(), *w))
                .collect(),
        }
    }

    #[test]
    fn picks_by_weight_and_skips_unhealthy() {
        let pool = Pool::build(
            &config(&[("10.0.0.1:80", 2), ("10.0.0.2:80", 1)]),
            &settings(),
            None,
        );
        let picks: Vec<_> = (0..6)
            .map(|_| pool.pick().unwrap().address().port())
            .collect();
        assert_eq!(picks.len(), 6);
        let first = pool.members()[0].backend.address();
        assert_eq!(
            (0..300)
                .filter(|_| pool.pick().unwrap().address() == first)
                .count(),
            200
        );
        pool.members()[0].backend.set_state(BackendState::Unhealthy);
        assert!((0..50).all(|_| pool.pick().unwrap().address() != first));
        pool.members()[1].backend.set_state(BackendState::Draining);
        assert!(pool.pick().is_none());
    }

    #[test]
    fn rebuild_keeps_live_backends_that_stay() {
        let old = Pool::build(
            &config(&[("10.0.0.1:80", 1), ("10.0.0.2:80", 1)]),
            &settings(),
            None,
        );
        old.members()[0].backend.set_state(BackendState::Unhealthy);
        let new = Pool::build(
            &config(&[("10.0.0.1:80", 5), ("10.0.0.3:80", 1)]),
            &settings(),
            Some(&old),
        );
        assert!(Arc::ptr_eq(
            &old.members()[0].backend,
            &new.members()[0].backend
        ));
        assert_eq!(new.members()[0].backend.state(), BackendState::Unhealthy);
        assert_eq!(new.members()[0].weight, 5);
        assert_eq!(new.members()[1].backend.state(), BackendState::Healthy);
    }
}
