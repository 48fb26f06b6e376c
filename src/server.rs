//! Traffic listeners: [`bind`], then [`accept::run`] per listener, which takes an admission
//! permit *before* `accept`, and [`session::serve`] per connection, serving HTTP/1.1 and
//! HTTP/2 (h2c prior knowledge, detected per connection) through the proxy, or, on a
//! `protocol = "tcp"` listener, joining the connection to a backend of its pool (`tcp`).

pub mod accept;
pub mod conn_io;
mod deadline;
mod gate;
mod h1;
mod h2_guard;
pub mod idle_sweep;
pub mod listener;
pub mod per_ip;
pub mod proxy_protocol;
mod refuse;
mod send_rate;
mod served;
pub mod session;
pub mod stream;
mod tcp;
pub mod tunnel;

use crate::access::AccessList;
use crate::access_log::AccessLog;
use crate::admission::Admission;
use crate::config::{AtLimit, Config, ListenerConfig};
use crate::conn::ClientConn;
use crate::h1::HeadLimits;
use crate::metrics::Metrics;
use crate::proxy::Proxy;
use crate::snapshot::SharedSnapshot;
use arc_swap::ArcSwap;
use conn_io::IoTimeouts;
use dashmap::DashMap;
use hyper::server::conn::http2;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use socket2::{Domain, Socket, Type};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Weak};
use std::time::Duration;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// Why a listener could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    /// The address could not be bound.
    #[error("cannot listen on {address} (listener `{name}`): {source}")]
    Bind {
        /// Listener name.
        name: String,
        /// Address asked for.
        address: SocketAddr,
        /// The OS error.
        source: std::io::Error,
    },
}

/// Binds a listener with `SO_REUSEADDR` and the configured backlog.
pub fn bind(listener: &ListenerConfig, backlog: u32) -> Result<TcpListener, ServerError> {
    let error = |source| ServerError::Bind {
        name: listener.name.clone(),
        address: listener.address,
        source,
    };
    let socket =
        Socket::new(Domain::for_address(listener.address), Type::STREAM, None).map_err(error)?;
    socket.set_reuse_address(true).map_err(error)?;
    if listener.address.is_ipv6() {
        // "[::]:80" means IPv6 only; list "0.0.0.0:80" too for IPv4, as nginx does.
        socket.set_only_v6(true).map_err(error)?;
    }
    socket.set_nonblocking(true).map_err(error)?;
    socket.bind(&listener.address.into()).map_err(error)?;
    socket
        .listen(backlog.min(i32::MAX as u32) as i32)
        .map_err(error)?;
    TcpListener::from_std(socket.into()).map_err(error)
}

/// What every connection of every traffic listener shares.
pub struct ServerCtx {
    /// The request handler.
    pub proxy: Arc<Proxy>,
    /// Connection slots.
    pub admission: Arc<Admission>,
    /// Metrics.
    pub metrics: Arc<Metrics>,
    /// Connection tasks, so shutdown can wait for them.
    pub connections: TaskTracker,
    /// Set when connections should finish their current request and close
    /// ([`ServerCtx::start_draining`]).
    drain_started: AtomicBool,
    /// Cancelled when whatever is left must stop now.
    pub hard_stop: CancellationToken,
    /// The live snapshot, for tcp listeners' pools (HTTP requests reach it through the proxy).
    snapshot: SharedSnapshot,
    /// The access log, for tcp listeners' sessions.
    access_log: AccessLog,
    settings: ArcSwap<ConnSettings>,
    /// Notified when the settings are replaced (the idle sweep rereads `timeouts.idle`).
    settings_changed: tokio::sync::Notify,
    /// Open connections per client address.
    per_ip: Arc<per_ip::PerIp>,
    /// Open connections, so the longest-idle one can be asked to close at the ceiling, keyed
    /// by their address (unique while they are registered): no id for a task to carry.
    open: DashMap<usize, Weak<ClientConn>>,
}

/// Per-connection settings derived from the config, replaced whole on reload.
struct ConnSettings {
    /// The bounds of an HTTP/1 request head.
    head: HeadLimits,
    http2: http2::Builder<TokioExecutor>,
    /// Shared by every connection's I/O (one pointer each, not four fields).
    timeouts: Arc<IoTimeouts>,
    tls_handshake: Duration,
    at_limit: AtLimit,
    /// Daemon-wide allow/deny lists.
    access: AccessList,
    /// `security.max_connections_per_ip` (0 = off).
    max_connections_per_ip: u32,
    /// `limits.stream_buffer`: the unsent bytes a client socket's kernel queue may hold.
    stream_buffer: u32,
    /// tcp listeners: the connect to a backend.
    upstream_connect: Duration,
    /// tcp listeners: a session's longest quiet spell.
    tcp_idle: Duration,
}

impl ServerCtx {
    /// Shared state for the given config.
    pub fn new(
        config: &Config,
        proxy: Arc<Proxy>,
        admission: Arc<Admission>,
        metrics: Arc<Metrics>,
        hard_stop: CancellationToken,
        snapshot: SharedSnapshot,
        access_log: AccessLog,
    ) -> Self {
        Self {
            snapshot,
            access_log,
            proxy,
            admission,
            metrics,
            connections: TaskTracker::new(),
            drain_started: AtomicBool::new(false),
            hard_stop,
            settings: ArcSwap::from_pointee(ConnSettings::from_config(config)),
            settings_changed: tokio::sync::Notify::new(),
            per_ip: Arc::default(),
            open: DashMap::new(),
        }
    }

