//! The clients of one pool's members, by the members' index: what a pick's index reaches.

use super::{Upstream, UpstreamSettings};
use std::net::SocketAddr;

/// One [`Upstream`] per member of a pool, in the pool's member order. Built with each new
/// pool snapshot; the client of an address that stays is carried over from the previous
/// snapshot, with its idle connections, the way its backend is.
#[derive(Debug)]
pub struct PoolClients {
    clients: Box<[(SocketAddr, Upstream)]>,
}

impl PoolClients {
    /// Clients for the members at `addresses`, reusing `previous`'s where the address is the
    /// same and making new ones (no connections yet) with `settings` for the rest.
    pub fn build(
        addresses: impl Iterator<Item = SocketAddr>,
        settings: &UpstreamSettings,
        previous: Option<&PoolClients>,
    ) -> Self {
        let clients = addresses
            .map(|address| {
                let old = previous.and_then(|p| p.by_address(address));
                let client = old
                    .cloned()
                    .unwrap_or_else(|| Upstream::new(settings, address));
                (address, client)
            })
            .collect();
        Self { clients }
    }

    /// The client of member `index`.
    pub fn get(&self, index: usize) -> &Upstream {
        &self.clients[index].1
    }

    /// The client of the member at `address`.
    pub fn by_address(&self, address: SocketAddr) -> Option<&Upstream> {
        self.clients
            .iter()
            .find(|(a, _)| *a == address)
            .map(|(_, client)| client)
    }
}
