//! What `protocol = "tcp"` listeners count: sessions from accept to close, how each ended,
//! the bytes they carried each way, and the connects to backends that failed.

use prometheus::{
    HistogramVec, IntCounterVec, IntGaugeVec, Registry, register_histogram_vec_with_registry,
    register_int_counter_vec_with_registry, register_int_gauge_vec_with_registry,
};

/// A session lasts from milliseconds (a health probe of the application's own) to hours (a
/// pooled database connection).
const SESSION_BUCKETS: &[f64] = &[
    0.001, 0.01, 0.1, 1.0, 10.0, 60.0, 300.0, 1800.0, 3600.0, 14400.0, 86400.0,
];

/// TCP session metrics. Open sessions per backend are `portero_backend_in_flight`: a session
/// is its backend's in-flight work for as long as it lasts, as least_conn counts it.
#[derive(Clone)]
pub struct Sessions {
    /// `portero_tcp_sessions_open{listener,pool}`.
    pub open: IntGaugeVec,
    /// `portero_tcp_sessions_total{listener,pool,backend,end}`: sessions that reached a
    /// backend, by how they ended.
    pub total: IntCounterVec,
    /// `portero_tcp_sessions_refused_total{listener,pool,reason}`: sessions closed before
    /// reaching a backend (`no_backend`, `connect_failed`, `no_pool`).
    pub refused: IntCounterVec,
    /// `portero_tcp_connect_errors_total{listener,pool,backend}`.
    pub connect_errors: IntCounterVec,
    /// `portero_tcp_bytes_total{listener,pool,backend,direction}`, `direction` =
    /// `to_backend` or `to_client`; counted as they pass, not when the session ends.
    pub bytes: IntCounterVec,
    /// `portero_tcp_session_duration_seconds{listener}`.
    pub duration: HistogramVec,
}

impl Sessions {
    /// Registers them in `r`.
    pub fn register(r: &Registry) -> prometheus::Result<Self> {
        Ok(Self {
            open: register_int_gauge_vec_with_registry!(
                "portero_tcp_sessions_open",
                "Open sessions of tcp listeners",
                &["listener", "pool"],
                r
            )?,
            total: register_int_counter_vec_with_registry!(
                "portero_tcp_sessions_total",
                "Sessions of tcp listeners that reached a backend, by how they ended",
                &["listener", "pool", "backend", "end"],
                r
            )?,
            refused: register_int_counter_vec_with_registry!(
                "portero_tcp_sessions_refused_total",
                "Sessions of tcp listeners closed before reaching a backend, by reason",
                &["listener", "pool", "reason"],
                r
            )?,
            connect_errors: register_int_counter_vec_with_registry!(
                "portero_tcp_connect_errors_total",
                "Failed connects to backends for tcp sessions",
                &["listener", "pool", "backend"],
                r
            )?,
            bytes: register_int_counter_vec_with_registry!(
                "portero_tcp_bytes_total",
                "Bytes carried by tcp sessions, by direction",
                &["listener", "pool", "backend", "direction"],
                r
            )?,
            duration: register_histogram_vec_with_registry!(
                "portero_tcp_session_duration_seconds",
                "Length of tcp sessions that reached a backend",
                &["listener"],
                SESSION_BUCKETS.to_vec(),
                r
            )?,
        })
    }
}
