//! The configuration: TOML text -> [`FileConfig`](load::FileConfig) (serde, every problem
//! collected with its line and column) -> [`validate`] -> the typed [`Config`] the daemon runs.
//! Nothing binds or connects until a `Config` exists, so a bad file never half-starts anything.

pub mod acme;
mod file;
mod health_check;
mod listener;
mod load;
mod pool;
mod protocols;
mod security;
mod tls;
pub mod units;

pub use acme::AcmeConfig;
pub use security::{DeniedMethods, RateLimitConfig, RateLimitStore, SecurityConfig};
pub use tls::{CertificateFile, ListenerTls, UpstreamTls, load_certificates};

pub use health_check::{
    CheckKind, HealthCheckConfig, HttpCheck, Role, Secret, StatusRanges, StoreCheck,
};
pub use listener::{ListenerMode, SniRoute};
pub use pool::{
    DiscoveryConfig, DiscoverySource, HashKey, OnMarkedDown, OutlierConfig, PoolConfig,
    ProxyVersion, Serves,
};
pub use protocols::ListenerProtocols;

pub use file::{
    AdminConfig, AdmissionConfig, AtLimit, Balance, Limits, LogConfig, LogFormat, Timeouts,
    UpstreamProtocol,
};

use crate::access::AccessList;
use crate::route::HostMatch;
use file::{ListenerFile, PoolFile, RouteFile};
use ipnet::IpNet;
use listener::{listener_mode, serves_http, tcp_pools};
use load::FileConfig;
use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::net::SocketAddr;
use std::ops::Range;
use std::path::Path;

/// A validated configuration, ready to run.
#[derive(Debug, Clone)]
pub struct Config {
    /// `[admission]`.
    pub admission: AdmissionConfig,
    /// `[timeouts]`.
    pub timeouts: Timeouts,
    /// `[limits]`.
    pub limits: Limits,
    /// `[log]`.
    pub log: LogConfig,
    /// `[security]`.
    pub security: SecurityConfig,
    /// `[admin]`.
    pub admin: AdminConfig,
    /// Traffic listeners, in file order.
    pub listeners: Vec<ListenerConfig>,
    /// Routes, first match wins. A single HTTP pool without routes gets a catch-all; empty
    /// only when every listener is a tcp one.
    pub routes: Vec<RouteConfig>,
    /// Pools by name.
    pub pools: BTreeMap<String, PoolConfig>,
    /// Reload when the file changes on disk (top-level `watch`).
    pub watch: bool,
}

/// One traffic listener.
#[derive(Debug, Clone, PartialEq)]
pub struct ListenerConfig {
    /// Used in metric labels and logs; unique.
    pub name: String,
    /// Where to bind.
    pub address: SocketAddr,
    /// HTTPS when set.
    pub tls: Option<ListenerTls>,
    /// Plain listener answering every request with a 308 to https.
    pub http_redirect: bool,
    /// Peers that must open each connection with a PROXY header (v1 or v2) naming the
    /// client; `None` = PROXY protocol off.
    pub proxy_protocol: Option<Vec<IpNet>>,
    /// HTTP/1, HTTP/2 or both (the default).
    pub protocols: ListenerProtocols,
    /// HTTP through the proxy, or TCP to one pool.
    pub mode: ListenerMode,
}

/// One route: requests matching `host` and `path_prefix` go to `pool`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteConfig {
    /// Which hosts match.
    pub host: HostMatch,
    /// Path prefix (plain string prefix, as Envoy and nginx `location` do).
    pub path_prefix: String,
    /// Name of an existing pool.
    pub pool: String,
    /// Who may use the route.
    pub access: AccessList,
}

impl Config {
    /// Reads and validates the file at `path`.
    pub fn from_file(path: &Path) -> Result<Config, ConfigError> {
        let origin = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|e| ConfigError {
            origin: origin.clone(),
            problems: vec![Problem::message(format!("cannot read the file: {e}"))],
        })?;
        Self::from_toml(&text, &origin)
    }

    /// Parses and validates `text`; `origin` names it in error messages.
    pub fn from_toml(text: &str, origin: &str) -> Result<Config, ConfigError> {
        let file = load::parse(text, origin)?;
        validate(file).map_err(|problems| ConfigError::new(origin, text, problems))
    }

    /// The names of the traffic listeners.
    pub fn listener_names(&self) -> impl Iterator<Item = &str> {
        self.listeners.iter().map(|l| l.name.as_str())
    }
}

