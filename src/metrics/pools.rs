//! What the pools' watchers count: backends by state, their checks and transitions, the
//! connections to them, and discovery's reads.

use super::LATENCY_BUCKETS;
use prometheus::{
    HistogramVec, IntCounterVec, IntGaugeVec, Registry, register_histogram_vec_with_registry,
    register_int_counter_vec_with_registry, register_int_gauge_vec_with_registry,
};

/// Pool and backend metrics.
#[derive(Clone)]
pub struct Pools {
    /// `portero_pool_backends{pool,state}`: members by state.
    pub backends: IntGaugeVec,
    /// `portero_backend_up{pool,backend}`.
    pub backend_up: IntGaugeVec,
    /// `portero_backend_in_flight{pool,backend}`.
    pub backend_in_flight: IntGaugeVec,
    /// `portero_backend_transitions_total{pool,backend,to,reason}`.
    pub backend_transitions: IntCounterVec,
    /// `portero_health_checks_total{pool,backend,result}`.
    pub health_checks: IntCounterVec,
    /// `portero_upstream_connect_seconds{pool}`: TCP connect time to backends.
    pub upstream_connect: HistogramVec,
    /// `portero_upstream_connections{pool,backend}`: open connections to each backend.
    pub upstream_connections: IntGaugeVec,
    /// `portero_pool_role{pool,role}`: 1 for each pool whose checks keep one role
    /// (`primary`, `replica`). Its other members are down by design, which alerts tell apart
    /// with it.
    pub pool_role: IntGaugeVec,
    /// `portero_discovery_updates_total{pool,source,result}`: feed reads by result
    /// (`changed`, `unchanged`, `error`).
    pub discovery_updates: IntCounterVec,
}

impl Pools {
    /// Registers them in `r`.
    pub fn register(r: &Registry) -> prometheus::Result<Self> {
        Ok(Self {
            backends: register_int_gauge_vec_with_registry!(
                "portero_pool_backends",
                "Backends of each pool by state",
                &["pool", "state"],
                r
            )?,
            backend_up: register_int_gauge_vec_with_registry!(
                "portero_backend_up",
                "1 when the backend takes new requests",
                &["pool", "backend"],
                r
            )?,
            backend_in_flight: register_int_gauge_vec_with_registry!(
                "portero_backend_in_flight",
                "Requests in flight to the backend",
                &["pool", "backend"],
                r
            )?,
            backend_transitions: register_int_counter_vec_with_registry!(
                "portero_backend_transitions_total",
                "Backend state changes, by new state and reason",
                &["pool", "backend", "to", "reason"],
                r
            )?,
            health_checks: register_int_counter_vec_with_registry!(
                "portero_health_checks_total",
                "Active health checks",
                &["pool", "backend", "result"],
                r
            )?,
            upstream_connect: register_histogram_vec_with_registry!(
                "portero_upstream_connect_seconds",
                "Time to connect to a backend",
                &["pool"],
                LATENCY_BUCKETS.to_vec(),
                r
            )?,
            upstream_connections: register_int_gauge_vec_with_registry!(
                "portero_upstream_connections",
                "Connections open to each backend, pooled or busy",
                &["pool", "backend"],
                r
            )?,
            pool_role: register_int_gauge_vec_with_registry!(
                "portero_pool_role",
                "1 for a pool whose health checks keep only nodes of one role (primary or replica)",
                &["pool", "role"],
                r
            )?,
            discovery_updates: register_int_counter_vec_with_registry!(
                "portero_discovery_updates_total",
                "Discovery feed reads, by result: changed, unchanged or error (last good set kept)",
                &["pool", "source", "result"],
                r
            )?,
        })
    }
}
