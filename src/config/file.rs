//! The config file as serde reads it. Sections whose values need no cross-checking
//! (timeouts, limits, log, admission, admin) are already typed here and pass into
//! [`Config`](super::Config) unchanged; listeners, routes and pools are checked against each
//! other by [`validate`](super::validate) first.

use super::units;
pub use crate::balance::Balance;
use ipnet::IpNet;
use serde::Deserialize;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;
use toml::Spanned;

/// `[admission]`: connection admission over all traffic listeners together.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AdmissionConfig {
    /// Connections admitted freely.
    pub baseline_connections: usize,
    /// The hard ceiling; between baseline and burst the daemon is "in burst".
    pub burst_connections: usize,
    /// What happens to a connection that arrives at the ceiling.
    pub at_limit: AtLimit,
    /// Listen backlog of every traffic listener (the kernel caps it at `somaxconn`).
    pub backlog: u32,
}

impl Default for AdmissionConfig {
    fn default() -> Self {
        Self {
            baseline_connections: 10_000,
            burst_connections: 40_000,
            at_limit: AtLimit::Queue,
            backlog: 4096,
        }
    }
}

/// `admission.at_limit`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AtLimit {
    /// Stop accepting; the kernel backlog holds new connections until a slot frees.
    Queue,
    /// Accept, answer 503 with `Retry-After`, close.
    Reject,
}

/// `[timeouts]`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Timeouts {
    /// The whole request head must arrive within this (also the wait for a new connection's first byte).
    #[serde(deserialize_with = "units::duration")]
    pub request_header: Duration,
    /// Keep-alive idle time between requests.
    #[serde(deserialize_with = "units::duration")]
    pub idle: Duration,
    /// TLS handshake deadline.
    #[serde(deserialize_with = "units::duration")]
    pub tls_handshake: Duration,
    /// Longest gap between two reads of a request body.
    #[serde(deserialize_with = "units::duration")]
    pub request_body: Duration,
    /// Longest a response may wait on a client that takes no bytes (zero TCP window, HTTP/2
    /// window held at 0) before the connection is closed.
    #[serde(deserialize_with = "units::duration")]
    pub client_write: Duration,
    /// TCP connect to a backend.
    #[serde(deserialize_with = "units::duration")]
    pub upstream_connect: Duration,
    /// From sending the request until the response head arrives.
    #[serde(deserialize_with = "units::duration")]
    pub upstream_response: Duration,
    /// Longest the backend may send nothing while portero waits on its response body; past
    /// it the response is cut (HTTP/1 close, HTTP/2 RST_STREAM) and the backend charged.
    /// `0s` = no limit.
    #[serde(deserialize_with = "units::duration")]
    pub upstream_idle: Duration,
    /// A gRPC call's own deadline (`grpc-timeout`) stands in for `upstream_response` and
    /// `request_body` when it is longer, up to this: a watch stream may rightly send nothing
    /// for minutes. `0s` = the deadline only ever shortens them.
    #[serde(deserialize_with = "units::duration")]
    pub grpc_timeout_max: Duration,
    /// Longest a `tcp` listener's session may carry no byte either way before it is closed.
    /// `0s` = no limit. Long, as HAProxy's `timeout client`/`server` are set for databases:
    /// an application's pooled connection may rightly sit quiet for minutes.
    #[serde(deserialize_with = "units::duration")]
    pub tcp_idle: Duration,
    /// Graceful shutdown and backend-removal deadline.
    #[serde(deserialize_with = "units::duration")]
    pub drain: Duration,
    /// On SIGTERM, keep accepting (with `/readyz` at 503) for this long before closing listeners.
    #[serde(deserialize_with = "units::duration")]
    pub shutdown_grace: Duration,
}

impl Default for Timeouts {
    fn default() -> Self {
        Self {
            request_header: Duration::from_secs(10),
            idle: Duration::from_secs(75),
            tls_handshake: Duration::from_secs(10),
            request_body: Duration::from_secs(30),
            client_write: Duration::from_secs(60),
            upstream_connect: Duration::from_secs(5),
            upstream_response: Duration::from_secs(30),
            upstream_idle: Duration::from_secs(60),
            grpc_timeout_max: Duration::from_secs(300),
            tcp_idle: Duration::from_secs(30 * 60),
            drain: Duration::from_secs(30),
            shutdown_grace: Duration::from_secs(5),
        }
    }
}