/// Cross-checks a parsed file and builds the typed [`Config`], or returns every problem.
fn validate(file: FileConfig) -> Result<Config, Vec<Problem>> {
    let mut problems = Vec::new();
    check_admission(&file.admission, &mut problems);
    check_limits(&file.limits, &mut problems);
    if !(0.0..=1.0).contains(&file.log.access_log_sample) {
        problems.push(Problem::message(format!(
            "log.access_log_sample = {} must be between 0 and 1 (0.01 logs one ordinary request in a hundred)",
            file.log.access_log_sample
        )));
    }
    let security = security::security(&file.security, &mut problems);
    let listeners = listeners(&file, &mut problems);
    check_http01_has_a_listener(&listeners, &mut problems);
    let tcp = tcp_pools(&file);
    let pools = pools(&file.pools, &tcp, &mut problems);
    let routes = routes(&file, &pools, &tcp, &mut problems);
    if !problems.is_empty() {
        return Err(problems);
    }
    Ok(Config {
        admission: file.admission,
        timeouts: file.timeouts,
        limits: file.limits,
        log: file.log,
        security,
        admin: file.admin,
        listeners,
        routes,
        pools,
        watch: file.watch,
    })
}

fn check_admission(admission: &AdmissionConfig, problems: &mut Vec<Problem>) {
    if admission.baseline_connections == 0 {
        problems.push(Problem::message(
            "admission.baseline_connections must be at least 1",
        ));
    }
    if admission.burst_connections < admission.baseline_connections {
        problems.push(Problem::message(format!(
            "admission.burst_connections ({}) must be at least baseline_connections ({})",
            admission.burst_connections, admission.baseline_connections
        )));
    }
}

/// The smallest `stream_buffer` that holds a whole HTTP/2 frame (16 KiB), and the largest
/// that keeps it a bound (an HTTP/2 window cannot pass 2^31 - 1 anyway).
const STREAM_BUFFER: std::ops::RangeInclusive<usize> = 16 * 1024..=16 * 1024 * 1024;

/// hyper's smallest read buffer, and a bound that keeps a slow reader's share small.
const RESPONSE_HEAD: std::ops::RangeInclusive<usize> = 8 * 1024..=1024 * 1024;

fn check_limits(limits: &Limits, problems: &mut Vec<Problem>) {
    if !RESPONSE_HEAD.contains(&limits.max_response_header_bytes) {
        problems.push(Problem::message(format!(
            "limits.max_response_header_bytes ({} bytes) must be between 8KiB and 1MiB",
            limits.max_response_header_bytes
        )));
    }
    if !STREAM_BUFFER.contains(&limits.stream_buffer) {
        problems.push(Problem::message(format!(
            "limits.stream_buffer ({} bytes) must be between 16KiB and 16MiB",
            limits.stream_buffer
        )));
    }
}

/// An ACME section that may only answer HTTP-01 needs a plain HTTP listener to answer on.
fn check_http01_has_a_listener(listeners: &[ListenerConfig], problems: &mut Vec<Problem>) {
    let plain = listeners
        .iter()
        .any(|l| l.tls.is_none() && l.mode == ListenerMode::Http);
    for listener in listeners {
        let Some(acme) = listener.tls.as_ref().and_then(|t| t.acme.as_ref()) else {
            continue;
        };
        if !plain && acme.challenges == [acme::Challenge::Http01] {
            problems.push(Problem::message(format!(
                "listener `{}`: acme.challenges = [\"http-01\"] needs a plain HTTP listener (on port 80) to answer the CA; add one or allow \"tls-alpn-01\"",
                listener.name
            )));
        }
    }
}

