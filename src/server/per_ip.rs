//! Open connections per client address (`security.max_connections_per_ip`): a count per
//! address while it has connections, removed at zero, so the table holds only addresses with
//! open connections (bounded by the admission ceiling).

use dashmap::DashMap;
use dashmap::mapref::entry::Entry;
use std::net::IpAddr;
use std::sync::Arc;

/// The client already holds `max_connections_per_ip` connections.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("too many connections from this address")]
pub struct OverLimit;

/// The counts.
#[derive(Debug, Default)]
pub struct PerIp {
    open: DashMap<IpAddr, u32>,
}

/// One counted connection; uncounted when dropped.
#[derive(Debug)]
pub struct PerIpSlot {
    table: Arc<PerIp>,
    ip: IpAddr,
}

impl PerIp {
    /// Counts a connection from `ip` if it has fewer than `limit` open; `limit` 0 = no limit
    /// (nothing is counted).
    pub fn try_open(
        self: &Arc<Self>,
        ip: IpAddr,
        limit: u32,
    ) -> Result<Option<Box<PerIpSlot>>, OverLimit> {
        if limit == 0 {
            return Ok(None);
        }
        let ip = ip.to_canonical();
        let mut count = self.open.entry(ip).or_insert(0);
        if *count >= limit {
            return Err(OverLimit);
        }
        *count += 1;
        // Boxed: the slot lives in the connection's task for its whole life, and most
        // connections (limit 0, the default) have none: `None` costs a pointer, not 32 bytes.
        Ok(Some(Box::new(PerIpSlot {
            table: Arc::clone(self),
            ip,
        })))
    }

    /// Addresses with open connections.
    pub fn len(&self) -> usize {
        self.open.len()
    }

    /// Whether no address is counted.
    pub fn is_empty(&self) -> bool {
        self.open.is_empty()
    }
}

impl Drop for PerIpSlot {
    fn drop(&mut self) {
        if let Entry::Occupied(mut entry) = self.table.open.entry(self.ip) {
            *entry.get_mut() -= 1;
            if *entry.get() == 0 {
                entry.remove();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_up_to_the_limit_and_forgets_at_zero() {
        let table = Arc::new(PerIp::default());
        let ip: IpAddr = "192.0.2.1".parse().unwrap();
        let a = table.try_open(ip, 2).unwrap();
        let b = table.try_open(ip, 2).unwrap();
        assert!(table.try_open(ip, 2).is_err());
        assert!(table.try_open("192.0.2.2".parse().unwrap(), 2).is_ok());
        drop(a);
        let c = table.try_open(ip, 2).unwrap();
        drop((b, c));
        assert!(table.is_empty());
        assert!(table.try_open(ip, 0).unwrap().is_none(), "0 = off");
        assert!(table.is_empty());
    }
}
