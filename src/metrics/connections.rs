//! What the server counts: client connections from accept to close, and what their handshakes
//! and first bytes were.

use prometheus::{
    IntCounterVec, IntGauge, IntGaugeVec, Registry, register_int_counter_vec_with_registry,
    register_int_gauge_vec_with_registry, register_int_gauge_with_registry,
};

/// Client connection metrics.
#[derive(Clone)]
pub struct Connections {
    /// `portero_connections_open{listener}`.
    pub open: IntGaugeVec,
    /// `portero_connections_limit{tier}`.
    pub limit: IntGaugeVec,
    /// `portero_connections_in_burst`.
    pub in_burst: IntGauge,
    /// `portero_connections_parked{listener}`: idle HTTP/1 keep-alive connections waiting
    /// for their next request outside hyper.
    pub parked: IntGaugeVec,
    /// `portero_connections_accepted_total{listener}`.
    pub accepted: IntCounterVec,
    /// `portero_connections_rejected_total{listener,reason}`.
    pub rejected: IntCounterVec,
    /// `portero_slow_readers_total{listener,reason}`: connections closed because the client
    /// read too slowly: `stalled` (nothing for `timeouts.client_write`) or `min_send_rate`.
    pub slow_readers: IntCounterVec,
    /// `portero_proxy_protocol_total{listener,result}`: PROXY headers read or refused.
    pub proxy_protocol: IntCounterVec,
    /// `portero_tls_handshakes_total{listener,result,version}`.
    pub tls_handshakes: IntCounterVec,
    /// `portero_tls_handshake_errors_total{listener,reason}`: failed handshakes by why.
    pub tls_handshake_errors: IntCounterVec,
}

impl Connections {
    /// Registers them in `r`.
    pub fn register(r: &Registry) -> prometheus::Result<Self> {
        Ok(Self {
            open: register_int_gauge_vec_with_registry!(
                "portero_connections_open",
                "Open client connections",
                &["listener"],
                r
            )?,
            limit: register_int_gauge_vec_with_registry!(
                "portero_connections_limit",
                "Connection admission limits",
                &["tier"],
                r
            )?,
            in_burst: register_int_gauge_with_registry!(
                "portero_connections_in_burst",
                "Open connections admitted above the baseline",
                r
            )?,
            parked: register_int_gauge_vec_with_registry!(
                "portero_connections_parked",
                "Idle HTTP/1 keep-alive connections parked until their next request",
                &["listener"],
                r
            )?,
            accepted: register_int_counter_vec_with_registry!(
                "portero_connections_accepted_total",
                "Client connections accepted",
                &["listener"],
                r
            )?,
            rejected: register_int_counter_vec_with_registry!(
                "portero_connections_rejected_total",
                "Client connections refused",
                &["listener", "reason"],
                r
            )?,
            slow_readers: register_int_counter_vec_with_registry!(
                "portero_slow_readers_total",
                "Client connections closed because the client read too slowly, by reason",
                &["listener", "reason"],
                r
            )?,
            proxy_protocol: register_int_counter_vec_with_registry!(
                "portero_proxy_protocol_total",
                "PROXY protocol headers on listeners that accept them, by result",
                &["listener", "result"],
                r
            )?,
            tls_handshakes: register_int_counter_vec_with_registry!(
                "portero_tls_handshakes_total",
                "TLS handshakes by result (ok, error, timeout) and protocol version",
                &["listener", "result", "version"],
                r
            )?,
            tls_handshake_errors: register_int_counter_vec_with_registry!(
                "portero_tls_handshake_errors_total",
                "Failed TLS handshakes by reason (no_certificate, protocol, incompatible, alert_received, client_certificate, closed, io, other)",
                &["listener", "reason"],
                r
            )?,
        })
    }
}
