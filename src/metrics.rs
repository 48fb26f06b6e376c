//! Prometheus metrics on a registry the application owns (no global statics: two daemons in
//! one test process never share counters). Names follow PRODUCT.md: `portero_<thing>_<unit>`,
//! counters end in `_total`, times are in seconds.

mod series;

pub use series::{ByClass, ByListener, OneHistogram, PoolSeries};

use prometheus::{
    Encoder, Gauge, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, IntGaugeVec,
    Opts, Registry, TextEncoder,
};

/// Latency buckets that resolve sub-millisecond proxy overhead and still see 30 s timeouts.
const LATENCY_BUCKETS: &[f64] = &[
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
    5.0, 10.0, 30.0, 60.0,
];

/// Every metric portero exports.
pub struct Metrics {
    registry: Registry,
    /// `portero_connections_open{listener}`.
    pub connections_open: IntGaugeVec,
    /// `portero_connections_limit{tier}`.
    pub connections_limit: IntGaugeVec,
    /// `portero_connections_in_burst`.
    pub connections_in_burst: IntGauge,
    /// `portero_connections_parked{listener}`: idle HTTP/1 keep-alive connections waiting
    /// for their next request outside hyper.
    pub connections_parked: IntGaugeVec,
    /// `portero_connections_accepted_total{listener}`.
    pub connections_accepted: IntCounterVec,
    /// `portero_connections_rejected_total{listener,reason}`.
    pub connections_rejected: IntCounterVec,
    /// `portero_requests_total{listener,pool,code_class}`.
    pub requests: IntCounterVec,
    /// `portero_request_duration_seconds{pool}`.
    pub request_duration: HistogramVec,
    /// `portero_upstream_requests_total{pool,backend,code_class}`.
    pub upstream_requests: IntCounterVec,
    /// `portero_upstream_errors_total{pool,backend,kind}`: failures with no backend status.
    pub upstream_errors: IntCounterVec,
    /// `portero_upstream_response_seconds{pool}`: request sent until response head received.
    pub upstream_response: HistogramVec,
    /// `portero_upstream_connect_seconds{pool}`: TCP connect time to backends.
    pub upstream_connect: HistogramVec,
    /// `portero_upstream_connections{pool,backend}`: open connections to each backend.
    pub upstream_connections: IntGaugeVec,
    /// `portero_requests_refused_total{listener,reason}`: requests portero answered itself.
    pub requests_refused: IntCounterVec,
    /// `portero_backend_up{pool,backend}`.
    pub backend_up: IntGaugeVec,
    /// `portero_backend_in_flight{pool,backend}`.
    pub backend_in_flight: IntGaugeVec,
    /// `portero_health_checks_total{pool,backend,result}`.
    pub health_checks: IntCounterVec,
    /// `portero_retries_total{pool}`.
    pub retries: IntCounterVec,
    /// `portero_tls_handshakes_total{listener,result,version}`.
    pub tls_handshakes: IntCounterVec,
    /// `portero_tls_certificate_expiry_timestamp_seconds{listener,name}`.
    pub tls_certificate_expiry: IntGaugeVec,
    /// `portero_tls_certificate_reloads_total{listener,result}`.
    pub tls_certificate_reloads: IntCounterVec,
    /// `portero_pool_backends{pool,state}`: members by state.
    pub pool_backends: IntGaugeVec,
    /// `portero_discovery_updates_total{pool,source,result}`: feed reads by result
    /// (`changed`, `unchanged`, `error`).
    pub discovery_updates: IntCounterVec,
    /// `portero_pool_panic_total{pool}`: requests sent in panic mode (fewer than half the
    /// pool healthy, so spread over all of it).
    pub pool_panic: IntCounterVec,
    /// `portero_backend_transitions_total{pool,backend,to,reason}`.
    pub backend_transitions: IntCounterVec,
    /// `portero_config_reloads_total{result}`.
    pub config_reloads: IntCounterVec,
    /// `portero_config_last_reload_success_timestamp_seconds`.
    pub config_last_reload_success: Gauge,
    /// `portero_access_log_dropped_total`: lines dropped because the writer fell behind.
    pub access_log_dropped: IntCounter,
    /// `portero_requests_aborted_total{listener,by}`: exchanges cut before their response
    /// ended, by `client` (went away, 499-style) or `upstream` (backend broke off).
    pub requests_aborted: IntCounterVec,
    /// `portero_slow_readers_total{listener,reason}`: connections closed because the client
    /// read too slowly: `stalled` (nothing for `timeouts.client_write`) or `min_send_rate`.
    pub slow_readers: IntCounterVec,
    /// `portero_rate_limit_tracked_clients`: client addresses in the local rate-limit table.
    pub rate_limit_tracked: IntGauge,
    /// `portero_rate_limit_store_errors_total`: shared-store decisions that fell back to the
    /// local budget (Redis away or slow).
    pub rate_limit_store_errors: IntCounter,
    /// `portero_proxy_protocol_total{listener,result}`: PROXY headers read or refused.
    pub proxy_protocol: IntCounterVec,
    /// `portero_overload_level`: 0 normal, 1 keep-alive off, 2 refusing new requests.
    pub overload_level: IntGauge,
}