/// `[limits]`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Limits {
    /// Largest request head in bytes (-> 431).
    #[serde(deserialize_with = "units::size_usize")]
    pub max_header_bytes: usize,
    /// Most header fields in a request (-> 431).
    pub max_headers: usize,
    /// Longest request target in bytes (-> 414).
    #[serde(deserialize_with = "units::size_usize")]
    pub max_uri_bytes: usize,
    /// Largest request body in bytes (-> 413).
    #[serde(deserialize_with = "units::size")]
    pub max_request_body: u64,
    /// Resident memory the daemon aims to stay under (0 = no limit): keep-alive off past 95%,
    /// new requests refused with 503 past 98%.
    #[serde(deserialize_with = "units::size")]
    pub max_memory: u64,
    /// Largest response head from a backend over HTTP/1.1 (-> 502). Also the size of the
    /// buffer portero reads each backend's response into; at least 8 KiB (hyper's floor).
    #[serde(deserialize_with = "units::size_usize")]
    pub max_response_header_bytes: usize,
    /// The most of one stream's bytes portero lets wait, in each direction, for the slower
    /// side: unsent bytes in each socket's kernel queue (`TCP_NOTSENT_LOWAT`) and HTTP/2
    /// stream windows and send buffers, to clients and to backends. Past it, portero stops
    /// reading from the faster side (backpressure): nothing is dropped.
    #[serde(deserialize_with = "units::size_usize")]
    pub stream_buffer: usize,
    /// Bytes per second a client must read while portero waits on it, averaged over each
    /// `timeouts.client_write` of waiting; slower, the connection is closed (0 = off: only a
    /// client that reads nothing for `client_write` is).
    #[serde(deserialize_with = "units::size")]
    pub min_send_rate: u64,
}

impl Limits {
    /// `stream_buffer` as socket options and HTTP/2 windows take it (validated to at most
    /// 16 MiB).
    pub fn stream_buffer_u32(&self) -> u32 {
        u32::try_from(self.stream_buffer).unwrap_or(u32::MAX)
    }
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_header_bytes: 32 * 1024,
            max_headers: 100,
            max_uri_bytes: 8 * 1024,
            max_request_body: 10 * 1024 * 1024,
            max_memory: 0,
            max_response_header_bytes: 16 * 1024,
            stream_buffer: 64 * 1024,
            min_send_rate: 1024,
        }
    }
}

/// `[log]`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LogConfig {
    /// `"stdout"`, `"off"` or a file path.
    pub access_log: String,
    /// The share of ordinary requests given an access-log line, 0 to 1; server errors,
    /// broken-off exchanges and slow requests always get one.
    pub access_log_sample: f64,
    /// Requests at least this long always get an access-log line.
    #[serde(deserialize_with = "units::duration")]
    pub access_log_slow: Duration,
    /// Default filter for the daemon's own log lines; `RUST_LOG` overrides it.
    pub level: String,
    /// Format of the daemon's own log lines on stderr.
    pub format: LogFormat,
}

impl Default for LogConfig {
    fn default() -> Self {
        Self {
            access_log: "stdout".into(),
            access_log_sample: 1.0,
            access_log_slow: Duration::from_secs(1),
            level: "info".into(),
            format: LogFormat::Text,
        }
    }
}

/// `log.format`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

/// `[admin]`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AdminConfig {
    /// Address of the admin listener (metrics and admin API).
    pub address: SocketAddr,
    /// When set, write endpoints need `Authorization: Bearer <token>`.
    pub token_file: Option<PathBuf>,
}

impl Default for AdminConfig {
    fn default() -> Self {
        Self {
            address: SocketAddr::from(([127, 0, 0, 1], 9901)),
            token_file: None,
        }
    }
}

/// One `[[listener]]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListenerFile {
    #[serde(default)]
    pub name: Option<Spanned<String>>,
    pub address: SocketAddr,
    #[serde(default)]
    pub proxy_protocol: Option<Spanned<super::security::ProxyProtocolFile>>,
    #[serde(default)]
    pub tls: Option<Spanned<super::tls::ListenerTlsFile>>,
    /// Answer every request with a 308 to the same URL over https.
    #[serde(default)]
    pub http_redirect: bool,
    /// What the listener speaks (see [`ListenerProtocols`](super::ListenerProtocols)).
    #[serde(default)]
    pub protocols: Option<Spanned<Vec<String>>>,
    /// `"http"` (the default), `"tcp"` or `"tls-passthrough"`.
    #[serde(default)]
    pub protocol: Option<Spanned<ProtocolName>>,
    /// A `tcp` listener's pool; a `tls-passthrough` listener's pool for names no `sni` rule
    /// matches.
    #[serde(default)]
    pub pool: Option<Spanned<String>>,
    /// `tls-passthrough`: pools by the ClientHello's server name, first match wins.
    #[serde(default)]
    pub sni: Option<Spanned<Vec<SniFile>>>,
}