fn listeners(file: &FileConfig, problems: &mut Vec<Problem>) -> Vec<ListenerConfig> {
    if file.listeners.is_empty() {
        let problem = "no [[listener]]: add one, e.g. [[listener]] address = \"0.0.0.0:8080\"";
        problems.push(match &file.listener_span {
            Some(span) => Problem::at(span.clone(), problem),
            None => Problem::message(problem),
        });
    }
    let mut seen: BTreeMap<String, ()> = BTreeMap::new();
    let mut out = Vec::new();
    for (index, listener) in file.listeners.iter().enumerate() {
        let ListenerFile {
            name,
            address,
            proxy_protocol,
            tls,
            http_redirect,
            protocols,
            // Read by `listener_mode`.
            protocol: _,
            pool: _,
            sni: _,
        } = listener;
        let (name, span) = match name {
            Some(n) => (n.get_ref().clone(), Some(n.span())),
            None if index == 0 => ("http".to_string(), None),
            None => (format!("listener{index}"), None),
        };
        if seen.insert(name.clone(), ()).is_some() {
            let text = format!("two listeners are named `{name}`: give each a unique `name`");
            problems.push(match span {
                Some(span) => Problem::at(span, text),
                None => Problem::message(text),
            });
        }
        if address.port() != 0 && *address == file.admin.address {
            problems.push(Problem::message(format!(
                "listener `{name}` and the admin listener both use {address}"
            )));
        }
        let proxy_protocol = proxy_protocol.as_ref().map(|p| p.get_ref().trusted.clone());
        if proxy_protocol.as_ref().is_some_and(Vec::is_empty) {
            problems.push(Problem::message(format!(
                "listener `{name}`: proxy_protocol.trusted is empty; list the load balancers' CIDRs"
            )));
        }
        let tls = tls
            .as_ref()
            .and_then(|t| tls::listener_tls(t.get_ref(), t.span(), problems));
        if *http_redirect && tls.is_some() {
            problems.push(Problem::message(format!(
                "listener `{name}`: http_redirect is for plain listeners, not TLS ones"
            )));
        }
        let protocols = protocols
            .as_ref()
            .map_or_else(ListenerProtocols::default, |p| {
                protocols::listener_protocols(&name, tls.is_some(), p.get_ref(), p.span(), problems)
            });
        let mode = listener_mode(&name, listener, file, problems);
        out.push(ListenerConfig {
            name,
            address: *address,
            tls,
            http_redirect: *http_redirect,
            proxy_protocol,
            protocols,
            mode,
        });
    }
    out
}

fn pools(
    files: &BTreeMap<String, (Range<usize>, PoolFile)>,
    tcp: &BTreeSet<&str>,
    problems: &mut Vec<Problem>,
) -> BTreeMap<String, PoolConfig> {
    let mut out = BTreeMap::new();
    for (name, (name_span, pool)) in files {
        let serves = if tcp.contains(name.as_str()) {
            pool::Serves::Tcp
        } else {
            pool::Serves::Http
        };
        if let Some(pool) = pool::pool_config(name, name_span, pool, serves, problems) {
            out.insert(name.clone(), pool);
        }
    }
    out
}

fn routes(
    file: &FileConfig,
    pools: &BTreeMap<String, PoolConfig>,
    tcp: &BTreeSet<&str>,
    problems: &mut Vec<Problem>,
) -> Vec<RouteConfig> {
    if file.routes.is_empty() {
        // Without routes, HTTP goes to the one pool that no tcp listener takes; a daemon
        // with tcp listeners only needs no route at all.
        if file.pools.is_empty() {
            problems.push(Problem::message("no [pool.NAME]: add at least one pool"));
            return Vec::new();
        }
        if !file.listeners.iter().any(serves_http) {
            return Vec::new();
        }
        let http_pools = file
            .pools
            .keys()
            .filter(|name| !tcp.contains(name.as_str()));
        return match (
            http_pools.count(),
            pools.keys().find(|n| !tcp.contains(n.as_str())),
        ) {
            (1, Some(only)) => vec![RouteConfig {
                host: HostMatch::Any,
                path_prefix: "/".into(),
                pool: only.clone(),
                access: AccessList::default(),
            }],
            (0, _) => {
                problems.push(Problem::message(
                    "no pool for the HTTP listeners: every pool serves a tcp listener; add one, or a [[route]]",
                ));
                Vec::new()
            }
            // A pool with its own problems was dropped: those problems are reported already.
            (1, None) => Vec::new(),
            _ => {
                problems.push(Problem::message(
                    "several pools and no [[route]]: add routes saying which traffic goes where",
                ));
                Vec::new()
            }
        };
    }
    file.routes
        .iter()
        .filter_map(|route| route_config(route, file, tcp, problems))
        .collect()
}

