//! Prometheus metrics on a registry the application owns (no global statics: two daemons in
//! one test process never share counters). Names follow PRODUCT.md: `portero_<thing>_<unit>`,
//! counters end in `_total`, times are in seconds.

mod connections;
mod control;
mod pools;
mod requests;
mod series;
mod sessions;

pub use connections::Connections;
pub use control::Control;
pub use pools::Pools;
pub use requests::Requests;
pub use series::{ByClass, ByListener, OneHistogram, PoolSeries};
pub use sessions::Sessions;

use prometheus::{Encoder, IntCounterVec, Registry, TextEncoder};

/// Latency buckets that resolve sub-millisecond proxy overhead and still see 30 s timeouts.
const LATENCY_BUCKETS: &[f64] = &[
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
    5.0, 10.0, 30.0, 60.0,
];

/// Every metric portero exports, by the part of the daemon that counts it.
pub struct Metrics {
    registry: Registry,
    /// Client connections (the server).
    pub connections: Connections,
    /// Requests and their tries (the proxy).
    pub requests: Requests,
    /// Pools and backends (health checks, discovery, `/metrics` gauges).
    pub pools: Pools,
    /// Sessions of tcp listeners.
    pub sessions: Sessions,
    /// The daemon itself (reloads, certificates, overload, helpers).
    pub control: Control,
}

impl Metrics {
    /// Creates and registers every metric.
    pub fn new() -> Self {
        let registry = Registry::new();
        // Two registrations of one name are a programming error, caught by every test run.
        let unique = "metric names are unique and valid";
        #[cfg(target_os = "linux")]
        registry
            .register(Box::new(
                prometheus::process_collector::ProcessCollector::for_self(),
            ))
            .expect(unique);
        Self {
            connections: Connections::register(&registry).expect(unique),
            requests: Requests::register(&registry).expect(unique),
            pools: Pools::register(&registry).expect(unique),
            sessions: Sessions::register(&registry).expect(unique),
            control: Control::register(&registry).expect(unique),
            registry,
        }
    }

    /// The registry, for encoding.
    pub fn registry(&self) -> &Registry {
        &self.registry
    }

    /// The whole registry in the Prometheus text format.
    pub fn encode(&self) -> String {
        self.follow_log_suppression();
        let mut buffer = Vec::with_capacity(16 * 1024);
        let encoder = TextEncoder::new();
        if let Err(e) = encoder.encode(&self.registry.gather(), &mut buffer) {
            tracing::warn!(error = %e, "metrics encoding failed");
        }
        String::from_utf8(buffer).unwrap_or_default()
    }
}

impl Metrics {
    /// Brings `portero_log_suppressed_total` up to the counts `log_limit` keeps (process-wide,
    /// as the log is).
    fn follow_log_suppression(&self) {
        for (target, total) in crate::log_limit::suppressed() {
            let counter = self.control.log_suppressed.with_label_values(&[target]);
            counter.inc_by(total.saturating_sub(counter.get()));
        }
    }
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Metrics")
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// Creates the series of these listeners and pools at zero, so they exist before their
    /// first event (rates and alerts over them work from the start).
    pub fn prepare<'a>(
        &self,
        listeners: impl IntoIterator<Item = &'a str>,
        pools: impl IntoIterator<Item = &'a str>,
    ) {
        for name in listeners {
            let c = &self.connections;
            c.open.with_label_values(&[name]);
            c.accepted.with_label_values(&[name]);
            c.rejected.with_label_values(&[name, "limit"]);
        }
        for pool in pools {
            self.requests.retries.with_label_values(&[pool]);
            self.requests.pool_panic.with_label_values(&[pool]);
        }
    }

    /// Drops every series labelled with a backend that left its pool, so labels stay bounded
    /// however often membership churns.
    pub fn forget_backend(&self, pool: &str, backend: &str) {
        for vec in [
            &self.requests.upstream,
            &self.requests.upstream_errors,
            &self.pools.health_checks,
            &self.pools.backend_transitions,
            &self.sessions.total,
            &self.sessions.connect_errors,
            &self.sessions.bytes,
        ] {
            forget(vec, pool, backend);
        }
    }

    /// Counts a backend's state change: the state it went `to`, and why.
    pub fn transition(&self, pool: &str, backend: &str, to: &str, reason: &str) {
        self.pools
            .backend_transitions
            .with_label_values(&[pool, backend, to, reason])
            .inc();
    }
}

/// Removes every series of `vec` whose `pool` and `backend` labels are these, whatever its
/// other labels: the series that exist are read from the vec, not listed here.
fn forget(vec: &IntCounterVec, pool: &str, backend: &str) {
    use prometheus::core::Collector;
    for family in vec.collect() {
        for metric in family.get_metric() {
            let labels: std::collections::HashMap<&str, &str> = metric
                .get_label()
                .iter()
                .map(|pair| (pair.name(), pair.value()))
                .collect();
            if labels.get("pool") == Some(&pool) && labels.get("backend") == Some(&backend) {
                let _ = vec.remove(&labels);
            }
        }
    }
}

/// `2xx` .. `5xx` for a status code.
pub fn code_class(status: u16) -> &'static str {
    match status {
        100..=199 => "1xx",
        200..=299 => "2xx",
        300..=399 => "3xx",
        400..=499 => "4xx",
        _ => "5xx",
    }
}