/// One `sni` rule of a `tls-passthrough` listener.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SniFile {
    /// `db.example.com`, or `*.example.com` for any name under it.
    pub name: Spanned<String>,
    /// The pool its sessions go to.
    pub pool: Spanned<String>,
}

/// `[[listener]] protocol`: what a listener does with its connections.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ProtocolName {
    /// HTTP/1.1 and HTTP/2, through the proxy.
    #[default]
    Http,
    /// Bytes both ways between the client and one backend of the listener's pool.
    Tcp,
    /// TLS forwarded untouched, routed on the ClientHello's SNI.
    TlsPassthrough,
}

/// One `[[route]]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RouteFile {
    #[serde(default)]
    pub host: Option<Spanned<String>>,
    #[serde(default)]
    pub path_prefix: Option<Spanned<String>>,
    pub pool: Spanned<String>,
    /// CIDRs; when non-empty, only these clients may use the route.
    #[serde(default)]
    pub allow: Vec<IpNet>,
    /// CIDRs refused on this route.
    #[serde(default)]
    pub deny: Vec<IpNet>,
}

/// One `[pool.NAME]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PoolFile {
    #[serde(default)]
    pub balance: Option<Spanned<Balance>>,
    #[serde(default)]
    pub backends: Option<Spanned<Vec<BackendEntry>>>,
    #[serde(default)]
    pub protocol: UpstreamProtocol,
    #[serde(default)]
    pub health_check: Option<Spanned<HealthCheckFile>>,
    #[serde(default)]
    pub hash_key: Option<Spanned<String>>,
    #[serde(default, deserialize_with = "units::duration")]
    pub slow_start: Duration,
    #[serde(default = "default_retries")]
    pub retries: u32,
    #[serde(default = "default_retry_budget")]
    pub retry_budget: Spanned<f64>,
    #[serde(default)]
    pub outlier: OutlierConfig,
    #[serde(default)]
    pub tls: Option<Spanned<super::tls::UpstreamTlsFile>>,
    #[serde(default)]
    pub discovery: Option<Spanned<DiscoveryFile>>,
    /// `tcp` listeners: a PROXY header (`"v1"` or `"v2"`) opening each connection to a
    /// backend, so it sees the client's address.
    #[serde(default)]
    pub send_proxy_protocol: Option<ProxyVersion>,
    /// `tcp` listeners: what happens to a backend's open sessions when its active checks mark
    /// it down (a primary demoted to replica, say).
    #[serde(default)]
    pub on_marked_down: OnMarkedDown,
}

/// `pool.*.send_proxy_protocol`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ProxyVersion {
    /// The text header.
    V1,
    /// The binary header.
    V2,
}

/// `pool.*.on_marked_down`, after HAProxy's `on-marked-down`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OnMarkedDown {
    /// Close them: a session to a node that lost its role must not write on (the default).
    #[default]
    Close,
    /// Let them run until either side closes.
    Keep,
}

/// `[pool.NAME.discovery]`: exactly one source.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DiscoveryFile {
    /// `"name:port"`: A/AAAA records of the name.
    #[serde(default)]
    pub dns: Option<Spanned<String>>,
    /// `"_service._proto.name"`: SRV records (targets, ports, weights).
    #[serde(default)]
    pub srv: Option<Spanned<String>>,
    /// A polled JSON document.
    #[serde(default)]
    pub http: Option<Spanned<String>>,
    /// A watched JSON file.
    #[serde(default)]
    pub file: Option<Spanned<PathBuf>>,
    /// Re-read at least this often.
    #[serde(default = "default_refresh", deserialize_with = "units::duration")]
    pub refresh: Duration,
    /// DNS only: the resolver to ask.
    #[serde(default)]
    pub nameserver: Option<SocketAddr>,
}

fn default_refresh() -> Duration {
    Duration::from_secs(5)
}

fn default_retries() -> u32 {
    1
}

fn default_retry_budget() -> Spanned<f64> {
    Spanned::new(0..0, 0.2)
}

