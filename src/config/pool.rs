//! `[pool.NAME]`: validation of one pool's file entry into a [`PoolConfig`].

use super::file::{BackendEntry, DiscoveryFile, PoolFile};
use super::health_check::{HealthCheckConfig, health_check};
use super::{Problem, unsupported};
use crate::backend::BackendSpec;
use std::net::SocketAddr;
use std::ops::Range;
use std::path::PathBuf;
use std::time::Duration;

pub use super::file::{OnMarkedDown, OutlierConfig, ProxyVersion, UpstreamProtocol};
use super::health_check::Role;
pub use crate::balance::Balance;

/// One pool of backends.
#[derive(Debug, Clone, PartialEq)]
pub struct PoolConfig {
    /// The pool's name (metric label).
    pub name: String,
    /// Balancing algorithm.
    pub balance: Balance,
    /// Protocol spoken to the backends.
    pub protocol: UpstreamProtocol,
    /// Static membership from the file.
    pub backends: Vec<BackendSpec>,
    /// Active checks; `None` means every backend counts as healthy unless ejected.
    pub health_check: Option<HealthCheckConfig>,
    /// Passive health on real traffic.
    pub outlier: OutlierConfig,
    /// What `consistent_hash` hashes.
    pub hash_key: HashKey,
    /// Ramp-up time of a new or recovered backend's share; zero = none.
    pub slow_start: Duration,
    /// Extra tries on another backend, when safe.
    pub retries: u32,
    /// Retries may add at most this fraction of the pool's request rate.
    pub retry_budget: f64,
    /// Where membership comes from when not from `backends`.
    pub discovery: Option<DiscoveryConfig>,
    /// HTTPS to the backends.
    pub tls: Option<super::tls::UpstreamTls>,
    /// What its listeners carry.
    pub serves: Serves,
    /// `tcp`: the PROXY header each connection to a backend opens with, if any.
    pub send_proxy_protocol: Option<ProxyVersion>,
    /// `tcp`: what a backend's open sessions do when its checks mark it down.
    pub on_marked_down: OnMarkedDown,
}

/// What a pool's traffic is: requests from HTTP listeners, or sessions of a tcp one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Serves {
    /// Requests, routed to it by `[[route]]`.
    Http,
    /// Whole connections of a `protocol = "tcp"` listener.
    Tcp,
}

impl PoolConfig {
    /// The role its checks ask of a backend (`Any` without a role-aware check).
    pub fn role(&self) -> Role {
        self.health_check
            .as_ref()
            .map_or(Role::Any, |check| check.kind.role())
    }

    /// Whether panic mode may spread traffic over unhealthy members. Not in a pool that
    /// asks for a role: a replica is no stand-in for a primary, however few primaries are up.
    pub fn allows_panic(&self) -> bool {
        self.role() == Role::Any
    }
}

/// `[pool.NAME.discovery]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DiscoveryConfig {
    /// The one source.
    pub source: DiscoverySource,
    /// Re-read at least this often (DNS: or when the records' TTL ends, if sooner).
    pub refresh: Duration,
    /// DNS only: the resolver to ask instead of the system's.
    pub nameserver: Option<SocketAddr>,
}

/// A discovery source; each yields the complete desired set of backends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DiscoverySource {
    /// A/AAAA records of `name`, each at `port`.
    Dns {
        /// The name.
        name: String,
        /// The port of every address.
        port: u16,
    },
    /// SRV records of `name`: targets, ports and weights.
    Srv {
        /// The SRV name, e.g. `_http._tcp.api.internal`.
        name: String,
    },
    /// A JSON document polled over HTTP.
    Http {
        /// Its URL.
        url: http::Uri,
    },
    /// A JSON file on disk.
    File {
        /// Its path.
        path: PathBuf,
    },
}

impl DiscoverySource {
    /// `dns`, `srv`, `http` or `file`.
    pub fn kind(&self) -> &'static str {
        match self {
            DiscoverySource::Dns { .. } => "dns",
            DiscoverySource::Srv { .. } => "srv",
            DiscoverySource::Http { .. } => "http",
            DiscoverySource::File { .. } => "file",
        }
    }
}

/// The key `consistent_hash` hashes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HashKey {
    /// The client's IP address.
    ClientIp,
    /// A request header's value.
    Header(http::HeaderName),
    /// A cookie's value.
    Cookie(String),
}