    /// Asks every connection to finish its current request and close, as a reclaim asks one
    /// ([`ClientConn::request_close`]): a connection waits on its own close request only,
    /// one small future in each idle connection's task. A connection registered while this
    /// runs sees the flag in [`ServerCtx::register`].
    pub fn start_draining(&self) {
        self.drain_started.store(true, Ordering::Release);
        for entry in &self.open {
            if let Some(conn) = entry.value().upgrade() {
                conn.request_close();
            }
        }
    }

    /// Whether [`ServerCtx::start_draining`] was called.
    pub fn is_draining(&self) -> bool {
        self.drain_started.load(Ordering::Acquire)
    }

    /// Applies the limits and timeouts of a new config to connections accepted from now on
    /// (and `timeouts.idle` to every parked HTTP/1 connection: `idle_sweep`).
    pub fn update(&self, config: &Config) {
        self.settings
            .store(Arc::new(ConnSettings::from_config(config)));
        self.settings_changed.notify_one();
    }

    fn register(&self, conn: &Arc<ClientConn>) {
        self.open.insert(key(conn), Arc::downgrade(conn));
        // After the insert: either the drain's sweep finds this entry, or this sees its flag.
        if self.is_draining() {
            conn.request_close();
        }
    }

    /// Before the connection is dropped, so that its address is not reused while registered.
    fn unregister(&self, conn: &Arc<ClientConn>) {
        self.open.remove(&key(conn));
    }

    /// Asks the connection idle for longest to close, to free a slot for one that waits.
    /// Returns whether one was found. O(open connections), and only run at the ceiling.
    pub fn reclaim_idle(&self) -> bool {
        let oldest = self
            .open
            .iter()
            .filter_map(|entry| entry.value().upgrade())
            .filter(|conn| !conn.is_closing())
            .filter_map(|conn| conn.activity.idle_since().map(|since| (since, conn)))
            .min_by_key(|(since, _)| *since);
        match oldest {
            Some((_, conn)) => {
                tracing::debug!(peer = %conn.info.peer, "at the connection ceiling: closing the longest-idle connection");
                conn.request_close();
                true
            }
            None => false,
        }
    }
}

/// A registered connection's key: its address.
fn key(conn: &Arc<ClientConn>) -> usize {
    Arc::as_ptr(conn) as usize
}

impl ConnSettings {
    fn from_config(config: &Config) -> Self {
        let timeouts = IoTimeouts {
            request_header: config.timeouts.request_header,
            idle: config.timeouts.idle,
            client_write: config.timeouts.client_write,
            min_send_rate: config.limits.min_send_rate,
        };
        Self {
            head: HeadLimits {
                max_bytes: config.limits.max_header_bytes,
                max_headers: config.limits.max_headers,
            },
            http2: http2_builder(config),
            timeouts: Arc::new(timeouts),
            tls_handshake: config.timeouts.tls_handshake,
            at_limit: config.admission.at_limit,
            access: config.security.access.clone(),
            max_connections_per_ip: config.security.max_connections_per_ip,
            stream_buffer: config.limits.stream_buffer_u32(),
            upstream_connect: config.timeouts.upstream_connect,
            tcp_idle: config.timeouts.tcp_idle,
        }
    }
}

fn http2_builder(config: &Config) -> http2::Builder<TokioExecutor> {
    let buffer = config.limits.stream_buffer_u32();
    let mut http = http2::Builder::new(TokioExecutor::new());
    http.timer(TokioTimer::new())
        // Past this, h2 answers REFUSED_STREAM (RFC 9113 §5.1.2): bounds work per connection.
        .max_concurrent_streams(100)
        // What a client may send on one stream before portero has forwarded it upstream.
        .initial_stream_window_size(buffer)
        // What a client may send over all its streams: the per-connection receive buffer.
        .initial_connection_window_size(buffer.max(1024 * 1024))
        // Fixed windows: BDP probing would grow them past the bounds above.
        .adaptive_window(false)
        // Response bytes queued per stream for a client that reads slowly (hyper's is 400 KiB).
        .max_send_buf_size(buffer as usize)
        // Rapid Reset (CVE-2023-44487): streams reset before being accepted, then GOAWAY.
        .max_pending_accept_reset_streams(20)
        // MadeYouReset (CVE-2025-8671): resets the peer provokes, then GOAWAY; never None.
        .max_local_error_reset_streams(1024)
        // The decoded header list as RFC 9113 §6.5.2 counts it (names, values and 32 bytes a
        // field, pseudo-header fields included), the measure this setting advertises; h2
        // answers 431 past it and GOAWAY past four times it. h2 refuses a list that reaches
        // its setting, hyper an HTTP/1 head that passes the limit: one more byte makes both
        // accept a head of exactly `max_header_bytes`.
        .max_header_list_size(
            u32::try_from(config.limits.max_header_bytes.saturating_add(1)).unwrap_or(u32::MAX),
        )
        .keep_alive_interval(Some(Duration::from_secs(30)))
        .keep_alive_timeout(Duration::from_secs(10));
    http
}