/// `[pool.NAME.health_check]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HealthCheckFile {
    /// `"http"`, `"tcp"`, `"redis"` or `"mysql"`; without it, `http` when `path` is set and
    /// `tcp` otherwise.
    #[serde(default)]
    pub kind: Option<Spanned<CheckKindName>>,
    /// `redis`, `mysql`: the role a backend must have to pass.
    #[serde(default)]
    pub role: Option<Spanned<Role>>,
    /// `redis` (ACL user), `mysql`: who the check logs in as.
    #[serde(default)]
    pub user: Option<Spanned<String>>,
    /// `redis`, `mysql`: the environment variable holding the check's password (read when the
    /// config loads, never written in the file).
    #[serde(default)]
    pub password_env: Option<Spanned<String>>,
    /// `role = "replica"`: the most a replica may lag behind its primary and still pass.
    #[serde(default, deserialize_with = "units::optional_duration")]
    pub max_lag: Option<Duration>,
    /// `redis`: log in over TLS (a node's `tls-port`), with these CA, name and client
    /// certificate settings (the keys of `[pool.NAME.tls]`).
    #[serde(default)]
    pub tls: Option<Spanned<super::tls::UpstreamTlsFile>>,
    /// HTTP GET this path; without it, a TCP connect check.
    #[serde(default)]
    pub path: Option<Spanned<String>>,
    /// Host header (`:authority` on HTTP/2) of the check (default: the backend's address).
    #[serde(default)]
    pub host: Option<Spanned<String>>,
    /// Statuses that pass, e.g. `"200-399"` (the default), `"200"`, `"200,204,300-399"`.
    #[serde(default)]
    pub expect_status: Option<Spanned<String>>,
    /// Text the response body must contain (searched in its first 64 KiB).
    #[serde(default)]
    pub expect_body: Option<Spanned<String>>,
    #[serde(default = "default_interval", deserialize_with = "units::duration")]
    pub interval: Duration,
    #[serde(
        default = "default_check_timeout",
        deserialize_with = "units::duration"
    )]
    pub timeout: Duration,
    #[serde(default = "default_rise")]
    pub rise: u32,
    #[serde(default = "default_fall")]
    pub fall: u32,
}

/// `health_check.kind`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CheckKindName {
    /// An HTTP GET of `path`.
    Http,
    /// A TCP connect.
    Tcp,
    /// A Redis login and `INFO replication`.
    Redis,
    /// A MySQL/MariaDB login and `@@read_only`.
    Mysql,
}

/// `health_check.role`: which nodes of a replicated data store a pool wants.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// The one node that takes writes.
    Primary,
    /// A node that follows a primary, with its link up (and within `max_lag`).
    Replica,
    /// Any node that answers (the default).
    #[default]
    Any,
}

fn default_interval() -> Duration {
    Duration::from_secs(2)
}
fn default_check_timeout() -> Duration {
    Duration::from_secs(1)
}
fn default_rise() -> u32 {
    2
}
fn default_fall() -> u32 {
    3
}

/// `[pool.NAME.outlier]`: passive health on real traffic.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct OutlierConfig {
    /// Connect errors, 5xx or timeouts in a row that eject a backend; 0 turns it off.
    pub consecutive_failures: u32,
    /// How long the first ejection lasts; each repeated ejection lasts longer.
    #[serde(deserialize_with = "units::duration")]
    pub ejection: Duration,
}

impl Default for OutlierConfig {
    fn default() -> Self {
        Self {
            consecutive_failures: 5,
            ejection: Duration::from_secs(30),
        }
    }
}

/// `pool.*.protocol`: what portero speaks to the backends.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum UpstreamProtocol {
    /// HTTP/1.1 with keep-alive.
    #[default]
    Http1,
    /// HTTP/2 over cleartext, prior knowledge.
    H2c,
}

/// An entry of `backends`: `"10.0.0.5:8080"` or `{ address = "...", weight = 2 }`.
#[derive(Debug, Clone, Deserialize)]
#[serde(
    untagged,
    expecting = "a backend: \"host:port\" or { address = \"host:port\", weight = N }"
)]
pub enum BackendEntry {
    /// Just an address, weight 1.
    Address(SocketAddr),
    /// Address and weight.
    Weighted {
        /// The backend's address.
        address: SocketAddr,
        /// Its relative share of requests.
        #[serde(default = "default_weight")]
        weight: u32,
    },
}

fn default_weight() -> u32 {
    1
}
