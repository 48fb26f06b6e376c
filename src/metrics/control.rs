//! What the daemon counts of itself: config reloads, certificates, memory pressure, and the
//! shared helpers that can fall behind (access log, rate-limit store).

use prometheus::{
    Gauge, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Registry,
    register_gauge_with_registry, register_int_counter_vec_with_registry,
    register_int_counter_with_registry, register_int_gauge_vec_with_registry,
    register_int_gauge_with_registry,
};

/// The daemon's own metrics.
#[derive(Clone)]
pub struct Control {
    /// `portero_config_reloads_total{result}`.
    pub config_reloads: IntCounterVec,
    /// `portero_config_last_reload_success_timestamp_seconds`.
    pub config_last_reload_success: Gauge,
    /// `portero_tls_certificate_expiry_timestamp_seconds{listener,name}`.
    pub tls_certificate_expiry: IntGaugeVec,
    /// `portero_tls_certificate_reloads_total{listener,result}`.
    pub tls_certificate_reloads: IntCounterVec,
    /// `portero_acme_orders_total{listener,result}`: ACME certificate orders, `issued` or
    /// `failed`.
    pub acme_orders: IntCounterVec,
    /// `portero_acme_next_renewal_timestamp_seconds{listener}`: when the next ACME order for
    /// a listener's names is due (Unix time); after a failure, the time of the next retry.
    pub acme_next_renewal: IntGaugeVec,
    /// `portero_overload_level`: 0 normal, 1 keep-alive off, 2 refusing new requests.
    pub overload_level: IntGauge,
    /// `portero_access_log_dropped_total`: lines dropped because the writer fell behind.
    pub access_log_dropped: IntCounter,
    /// `portero_log_suppressed_total{target}`: the daemon's own repeated warnings held back.
    pub log_suppressed: IntCounterVec,
    /// `portero_rate_limit_tracked_clients`: client addresses in the local rate-limit table.
    pub rate_limit_tracked: IntGauge,
    /// `portero_rate_limit_store_errors_total`: shared-store decisions that fell back to the
    /// local budget (Redis away or slow).
    pub rate_limit_store_errors: IntCounter,
}

impl Control {
    /// Registers them in `r`.
    pub fn register(r: &Registry) -> prometheus::Result<Self> {
        Ok(Self {
            config_reloads: register_int_counter_vec_with_registry!(
                "portero_config_reloads_total",
                "Config reloads",
                &["result"],
                r
            )?,
            config_last_reload_success: register_gauge_with_registry!(
                "portero_config_last_reload_success_timestamp_seconds",
                "Unix time of the last successful config load",
                r
            )?,
            tls_certificate_expiry: register_int_gauge_vec_with_registry!(
                "portero_tls_certificate_expiry_timestamp_seconds",
                "When each served certificate expires (Unix time), by its first name",
                &["listener", "name"],
                r
            )?,
            tls_certificate_reloads: register_int_counter_vec_with_registry!(
                "portero_tls_certificate_reloads_total",
                "Certificate changes picked up from disk, by result",
                &["listener", "result"],
                r
            )?,
            acme_orders: register_int_counter_vec_with_registry!(
                "portero_acme_orders_total",
                "ACME certificate orders, by result (issued, failed)",
                &["listener", "result"],
                r
            )?,
            acme_next_renewal: register_int_gauge_vec_with_registry!(
                "portero_acme_next_renewal_timestamp_seconds",
                "When the next ACME order for a listener's names is due (Unix time); the time of the next retry after a failure",
                &["listener"],
                r
            )?,
            overload_level: register_int_gauge_with_registry!(
                "portero_overload_level",
                "Memory overload: 0 normal, 1 keep-alive off, 2 new requests refused",
                r
            )?,
            access_log_dropped: register_int_counter_with_registry!(
                "portero_access_log_dropped_total",
                "Access-log lines dropped because the writer could not keep up",
                r
            )?,
            log_suppressed: register_int_counter_vec_with_registry!(
                "portero_log_suppressed_total",
                "Repeated warnings of the daemon's own log held back by its rate limit, by what they are about",
                &["target"],
                r
            )?,
            rate_limit_tracked: register_int_gauge_with_registry!(
                "portero_rate_limit_tracked_clients",
                "Client addresses in the local rate-limit table",
                r
            )?,
            rate_limit_store_errors: register_int_counter_with_registry!(
                "portero_rate_limit_store_errors_total",
                "Rate-limit decisions the shared store could not make in time (local budget used)",
                r
            )?,
        })
    }
}