fn route_config(
    route: &RouteFile,
    file: &FileConfig,
    tcp: &BTreeSet<&str>,
    problems: &mut Vec<Problem>,
) -> Option<RouteConfig> {
    let before = problems.len();
    let host = match &route.host {
        None => HostMatch::Any,
        Some(h) => HostMatch::parse(h.get_ref())
            .map_err(|e| problems.push(Problem::at(h.span(), e)))
            .unwrap_or(HostMatch::Any),
    };
    let path_prefix = match &route.path_prefix {
        None => "/".to_string(),
        Some(p) if p.get_ref().starts_with('/') => p.get_ref().clone(),
        Some(p) => {
            problems.push(Problem::at(p.span(), "path_prefix must start with `/`"));
            String::new()
        }
    };
    let pool = route.pool.get_ref();
    if !file.pools.contains_key(pool) {
        let known: Vec<&str> = file.pools.keys().map(String::as_str).collect();
        problems.push(Problem::at(
            route.pool.span(),
            format!(
                "route names pool `{pool}`, which does not exist (pools: {})",
                known.join(", ")
            ),
        ));
    }
    if tcp.contains(pool.as_str()) {
        problems.push(Problem::at(
            route.pool.span(),
            format!("route names pool `{pool}`, which a tcp or tls-passthrough listener uses: give HTTP its own pool"),
        ));
    }
    (problems.len() == before).then(|| RouteConfig {
        host,
        path_prefix,
        pool: pool.clone(),
        access: AccessList::new(route.allow.clone(), route.deny.clone()),
    })
}

pub(crate) fn unsupported(span: Range<usize>, what: &str) -> Problem {
    Problem::at(
        span,
        format!("`{what}` is not supported by this build of portero yet"),
    )
}

/// Everything wrong with a config file.
#[derive(Debug, Clone, thiserror::Error)]
pub struct ConfigError {
    origin: String,
    /// The problems, in file order where they have a position.
    pub problems: Vec<Problem>,
}

/// One problem, with its position in the file where there is one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// What is wrong.
    pub message: String,
    /// Byte range in the file.
    pub span: Option<Range<usize>>,
    /// 1-based line and column, filled in from `span`.
    pub line_col: Option<(usize, usize)>,
}

impl Problem {
    fn at(span: Range<usize>, message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
            span: Some(span),
            line_col: None,
        }
    }

    fn message(message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
            span: None,
            line_col: None,
        }
    }

    fn from_toml(error: &toml::de::Error) -> Self {
        Self {
            message: error.message().trim().to_string(),
            span: error.span(),
            line_col: None,
        }
    }
}

impl ConfigError {
    fn new(origin: &str, text: &str, mut problems: Vec<Problem>) -> Self {
        for problem in &mut problems {
            problem.line_col = problem.span.as_ref().map(|s| line_col(text, s.start));
        }
        problems.sort_by_key(|p| p.line_col.unwrap_or((usize::MAX, 0)));
        Self {
            origin: origin.to_string(),
            problems,
        }
    }
}

fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let col = before
        .rfind('\n')
        .map_or(before.len(), |nl| before.len() - nl - 1)
        + 1;
    (line, col)
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n = self.problems.len();
        write!(
            f,
            "{}: {n} problem{}",
            self.origin,
            if n == 1 { "" } else { "s" }
        )?;
        for p in &self.problems {
            match p.line_col {
                Some((line, col)) => write!(f, "\n  {}:{line}:{col}: {}", self.origin, p.message)?,
                None => write!(f, "\n  {}: {}", self.origin, p.message)?,
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests;
