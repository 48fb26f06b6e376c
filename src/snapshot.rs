//! The one atomic snapshot of everything a request reads: the config it came from, the
//! route table and every pool. It is built whole, off to the side, then published with a
//! single `ArcSwap::store`; a request loads it once and keeps it until it ends.

use crate::backend::BackendSpec;
use crate::config::Config;
use crate::metrics::Metrics;
use crate::pool::Pool;
use crate::route::Router;
use crate::upstream::UpstreamSettings;
use arc_swap::ArcSwap;
use std::collections::BTreeMap;
use std::net::IpAddr;
use std::sync::Arc;

/// The live snapshot, shared by the proxy, the admin API and whatever reloads it.
pub type SharedSnapshot = Arc<ArcSwap<Snapshot>>;

/// Backend sets that replace pools' `backends` from the config: the latest from each pool's
/// discovery feed, or from a push.
pub type Members = BTreeMap<String, Vec<BackendSpec>>;

/// Everything a request needs, immutable.
#[derive(Debug)]
pub struct Snapshot {
    generation: u64,
    config: Arc<Config>,
    pools: BTreeMap<String, Arc<Pool>>,
    router: Router<Arc<Pool>>,
}

impl Snapshot {
    /// Builds a snapshot for `config`, carrying live backends over from `previous`. A pool
    /// listed in `members` gets that set instead of its `backends` from the file.
    pub fn build(
        config: Arc<Config>,
        generation: u64,
        previous: Option<&Snapshot>,
        members: &Members,
        metrics: Option<&Metrics>,
    ) -> Snapshot {
        let now = crate::backend::now_us();
        let pools: BTreeMap<String, Arc<Pool>> = config
            .pools
            .iter()
            .map(|(name, pool)| {
                let settings = UpstreamSettings {
                    protocol: pool.protocol,
                    connect_timeout: config.timeouts.upstream_connect,
                    idle_timeout: config.timeouts.idle,
                    tls: pool.tls.clone(),
                    connect_seconds: metrics
                        .map(|m| m.upstream_connect.with_label_values(&[name.as_str()])),
                };
                // Live backends carry over unless the protocol or TLS to them changed.
                let old = previous.and_then(|p| p.pools.get(name)).filter(|old| {
                    old.config().protocol == pool.protocol && old.config().tls == pool.tls
                });
                let specs = members
                    .get(name)
                    .map_or(pool.backends.as_slice(), Vec::as_slice);
                (
                    name.clone(),
                    Arc::new(Pool::build(pool, specs, &settings, old.map(|p| &**p), now)),
                )
            })
            .collect();
        let router = Router::new(
            config
                .routes
                .iter()
                .map(|r| {
                    (
                        r.host.clone(),
                        r.path_prefix.clone(),
                        Arc::clone(&pools[&r.pool]),
                    )
                })
                .collect(),
        );
        Snapshot {
            generation,
            config,
            pools,
            router,
        }
    }

    /// Increases with every config or membership change.
    pub fn generation(&self) -> u64 {
        self.generation
    }

    /// The config this snapshot was built from.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// Every pool by name.
    pub fn pools(&self) -> &BTreeMap<String, Arc<Pool>> {
        &self.pools
    }

    /// The pool for a request (host already normalised).
    pub fn route(&self, host: &str, path: &str) -> Option<&Arc<Pool>> {
        self.router.route(host, path)
    }

    /// Whether `ip` is a trusted proxy whose forwarding headers are kept.
    pub fn is_trusted_proxy(&self, ip: IpAddr) -> bool {
        self.config
            .security
            .trusted_proxies
            .iter()
            .any(|net| net.contains(&ip))
    }
}