impl Metrics {
    /// Creates and registers every metric.
    pub fn new() -> Self {
        let registry = Registry::new();
        let counter = |name: &str, help: &str, labels: &[&str]| {
            let c = IntCounterVec::new(Opts::new(name, help), labels).expect("valid metric");
            registry
                .register(Box::new(c.clone()))
                .expect("unique metric");
            c
        };
        let gauge = |name: &str, help: &str, labels: &[&str]| {
            let g = IntGaugeVec::new(Opts::new(name, help), labels).expect("valid metric");
            registry
                .register(Box::new(g.clone()))
                .expect("unique metric");
            g
        };
        let histogram = |name: &str, help: &str, labels: &[&str]| {
            let opts = HistogramOpts::new(name, help).buckets(LATENCY_BUCKETS.to_vec());
            let h = HistogramVec::new(opts, labels).expect("valid metric");
            registry
                .register(Box::new(h.clone()))
                .expect("unique metric");
            h
        };
        let connections_in_burst = IntGauge::new(
            "portero_connections_in_burst",
            "Open connections admitted above the baseline",
        )
        .expect("valid metric");
        registry
            .register(Box::new(connections_in_burst.clone()))
            .expect("unique metric");
        let config_last_reload_success = Gauge::new(
            "portero_config_last_reload_success_timestamp_seconds",
            "Unix time of the last successful config load",
        )
        .expect("valid metric");
        registry
            .register(Box::new(config_last_reload_success.clone()))
            .expect("unique metric");
        let access_log_dropped = IntCounter::new(
            "portero_access_log_dropped_total",
            "Access-log lines dropped because the writer could not keep up",
        )
        .expect("valid metric");
        registry
            .register(Box::new(access_log_dropped.clone()))
            .expect("unique metric");
        let rate_limit_tracked = IntGauge::new(
            "portero_rate_limit_tracked_clients",
            "Client addresses in the local rate-limit table",
        )
        .expect("valid metric");
        registry
            .register(Box::new(rate_limit_tracked.clone()))
            .expect("unique metric");
        let rate_limit_store_errors = IntCounter::new(
            "portero_rate_limit_store_errors_total",
            "Rate-limit decisions the shared store could not make in time (local budget used)",
        )
        .expect("valid metric");
        registry
            .register(Box::new(rate_limit_store_errors.clone()))
            .expect("unique metric");
        let overload_level = IntGauge::new(
            "portero_overload_level",
            "Memory overload: 0 normal, 1 keep-alive off, 2 new requests refused",
        )
        .expect("valid metric");
        registry
            .register(Box::new(overload_level.clone()))
            .expect("unique metric");
        #[cfg(target_os = "linux")]
        registry
            .register(Box::new(
                prometheus::process_collector::ProcessCollector::for_self(),
            ))
            .expect("unique metric");
        Self {
            requests_aborted: counter(
                "portero_requests_aborted_total",
                "Requests cut before the response ended, by who went away",
                &["listener", "by"],
            ),
            slow_readers: counter(
                "portero_slow_readers_total",
                "Client connections closed because the client read too slowly, by reason",
                &["listener", "reason"],
            ),
            rate_limit_tracked,
            rate_limit_store_errors,
            overload_level,
            proxy_protocol: counter(
                "portero_proxy_protocol_total",
                "PROXY protocol headers on listeners that accept them, by result",
                &["listener", "result"],
            ),
            connections_open: gauge(
                "portero_connections_open",
                "Open client connections",
                &["listener"],
            ),
            connections_parked: gauge(
                "portero_connections_parked",
                "Idle HTTP/1 keep-alive connections parked until their next request",
                &["listener"],
            ),
            connections_limit: gauge(
                "portero_connections_limit",
                "Connection admission limits",
                &["tier"],
            ),
            connections_in_burst,
            connections_accepted: counter(
                "portero_connections_accepted_total",
                "Client connections accepted",
                &["listener"],
            ),
            connections_rejected: counter(
                "portero_connections_rejected_total",
                "Client connections refused",
                &["listener", "reason"],
            ),
            requests: counter(
                "portero_requests_total",
                "Requests answered",
                &["listener", "pool", "code_class"],
            ),
            request_duration: histogram(
                "portero_request_duration_seconds",
                "Whole request time, first byte in to last byte out",
                &["pool"],
            ),
            upstream_requests: counter(
                "portero_upstream_requests_total",
                "Responses received from backends",
                &["pool", "backend", "code_class"],
            ),
            upstream_errors: counter(
                "portero_upstream_errors_total",
                "Requests to backends that failed without a response",
                &["pool", "backend", "kind"],
            ),
            upstream_response: histogram(
                "portero_upstream_response_seconds",
                "Time from sending a request to a backend until its response head",
                &["pool"],
            ),
            upstream_connect: histogram(
                "portero_upstream_connect_seconds",
                "Time to connect to a backend",
                &["pool"],
            ),
            upstream_connections: gauge(
                "portero_upstream_connections",
                "Connections open to each backend, pooled or busy",
                &["pool", "backend"],
            ),
            requests_refused: counter(
                "portero_requests_refused_total",
                "Requests portero answered itself instead of a backend, by reason",
                &["listener", "reason"],
            ),
            backend_up: gauge(
                "portero_backend_up",
                "1 when the backend takes new requests",
                &["pool", "backend"],
            ),
            backend_in_flight: gauge(
                "portero_backend_in_flight",
                "Requests in flight to the backend",
                &["pool", "backend"],
            ),
            health_checks: counter(
                "portero_health_checks_total",
                "Active health checks",
                &["pool", "backend", "result"],
            ),
            retries: counter(
                "portero_retries_total",
                "Requests retried on another backend",
                &["pool"],
            ),
            tls_handshakes: counter(
                "portero_tls_handshakes_total",
                "TLS handshakes by result (ok, error, timeout) and protocol version",
                &["listener", "result", "version"],
            ),
            tls_certificate_expiry: gauge(
                "portero_tls_certificate_expiry_timestamp_seconds",
                "When each served certificate expires (Unix time), by its first name",
                &["listener", "name"],
            ),
            tls_certificate_reloads: counter(
                "portero_tls_certificate_reloads_total",
                "Certificate changes picked up from disk, by result",
                &["listener", "result"],
            ),
            pool_backends: gauge(
                "portero_pool_backends",
                "Backends of each pool by state",
                &["pool", "state"],
            ),
            discovery_updates: counter(
                "portero_discovery_updates_total",
                "Discovery feed reads, by result: changed, unchanged or error (last good set kept)",
                &["pool", "source", "result"],
            ),
            pool_panic: counter(
                "portero_pool_panic_total",
                "Requests picked in panic mode: fewer than half the pool healthy, spread over all of it",
                &["pool"],
            ),
            backend_transitions: counter(
                "portero_backend_transitions_total",
                "Backend state changes, by new state and reason",
                &["pool", "backend", "to", "reason"],
            ),
            config_reloads: counter(
                "portero_config_reloads_total",
                "Config reloads",
                &["result"],
            ),
            config_last_reload_success,
            access_log_dropped,
            registry,
        }
    }

