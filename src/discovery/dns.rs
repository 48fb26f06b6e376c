//! DNS discovery: the A/AAAA records of a name (each at the configured port: the Kubernetes
//! headless-service and droplet-DNS case), or SRV records (targets, ports and weights, lowest
//! priority only, as RFC 2782 says). The resolver caches nothing: portero re-reads when the
//! records' TTL ends, so a change is seen within one TTL.

use super::{FeedError, Found};
use crate::backend::BackendSpec;
use crate::config::{DiscoveryConfig, DiscoverySource};
use hickory_resolver::TokioResolver;
use hickory_resolver::config::{NameServerConfigGroup, ResolverConfig, ResolverOpts};
use hickory_resolver::name_server::TokioConnectionProvider;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

enum Query {
    Addresses { name: String, port: u16 },
    Srv { name: String },
}

/// A DNS source.
pub struct Dns {
    resolver: TokioResolver,
    query: Query,
}

impl Dns {
    /// A source for `config` (a `dns` or `srv` discovery).
    pub fn new(config: &DiscoveryConfig) -> Result<Dns, FeedError> {
        let mut options = ResolverOpts::default();
        options.cache_size = 0;
        options.timeout = config
            .refresh
            .clamp(Duration::from_millis(200), Duration::from_secs(5));
        options.attempts = 2;
        let builder = match config.nameserver {
            Some(ns) => TokioResolver::builder_with_config(
                ResolverConfig::from_parts(
                    None,
                    vec![],
                    NameServerConfigGroup::from_ips_clear(&[ns.ip()], ns.port(), true),
                ),
                TokioConnectionProvider::default(),
            ),
            None => TokioResolver::builder_tokio().map_err(|e| FeedError::Dns(e.to_string()))?,
        };
        let query = match &config.source {
            DiscoverySource::Dns { name, port } => Query::Addresses {
                name: name.clone(),
                port: *port,
            },
            DiscoverySource::Srv { name } => Query::Srv { name: name.clone() },
            other => {
                return Err(FeedError::Dns(format!(
                    "not a DNS source: {}",
                    other.kind()
                )));
            }
        };
        Ok(Dns {
            resolver: builder.with_options(options).build(),
            query,
        })
    }

    /// Resolves the set and how long it is valid.
    pub async fn read(&self) -> Result<Found, FeedError> {
        let (specs, valid_until) = match &self.query {
            Query::Addresses { name, port } => {
                let lookup = self
                    .resolver
                    .lookup_ip(name.as_str())
                    .await
                    .map_err(|e| FeedError::Dns(e.to_string()))?;
                let specs: Vec<BackendSpec> = lookup
                    .iter()
                    .map(|ip| BackendSpec::new(SocketAddr::new(ip, *port), 1))
                    .collect();
                (specs, lookup.valid_until())
            }
            Query::Srv { name } => self.srv(name).await?,
        };
        if specs.is_empty() {
            return Err(FeedError::Dns("no address in the answer".into()));
        }
        Ok(Found::Set(
            specs,
            Some(valid_until.saturating_duration_since(Instant::now())),
        ))
    }

    async fn srv(&self, name: &str) -> Result<(Vec<BackendSpec>, Instant), FeedError> {
        let srv = self
            .resolver
            .srv_lookup(name)
            .await
            .map_err(|e| FeedError::Dns(e.to_string()))?;
        let mut valid_until = srv.as_lookup().valid_until();
        let Some(best) = srv.iter().map(|r| r.priority()).min() else {
            return Ok((Vec::new(), valid_until));
        };
        let mut specs = Vec::new();
        for record in srv.iter().filter(|r| r.priority() == best) {
            let target = record.target().to_string();
            let addresses = self
                .resolver
                .lookup_ip(target.as_str())
                .await
                .map_err(|e| FeedError::Dns(format!("{target}: {e}")))?;
            valid_until = valid_until.min(addresses.valid_until());
            for ip in addresses.iter() {
                let spec = BackendSpec::new(
                    SocketAddr::new(ip, record.port()),
                    u32::from(record.weight()).max(1),
                );
                if !specs
                    .iter()
                    .any(|s: &BackendSpec| s.address == spec.address)
                {
                    specs.push(spec);
                }
            }
        }
        Ok((specs, valid_until))
    }
}
