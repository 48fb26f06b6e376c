//! `[security]`, the route and listener access keys, and `listener.proxy_protocol`: who may talk
//! to the daemon, how fast, and whose word about the client's address is believed.

use super::Problem;
use super::units;
use crate::access::AccessList;
use ipnet::IpNet;
use serde::Deserialize;
use std::ops::Range;
use std::time::Duration;
use toml::Spanned;

/// `[security]` as written.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SecurityFile {
    pub trusted_proxies: Vec<IpNet>,
    pub max_connections_per_ip: u32,
    pub allow: Vec<IpNet>,
    pub deny: Vec<IpNet>,
    pub rate_limit: Option<Spanned<RateLimitFile>>,
    /// Methods answered 405 instead of forwarded; default `["TRACE"]`.
    pub deny_methods: Option<Spanned<Vec<String>>>,
}

/// `[security.rate_limit]` as written.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RateLimitFile {
    #[serde(default = "default_rps")]
    pub requests_per_second: Spanned<f64>,
    #[serde(default = "default_burst")]
    pub burst: Spanned<u32>,
    #[serde(default)]
    pub store: Option<Spanned<String>>,
    #[serde(default = "default_max_clients")]
    pub max_clients: Spanned<usize>,
    #[serde(
        default = "default_store_timeout",
        deserialize_with = "units::duration"
    )]
    pub store_timeout: Duration,
}

fn default_rps() -> Spanned<f64> {
    Spanned::new(0..0, 100.0)
}
fn default_burst() -> Spanned<u32> {
    Spanned::new(0..0, 200)
}
fn default_max_clients() -> Spanned<usize> {
    Spanned::new(0..0, 100_000)
}
fn default_store_timeout() -> Duration {
    Duration::from_millis(50)
}

/// `listener.proxy_protocol` as written.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProxyProtocolFile {
    pub trusted: Vec<IpNet>,
}

/// The validated `[security]`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SecurityConfig {
    /// Peers whose `X-Forwarded-For` is kept and appended to, and whose last hop names the
    /// client for rate limits and route access rules.
    pub trusted_proxies: Vec<IpNet>,
    /// Open connections one client address may hold; 0 = no limit.
    pub max_connections_per_ip: u32,
    /// Daemon-wide: who may connect at all.
    pub access: AccessList,
    /// Requests per client address.
    pub rate_limit: Option<RateLimitConfig>,
    /// Methods portero answers 405 instead of forwarding.
    pub deny_methods: DeniedMethods,
}

/// `security.deny_methods`: methods answered 405 (with `Allow`) instead of forwarded. TRACE
/// by default, as nginx does: it echoes the request, cookies and credentials included, and a
/// backend behind a balancer has no business answering it.
#[derive(Debug, Clone, PartialEq)]
pub struct DeniedMethods {
    methods: Vec<http::Method>,
    /// The common methods not denied, for `Allow` in the 405 and in `OPTIONS *`.
    allow: http::HeaderValue,
}

impl DeniedMethods {
    /// Denies `methods`.
    pub fn new(methods: Vec<http::Method>) -> Self {
        use http::Method;
        let common = [
            Method::GET,
            Method::HEAD,
            Method::POST,
            Method::PUT,
            Method::DELETE,
            Method::PATCH,
            Method::OPTIONS,
        ];
        let allowed: Vec<&str> = common
            .iter()
            .filter(|m| !methods.contains(m))
            .map(Method::as_str)
            .collect();
        let allow = http::HeaderValue::from_str(&allowed.join(", "))
            .expect("method names are valid header text");
        Self { methods, allow }
    }

    /// Whether `method` is denied.
    pub fn denies(&self, method: &http::Method) -> bool {
        self.methods.contains(method)
    }

    /// The `Allow` value: the common methods that are not denied.
    pub fn allow(&self) -> &http::HeaderValue {
        &self.allow
    }
}

impl Default for DeniedMethods {
    fn default() -> Self {
        Self::new(vec![http::Method::TRACE])
    }
}

