//! The clients of one pool's members, by the members' index: what a pick's index reaches.

use super::{Upstream, UpstreamSettings};
use crate::pool::Pool;

/// One [`Upstream`] per member of a pool, in the pool's member order. Built with each new
/// pool snapshot; the client of an address that stays is carried over from the previous
/// snapshot, with its idle connections, the way its backend is.
#[derive(Debug)]
pub struct PoolClients {
    clients: Box<[Upstream]>,
}

impl PoolClients {
    /// Clients for the members of `pool`, reusing those of `previous` (the pool it replaces
    /// and its clients) where the address is the same and making new ones (no connections
    /// yet) with `settings` for the rest.
    pub fn build(
        pool: &Pool,
        settings: &UpstreamSettings,
        previous: Option<(&Pool, &PoolClients)>,
    ) -> Self {
        let clients = pool
            .members()
            .iter()
            .map(|member| {
                let address = member.backend.address();
                let kept = previous.and_then(|(old, clients)| {
                    let index = old
                        .members()
                        .iter()
                        .position(|m| m.backend.address() == address)?;
                    Some(clients.get(index).clone())
                });
                kept.unwrap_or_else(|| Upstream::new(settings, address))
            })
            .collect();
        Self { clients }
    }

    /// The client of member `index`.
    pub fn get(&self, index: usize) -> &Upstream {
        &self.clients[index]
    }
}
