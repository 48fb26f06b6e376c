//! Requests per client address, as a token bucket ([`gcra`]): `[security.rate_limit]`. The
//! budget lives in this process ([`local`], bounded memory) or in Redis ([`redis`]), shared by
//! every instance behind the same cloud load balancer; when Redis cannot answer in time the
//! local table decides (fail open to the per-instance budget, counted in
//! `portero_rate_limit_store_errors_total`).

pub mod gcra;
pub mod local;
pub mod redis;

use crate::clock::now_us;
use crate::config::{RateLimitConfig, RateLimitStore};
use gcra::{Rate, Verdict};
use local::LocalLimiter;
use prometheus::{IntCounter, IntGauge};
use redis::RedisStore;
use std::net::IpAddr;
use std::time::Duration;

/// A daemon's rate limiter, built from its config; a reload that leaves
/// `[security.rate_limit]` unchanged keeps it (and every client's budget).
#[derive(Debug)]
pub struct RateLimiter {
    config: RateLimitConfig,
    local: LocalLimiter,
    shared: Option<RedisStore>,
    tracked: Option<IntGauge>,
    store_errors: Option<IntCounter>,
}

impl RateLimiter {
    /// A limiter for `config`; with a Redis store, must be called inside the runtime.
    pub fn new(
        config: &RateLimitConfig,
        tracked: Option<IntGauge>,
        store_errors: Option<IntCounter>,
    ) -> Self {
        let rate = Rate::new(config.requests_per_second, config.burst);
        let shared = match &config.store {
            RateLimitStore::Local => None,
            RateLimitStore::Redis(url) => match RedisStore::new(url, rate, config.store_timeout) {
                Ok(store) => Some(store),
                Err(e) => {
                    tracing::error!(error = %e, "rate-limit store unusable; budgets stay local");
                    None
                }
            },
        };
        Self {
            config: config.clone(),
            local: LocalLimiter::new(rate, config.max_clients),
            shared,
            tracked,
            store_errors,
        }
    }

    /// The config it was built from.
    pub fn config(&self) -> &RateLimitConfig {
        &self.config
    }

    /// `Ok` when `client` may make a request now; otherwise how long until it may.
    pub async fn check(&self, client: IpAddr) -> Result<(), Duration> {
        let client = client.to_canonical();
        let verdict = match &self.shared {
            Some(store) => match store.check(client).await {
                Some(verdict) => verdict,
                None => {
                    if let Some(errors) = &self.store_errors {
                        errors.inc();
                    }
                    self.check_locally(client)
                }
            },
            None => self.check_locally(client),
        };
        match verdict {
            Verdict::Allow(_) => Ok(()),
            Verdict::Deny(wait_us) => Err(Duration::from_micros(wait_us)),
        }
    }

    fn check_locally(&self, client: IpAddr) -> Verdict {
        let verdict = self.local.check(client, now_us());
        if let Some(tracked) = &self.tracked {
            tracked.set(self.local.len() as i64);
        }
        verdict
    }
}