/// The validated `[security.rate_limit]`.
#[derive(Debug, Clone, PartialEq)]
pub struct RateLimitConfig {
    /// Sustained rate per client address.
    pub requests_per_second: f64,
    /// Requests a client may make at once after a quiet spell.
    pub burst: u32,
    /// Where the budget lives.
    pub store: RateLimitStore,
    /// Most client addresses tracked locally; past it, the least useful entries are forgotten.
    pub max_clients: usize,
    /// A shared-store decision that takes longer falls back to the local budget.
    pub store_timeout: Duration,
}

/// `security.rate_limit.store`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RateLimitStore {
    /// In this process.
    Local,
    /// Shared by every instance through Redis at this URL.
    Redis(String),
}

/// Validates `[security]`, collecting problems.
pub fn security(file: &SecurityFile, problems: &mut Vec<Problem>) -> SecurityConfig {
    SecurityConfig {
        trusted_proxies: file.trusted_proxies.clone(),
        max_connections_per_ip: file.max_connections_per_ip,
        access: AccessList::new(file.allow.clone(), file.deny.clone()),
        rate_limit: file
            .rate_limit
            .as_ref()
            .and_then(|r| rate_limit(r.get_ref(), r.span(), problems)),
        deny_methods: file
            .deny_methods
            .as_ref()
            .map_or_else(DeniedMethods::default, |m| deny_methods(m, problems)),
    }
}

fn deny_methods(names: &Spanned<Vec<String>>, problems: &mut Vec<Problem>) -> DeniedMethods {
    let mut methods = Vec::new();
    for name in names.get_ref() {
        // Method names are case-sensitive tokens (RFC 9110 §9.1); `trace` is not TRACE.
        match http::Method::from_bytes(name.as_bytes()) {
            Ok(method) if !name.is_empty() => methods.push(method),
            _ => problems.push(Problem::at(
                names.span(),
                format!("invalid method `{name}` in security.deny_methods"),
            )),
        }
    }
    DeniedMethods::new(methods)
}

fn rate_limit(
    file: &RateLimitFile,
    span: Range<usize>,
    problems: &mut Vec<Problem>,
) -> Option<RateLimitConfig> {
    let before = problems.len();
    let at = |s: Range<usize>| if s.is_empty() { span.clone() } else { s };
    let rps = *file.requests_per_second.get_ref();
    if !(rps.is_finite() && rps > 0.0 && rps <= 1_000_000.0) {
        problems.push(Problem::at(
            at(file.requests_per_second.span()),
            "security.rate_limit.requests_per_second must be above 0 and at most 1000000",
        ));
    }
    if *file.burst.get_ref() == 0 {
        problems.push(Problem::at(
            at(file.burst.span()),
            "security.rate_limit.burst must be at least 1",
        ));
    }
    if *file.max_clients.get_ref() < 16 {
        problems.push(Problem::at(
            at(file.max_clients.span()),
            "security.rate_limit.max_clients must be at least 16",
        ));
    }
    let store = match &file.store {
        None => RateLimitStore::Local,
        Some(s) if s.get_ref() == "local" => RateLimitStore::Local,
        Some(s)
            if ["redis://", "rediss://", "redis+unix://", "unix://"]
                .iter()
                .any(|scheme| s.get_ref().starts_with(scheme)) =>
        {
            match redis::parse_redis_url(s.get_ref()) {
                Some(_) => RateLimitStore::Redis(s.get_ref().clone()),
                None => {
                    problems.push(Problem::at(s.span(), "invalid Redis URL"));
                    RateLimitStore::Local
                }
            }
        }
        Some(s) => {
            problems.push(Problem::at(
                s.span(),
                "security.rate_limit.store must be \"local\", \"redis://HOST:PORT/DB\" or \"redis+unix:///PATH\"",
            ));
            RateLimitStore::Local
        }
    };
    (problems.len() == before).then(|| RateLimitConfig {
        requests_per_second: rps,
        burst: *file.burst.get_ref(),
        store,
        max_clients: *file.max_clients.get_ref(),
        store_timeout: file.store_timeout,
    })
}