impl HashKey {
    /// Parses `client_ip`, `header:NAME` or `cookie:NAME`.
    pub fn parse(text: &str) -> Result<HashKey, String> {
        let invalid = || {
            format!(
                "invalid hash_key `{text}`: use \"client_ip\", \"header:NAME\" or \"cookie:NAME\""
            )
        };
        match text.split_once(':') {
            None if text == "client_ip" => Ok(HashKey::ClientIp),
            Some(("header", name)) if !name.is_empty() => {
                http::HeaderName::from_bytes(name.as_bytes())
                    .map(HashKey::Header)
                    .map_err(|_| invalid())
            }
            Some(("cookie", name)) if !name.is_empty() && !name.contains([';', '=', ' ']) => {
                Ok(HashKey::Cookie(name.to_string()))
            }
            _ => Err(invalid()),
        }
    }
}

/// Validates one pool; `None` (with problems pushed) when it is invalid.
pub fn pool_config(
    name: &str,
    name_span: &Range<usize>,
    pool: &PoolFile,
    serves: Serves,
    problems: &mut Vec<Problem>,
) -> Option<PoolConfig> {
    let before = problems.len();
    // A session holds its backend for minutes or hours: spread by what is open, as HAProxy's
    // `leastconn` is advised for long sessions.
    let default_balance = match serves {
        Serves::Http => Balance::RoundRobin,
        Serves::Tcp => Balance::LeastConn,
    };
    let balance = pool
        .balance
        .as_ref()
        .map_or(default_balance, |b| *b.get_ref());
    tcp_keys(name, pool, serves, problems);
    let tls = pool
        .tls
        .as_ref()
        .and_then(|t| super::tls::upstream_tls(t.get_ref(), t.span(), problems));
    let discovery = pool
        .discovery
        .as_ref()
        .and_then(|d| discovery(d.get_ref(), d.span(), problems));
    let hash_key = match &pool.hash_key {
        None => HashKey::ClientIp,
        Some(key) if !balance.uses_key() => {
            problems.push(Problem::at(
                key.span(),
                "hash_key only applies to balance = \"consistent_hash\"",
            ));
            HashKey::ClientIp
        }
        Some(key) => HashKey::parse(key.get_ref()).unwrap_or_else(|e| {
            problems.push(Problem::at(key.span(), e));
            HashKey::ClientIp
        }),
    };
    let budget = *pool.retry_budget.get_ref();
    if !(0.0..=1.0).contains(&budget) {
        problems.push(Problem::at(
            pool.retry_budget.span(),
            "retry_budget must be between 0 and 1",
        ));
    }
    let health_check = pool
        .health_check
        .as_ref()
        .and_then(|h| health_check(h.get_ref(), h.span(), problems));
    let backends = match (&pool.backends, &pool.discovery) {
        (Some(listed), Some(_)) => {
            problems.push(Problem::at(listed.span(), format!("pool `{name}` has both `backends` and `discovery`; discovery replaces the list: keep one")));
            return None;
        }
        (None, Some(_)) => Vec::new(),
        _ => backends(name, name_span, pool, problems)?,
    };
    (problems.len() == before).then(|| PoolConfig {
        name: name.to_string(),
        balance,
        protocol: pool.protocol,
        backends,
        health_check,
        outlier: pool.outlier,
        hash_key,
        slow_start: pool.slow_start,
        retries: pool.retries,
        retry_budget: budget,
        discovery,
        tls,
        serves,
        send_proxy_protocol: pool.send_proxy_protocol,
        on_marked_down: pool.on_marked_down,
    })
}

/// Refuses what a pool of the other kind would ignore.
fn tcp_keys(name: &str, pool: &PoolFile, serves: Serves, problems: &mut Vec<Problem>) {
    let mut refuse = |key: &str, why: &str| {
        problems.push(Problem::message(format!("pool `{name}`: `{key}` {why}")));
    };
    match serves {
        Serves::Http => {
            if pool.send_proxy_protocol.is_some() {
                refuse(
                    "send_proxy_protocol",
                    "is for pools of protocol = \"tcp\" listeners",
                );
            }
            if pool.on_marked_down != OnMarkedDown::default() {
                refuse(
                    "on_marked_down",
                    "is for pools of protocol = \"tcp\" listeners",
                );
            }
        }
        Serves::Tcp => {
            if pool.tls.is_some() {
                refuse(
                    "tls",
                    "does not apply: a tcp listener forwards bytes as they come",
                );
            }
            if pool.protocol != UpstreamProtocol::default() {
                refuse("protocol", "does not apply: a tcp listener speaks no HTTP");
            }
            if pool
                .hash_key
                .as_ref()
                .is_some_and(|k| k.get_ref() != "client_ip")
            {
                refuse("hash_key", "can only be \"client_ip\" for a tcp listener");
            }
        }
    }
}

