//! Allow and deny lists of CIDRs: for the whole daemon (checked when a connection is accepted,
//! after any PROXY header has named the real client) and per route (checked per request).
//! Deny always wins; a non-empty allow list refuses everyone it does not name. Pure.

use ipnet::IpNet;
use std::net::IpAddr;

/// Who may pass.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AccessList {
    allow: Vec<IpNet>,
    deny: Vec<IpNet>,
}

impl AccessList {
    /// A list from the config's `allow` and `deny`.
    pub fn new(allow: Vec<IpNet>, deny: Vec<IpNet>) -> Self {
        Self { allow, deny }
    }

    /// Whether the list lets everyone through (nothing to check).
    pub fn is_open(&self) -> bool {
        self.allow.is_empty() && self.deny.is_empty()
    }

    /// Whether `ip` may pass. An IPv4 client seen as an IPv4-mapped IPv6 address (a dual-stack
    /// listener) is matched as IPv4.
    pub fn permits(&self, ip: IpAddr) -> bool {
        let ip = ip.to_canonical();
        if self.deny.iter().any(|net| net.contains(&ip)) {
            return false;
        }
        self.allow.is_empty() || self.allow.iter().any(|net| net.contains(&ip))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nets(list: &[&str]) -> Vec<IpNet> {
        list.iter().map(|n| n.parse().unwrap()).collect()
    }

    #[test]
    fn deny_wins_and_allow_closes_the_rest() {
        let list = AccessList::new(
            nets(&["10.0.0.0/8", "2001:db8::/32"]),
            nets(&["10.6.0.0/16"]),
        );
        assert!(list.permits("10.1.2.3".parse().unwrap()));
        assert!(
            !list.permits("10.6.0.1".parse().unwrap()),
            "denied inside allowed"
        );
        assert!(!list.permits("192.0.2.1".parse().unwrap()), "not allowed");
        assert!(list.permits("2001:db8::1".parse().unwrap()));
        assert!(
            list.permits("::ffff:10.1.2.3".parse().unwrap()),
            "mapped IPv4"
        );
        assert!(!list.permits("::ffff:10.6.0.1".parse().unwrap()));
    }

    #[test]
    fn an_empty_list_is_open_and_deny_alone_refuses_only_its_own() {
        assert!(AccessList::default().is_open());
        assert!(AccessList::default().permits("192.0.2.1".parse().unwrap()));
        let deny = AccessList::new(vec![], nets(&["192.0.2.0/24"]));
        assert!(!deny.is_open());
        assert!(!deny.permits("192.0.2.9".parse().unwrap()));
        assert!(deny.permits("198.51.100.1".parse().unwrap()));
    }
}
