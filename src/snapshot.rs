//! The one atomic snapshot of everything a request reads: the config it came from, the
//! route table, every pool and the clients that reach its members. It is built whole, off to the side, then published with a
//! single `ArcSwap::store`; a request loads it once and keeps it until it ends.

use crate::access::AccessList;
use crate::backend::BackendSpec;
use crate::config::Config;
use crate::metrics::Metrics;
use crate::pool::Pool;
use crate::rate_limit::RateLimiter;
use crate::route::Router;
use crate::upstream::{PoolClients, UpstreamSettings};
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
    clients: BTreeMap<String, Arc<PoolClients>>,
    router: Router<RouteTarget>,
    rate_limiter: Option<Arc<RateLimiter>>,
}

/// Where a route sends its requests, and who may use it.
#[derive(Debug)]
pub struct RouteTarget {
    /// The pool.
    pub pool: Arc<Pool>,
    /// The clients of its members, by the same index.
    pub clients: Arc<PoolClients>,
    /// The route's allow/deny lists.
    pub access: AccessList,
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
        let now = crate::clock::now_us();
        let (mut pools, mut clients) = (BTreeMap::new(), BTreeMap::new());
        for (name, pool) in &config.pools {
            let specs = members
                .get(name)
                .map_or(pool.backends.as_slice(), Vec::as_slice);
            let (built, reach) = build_pool(&config, name, specs, previous, metrics, now);
            pools.insert(name.clone(), Arc::new(built));
            clients.insert(name.clone(), Arc::new(reach));
        }
        let router = Router::new(
            config
                .routes
                .iter()
                .map(|r| {
                    let target = RouteTarget {
                        pool: Arc::clone(&pools[&r.pool]),
                        clients: Arc::clone(&clients[&r.pool]),
                        access: r.access.clone(),
                    };
                    (r.host.clone(), r.path_prefix.clone(), target)
                })
                .collect(),
        );
        let rate_limiter = rate_limiter(&config, previous, metrics);
        Snapshot {
            generation,
            config,
            pools,
            clients,
            router,
            rate_limiter,
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

    /// The clients of a pool's members, by member index.
    pub fn clients(&self, pool: &str) -> Option<&Arc<PoolClients>> {
        self.clients.get(pool)
    }

    /// The route target for a request (host already normalised).
    pub fn route(&self, host: &str, path: &str) -> Option<&RouteTarget> {
        self.router.route(host, path)
    }

    /// The per-client rate limiter, when `[security.rate_limit]` is set.
    pub fn rate_limiter(&self) -> Option<&RateLimiter> {
        self.rate_limiter.as_deref()
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

/// Pool `name` of `config` with the members `specs`, and the clients that reach them. Live
/// backends and their clients carry over from `previous` unless the protocol or TLS to them
/// changed.
fn build_pool(
    config: &Config,
    name: &str,
    specs: &[BackendSpec],
    previous: Option<&Snapshot>,
    metrics: Option<&Metrics>,
    now: u64,
) -> (Pool, PoolClients) {
    let pool = &config.pools[name];
    let settings = UpstreamSettings {
        protocol: pool.protocol,
        connect_timeout: config.timeouts.upstream_connect,
        idle_timeout: config.timeouts.idle,
        tls: pool.tls.clone(),
        connect_seconds: metrics.map(|m| m.pools.upstream_connect.with_label_values(&[name])),
        stream_buffer: config.limits.stream_buffer_u32(),
        max_response_head: config.limits.max_response_header_bytes,
    };
    let old = previous
        .and_then(|p| Some((&**p.pools.get(name)?, &**p.clients.get(name)?)))
        .filter(|(old, _)| old.config().protocol == pool.protocol && old.config().tls == pool.tls);
    let built = Pool::build(pool, specs, old.map(|(p, _)| p), now);
    let clients = PoolClients::build(&built, &settings, old);
    (built, clients)
}

/// The previous snapshot's limiter when its settings did not change (clients keep their
/// budgets over a reload), else a new one.
fn rate_limiter(
    config: &Config,
    previous: Option<&Snapshot>,
    metrics: Option<&Metrics>,
) -> Option<Arc<RateLimiter>> {
    let wanted = config.security.rate_limit.as_ref()?;
    if let Some(old) = previous.and_then(|p| p.rate_limiter.as_ref())
        && old.config() == wanted
    {
        return Some(Arc::clone(old));
    }
    Some(Arc::new(RateLimiter::new(
        wanted,
        metrics.map(|m| m.control.rate_limit_tracked.clone()),
        metrics.map(|m| m.control.rate_limit_store_errors.clone()),
    )))
}
