//! The shared rate-limit store: every portero instance keeps each client's TAT in one Redis,
//! so the budget holds across instances. One round trip per decision: a Lua script runs the
//! same GCRA as [`gcra::decide`](super::gcra::decide) atomically inside Redis, on Redis's
//! clock (instances' clocks never disagree about a bucket). When Redis is away or slower than
//! `store_timeout`, the caller decides locally instead and counts it; after a failure Redis is
//! left alone for a second, so an outage costs requests no extra latency.

use super::gcra::{Rate, Verdict};
use crate::clock::now_us;
use crate::log_limit::keyed;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// At most one warning about the store per this long (the rest are counted).
const WARN_EVERY: Duration = Duration::from_secs(10);

/// KEYS[1] = the client's key; ARGV = interval µs, burst. Returns {allowed, retry_after_us}.
const GCRA: &str = r"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local interval = tonumber(ARGV[1])
local tolerance = interval * tonumber(ARGV[2])
local tat = tonumber(redis.call('GET', KEYS[1]) or '0')
local next = math.max(tat, now) + interval
local ahead = next - now
if ahead > tolerance then
  return {0, ahead - tolerance}
end
redis.call('SET', KEYS[1], string.format('%.0f', next), 'PX', math.ceil(ahead / 1000) + 1)
return {1, 0}
";

/// How long Redis is left alone after it failed.
const BACKOFF_US: u64 = 1_000_000;

/// A connection to the shared store.
pub struct RedisStore {
    connection: ConnectionManager,
    script: redis::Script,
    rate: Rate,
    timeout: Duration,
    down_until: AtomicU64,
}

impl std::fmt::Debug for RedisStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisStore")
            .field("rate", &self.rate)
            .finish()
    }
}

impl RedisStore {
    /// A store at `url` (validated by the config); connects lazily, so a Redis that is down
    /// at start does not stop the daemon. Must be called inside the runtime.
    pub fn new(url: &str, rate: Rate, timeout: Duration) -> Result<Self, redis::RedisError> {
        let client = redis::Client::open(url)?;
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(Duration::from_secs(1)))
            .set_response_timeout(Some(timeout))
            .set_number_of_retries(1);
        Ok(Self {
            connection: ConnectionManager::new_lazy_with_config(client, config)?,
            script: redis::Script::new(GCRA),
            rate,
            timeout,
            down_until: AtomicU64::new(0),
        })
    }

    /// The shared decision for `client`, or `None` when the store cannot give one in time.
    pub async fn check(&self, client: IpAddr) -> Option<Verdict> {
        let now = now_us();
        if now < self.down_until.load(Ordering::Relaxed) {
            return None;
        }
        let mut connection = self.connection.clone();
        let mut invocation = self.script.key(format!("portero:rl:{client}"));
        invocation.arg(self.rate.interval_us).arg(self.rate.burst);
        let call = invocation.invoke_async::<(u8, u64)>(&mut connection);
        match tokio::time::timeout(self.timeout, call).await {
            Ok(Ok((1, _))) => Some(Verdict::Allow(0)),
            Ok(Ok((_, wait))) => Some(Verdict::Deny(wait)),
            Ok(Err(e)) => {
                if let Some(suppressed) = keyed("rate_limit_store", "", WARN_EVERY) {
                    tracing::warn!(error = %e, suppressed, "rate-limit store failed; deciding locally");
                }
                self.down_until.store(now + BACKOFF_US, Ordering::Relaxed);
                None
            }
            Err(_) => {
                if let Some(suppressed) = keyed("rate_limit_store", "", WARN_EVERY) {
                    tracing::warn!(timeout = ?self.timeout, suppressed, "rate-limit store too slow; deciding locally");
                }
                self.down_until.store(now + BACKOFF_US, Ordering::Relaxed);
                None
            }
        }
    }
}
