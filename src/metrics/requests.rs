//! What the request path counts: requests by how they were answered, how long they took, and
//! what each try at a backend got.

use super::LATENCY_BUCKETS;
use prometheus::{
    HistogramVec, IntCounterVec, Registry, register_histogram_vec_with_registry,
    register_int_counter_vec_with_registry,
};

/// Request metrics.
#[derive(Clone)]
pub struct Requests {
    /// `portero_requests_total{listener,pool,code_class}`.
    pub total: IntCounterVec,
    /// `portero_request_duration_seconds{pool}`.
    pub duration: HistogramVec,
    /// `portero_requests_refused_total{listener,reason}`: requests portero answered itself.
    pub refused: IntCounterVec,
    /// `portero_requests_aborted_total{listener,by}`: exchanges cut before their response
    /// ended, by `client` (went away, 499-style) or `upstream` (backend broke off).
    pub aborted: IntCounterVec,
    /// `portero_retries_total{pool}`.
    pub retries: IntCounterVec,
    /// `portero_pool_panic_total{pool}`: requests sent in panic mode (fewer than half the
    /// pool healthy, so spread over all of it).
    pub pool_panic: IntCounterVec,
    /// `portero_upstream_requests_total{pool,backend,code_class}`.
    pub upstream: IntCounterVec,
    /// `portero_upstream_errors_total{pool,backend,kind}`: failures with no backend status.
    pub upstream_errors: IntCounterVec,
    /// `portero_upstream_response_seconds{pool}`: request sent until response head received.
    pub upstream_response: HistogramVec,
}

impl Requests {
    /// Registers them in `r`.
    pub fn register(r: &Registry) -> prometheus::Result<Self> {
        Ok(Self {
            total: register_int_counter_vec_with_registry!(
                "portero_requests_total",
                "Requests answered",
                &["listener", "pool", "code_class"],
                r
            )?,
            duration: register_histogram_vec_with_registry!(
                "portero_request_duration_seconds",
                "Whole request time, first byte in to last byte out",
                &["pool"],
                LATENCY_BUCKETS.to_vec(),
                r
            )?,
            refused: register_int_counter_vec_with_registry!(
                "portero_requests_refused_total",
                "Requests portero answered itself instead of a backend, by reason",
                &["listener", "reason"],
                r
            )?,
            aborted: register_int_counter_vec_with_registry!(
                "portero_requests_aborted_total",
                "Requests cut before the response ended, by who went away",
                &["listener", "by"],
                r
            )?,
            retries: register_int_counter_vec_with_registry!(
                "portero_retries_total",
                "Requests retried on another backend",
                &["pool"],
                r
            )?,
            pool_panic: register_int_counter_vec_with_registry!(
                "portero_pool_panic_total",
                "Requests picked in panic mode: fewer than half the pool healthy, spread over all of it",
                &["pool"],
                r
            )?,
            upstream: register_int_counter_vec_with_registry!(
                "portero_upstream_requests_total",
                "Responses received from backends",
                &["pool", "backend", "code_class"],
                r
            )?,
            upstream_errors: register_int_counter_vec_with_registry!(
                "portero_upstream_errors_total",
                "Requests to backends that failed without a response",
                &["pool", "backend", "kind"],
                r
            )?,
            upstream_response: register_histogram_vec_with_registry!(
                "portero_upstream_response_seconds",
                "Time from sending a request to a backend until its response head",
                &["pool"],
                LATENCY_BUCKETS.to_vec(),
                r
            )?,
        })
    }
}