fn discovery(
    file: &DiscoveryFile,
    span: Range<usize>,
    problems: &mut Vec<Problem>,
) -> Option<DiscoveryConfig> {
    let given = [
        file.dns.is_some(),
        file.srv.is_some(),
        file.http.is_some(),
        file.file.is_some(),
    ];
    if given.iter().filter(|&&g| g).count() != 1 {
        problems.push(Problem::at(
            span,
            "discovery needs exactly one source: dns, srv, http or file",
        ));
        return None;
    }
    if file.nameserver.is_some() && file.dns.is_none() && file.srv.is_none() {
        problems.push(Problem::at(
            span.clone(),
            "discovery.nameserver only applies to dns and srv",
        ));
    }
    if file.refresh < Duration::from_millis(10) {
        problems.push(Problem::at(
            span.clone(),
            "discovery.refresh must be at least 10ms",
        ));
    }
    let source = if let Some(dns) = &file.dns {
        let parsed = dns
            .get_ref()
            .rsplit_once(':')
            .and_then(|(n, p)| Some((n, p.parse::<u16>().ok()?)));
        match parsed {
            Some((name, port)) if !name.is_empty() && port != 0 => DiscoverySource::Dns {
                name: name.to_string(),
                port,
            },
            _ => {
                problems.push(Problem::at(
                    dns.span(),
                    "discovery.dns must be \"name:port\", e.g. \"api.internal:8080\"",
                ));
                return None;
            }
        }
    } else if let Some(srv) = &file.srv {
        DiscoverySource::Srv {
            name: srv.get_ref().clone(),
        }
    } else if let Some(http) = &file.http {
        match http.get_ref().parse::<http::Uri>() {
            Ok(url) if url.scheme_str() == Some("http") && url.authority().is_some() => {
                DiscoverySource::Http { url }
            }
            Ok(url) if url.scheme_str() == Some("https") => {
                problems.push(unsupported(http.span(), "an https discovery feed"));
                return None;
            }
            _ => {
                problems.push(Problem::at(
                    http.span(),
                    "discovery.http must be an http:// URL",
                ));
                return None;
            }
        }
    } else {
        DiscoverySource::File {
            path: file
                .file
                .as_ref()
                .map(|f| f.get_ref().clone())
                .unwrap_or_default(),
        }
    };
    Some(DiscoveryConfig {
        source,
        refresh: file.refresh,
        nameserver: file.nameserver,
    })
}

fn backends(
    name: &str,
    name_span: &Range<usize>,
    pool: &PoolFile,
    problems: &mut Vec<Problem>,
) -> Option<Vec<BackendSpec>> {
    let Some(entries) = &pool.backends else {
        problems.push(Problem::at(
            name_span.clone(),
            format!(
                "pool `{name}` has no `backends`: list them, e.g. backends = [\"10.0.0.5:8080\"]"
            ),
        ));
        return None;
    };
    let mut backends: Vec<BackendSpec> = Vec::new();
    for entry in entries.get_ref() {
        let spec = match *entry {
            BackendEntry::Address(address) => BackendSpec::new(address, 1),
            BackendEntry::Weighted { address, weight } => BackendSpec::new(address, weight),
        };
        if spec.weight == 0 {
            problems.push(Problem::at(
                entries.span(),
                format!(
                    "backend {} in pool `{name}` has weight 0; remove it instead",
                    spec.address
                ),
            ));
        }
        if backends.iter().any(|b| b.address == spec.address) {
            problems.push(Problem::at(
                entries.span(),
                format!("backend {} is listed twice in pool `{name}`", spec.address),
            ));
        }
        backends.push(spec);
    }
    Some(backends)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hash_keys_parse() {
        assert_eq!(HashKey::parse("client_ip"), Ok(HashKey::ClientIp));
        assert_eq!(
            HashKey::parse("header:X-User"),
            Ok(HashKey::Header(http::HeaderName::from_static("x-user")))
        );
        assert_eq!(
            HashKey::parse("cookie:session"),
            Ok(HashKey::Cookie("session".into()))
        );
        for bad in [
            "ip",
            "header:",
            "cookie:",
            "cookie:a=b",
            "header:bad name",
            "query:x",
        ] {
            assert!(HashKey::parse(bad).is_err(), "{bad}");
        }
    }
}