    /// The registry, for encoding.
    pub fn registry(&self) -> &Registry {
        &self.registry
    }

    /// The whole registry in the Prometheus text format.
    pub fn encode(&self) -> String {
        let mut buffer = Vec::with_capacity(16 * 1024);
        let encoder = TextEncoder::new();
        if let Err(e) = encoder.encode(&self.registry.gather(), &mut buffer) {
            tracing::warn!(error = %e, "metrics encoding failed");
        }
        String::from_utf8(buffer).unwrap_or_default()
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
            self.connections_open.with_label_values(&[name]);
            self.connections_accepted.with_label_values(&[name]);
            self.connections_rejected
                .with_label_values(&[name, "limit"]);
        }
        for pool in pools {
            self.retries.with_label_values(&[pool]);
            self.pool_panic.with_label_values(&[pool]);
        }
    }

    /// Drops every series labelled with a backend that left its pool, so labels stay bounded
    /// however often membership churns.
    pub fn forget_backend(&self, pool: &str, backend: &str) {
        for vec in [
            &self.upstream_requests,
            &self.upstream_errors,
            &self.health_checks,
            &self.backend_transitions,
        ] {
            forget(vec, pool, backend);
        }
    }

    /// Counts a backend's state change: the state it went `to`, and why.
    pub fn transition(&self, pool: &str, backend: &str, to: &str, reason: &str) {
        self.backend_transitions
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
