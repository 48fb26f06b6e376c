//! Traffic listeners: bind, then an accept loop per listener that takes an admission permit
//! *before* `accept`, and a task per connection serving HTTP/1.1 and HTTP/2 (h2c prior
//! knowledge, detected per connection) through [`Proxy::handle`].

pub mod conn_io;

use crate::admission::{Admission, Permit};
use crate::config::{Config, ListenerConfig};
use crate::metrics::Metrics;
use crate::proxy::{ClientConn, ConnActivity, Proxy};
use arc_swap::ArcSwap;
use conn_io::{ConnIo, IoTimeouts};
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use socket2::{Domain, Socket, Type};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::{TcpListener, TcpStream};
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
    /// Cancelled when connections should finish their current request and close.
    pub draining: CancellationToken,
    /// Cancelled when whatever is left must stop now.
    pub hard_stop: CancellationToken,
    settings: ArcSwap<ConnSettings>,
}

/// Per-connection settings derived from the config, replaced whole on reload.
struct ConnSettings {
    http: auto::Builder<TokioExecutor>,
    timeouts: IoTimeouts,
}

impl ServerCtx {
    /// Shared state for the given config.
    pub fn new(
        config: &Config,
        proxy: Arc<Proxy>,
        admission: Arc<Admission>,
        metrics: Arc<Metrics>,
        hard_stop: CancellationToken,
    ) -> Self {
        Self {
            proxy,
            admission,
            metrics,
            connections: TaskTracker::new(),
            draining: CancellationToken::new(),
            hard_stop,
            settings: ArcSwap::from_pointee(ConnSettings::from_config(config)),
        }
    }

    /// Applies the limits and timeouts of a new config to connections accepted from now on.
    pub fn update(&self, config: &Config) {
        self.settings
            .store(Arc::new(ConnSettings::from_config(config)));
    }
}

impl ConnSettings {
    fn from_config(config: &Config) -> Self {
        let mut http = auto::Builder::new(TokioExecutor::new());
        http.http1()
            .timer(TokioTimer::new())
            // Our own ConnIo enforces the header and idle timeouts (hyper's timer would also
            // cut idle keep-alive connections at the header timeout, and without a 408).
            .header_read_timeout(None)
            .max_headers(config.limits.max_headers)
            // The read buffer bounds the request head: past it hyper answers 431.
            .max_buf_size(config.limits.max_header_bytes.max(8192))
            .keep_alive(true);
        http.http2()
            .timer(TokioTimer::new())
            .max_concurrent_streams(100)
            .max_header_list_size(config.limits.max_header_bytes.min(u32::MAX as usize) as u32)
            .keep_alive_interval(Some(Duration::from_secs(30)))
            .keep_alive_timeout(Duration::from_secs(10));
        let timeouts = IoTimeouts {
            request_header: config.timeouts.request_header,
            idle: config.timeouts.idle,
        };
        Self { http, timeouts }
    }
}

/// Accepts connections on `listener` until `stop` is cancelled.
pub async fn run(
    listener: TcpListener,
    name: Arc<str>,
    ctx: Arc<ServerCtx>,
    stop: CancellationToken,
) {
    let mut backoff = Duration::from_millis(5);
    loop {
        let permit = tokio::select! {
            permit = ctx.admission.acquire() => permit,
            () = stop.cancelled() => return,
        };
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            () = stop.cancelled() => return,
        };
        match accepted {
            Ok((stream, peer)) => {
                backoff = Duration::from_millis(5);
                let _ = stream.set_nodelay(true);
                ctx.metrics
                    .connections_accepted
                    .with_label_values(&[&name])
                    .inc();
                let ctx2 = Arc::clone(&ctx);
                ctx.connections
                    .spawn(serve(stream, peer, permit, Arc::clone(&name), ctx2));
            }
            Err(e) if is_per_connection(&e) => {}
            Err(e) => {
                // EMFILE/ENFILE/ENOBUFS: wait for connections to close, never spin or exit.
                tracing::warn!(listener = %name, error = %e, backoff = ?backoff, "accept failed; backing off");
                drop(permit);
                tokio::select! {
                    () = tokio::time::sleep(backoff) => {}
                    () = stop.cancelled() => return,
                }
                backoff = (backoff * 2).min(Duration::from_secs(1));
            }
        }
    }
}

/// Errors that concern one connection only (it died in the backlog): just accept the next.
fn is_per_connection(e: &std::io::Error) -> bool {
    use std::io::ErrorKind::*;
    matches!(
        e.kind(),
        ConnectionAborted | ConnectionReset | Interrupted | WouldBlock
    )
}

async fn serve(
    stream: TcpStream,
    peer: SocketAddr,
    mut permit: Permit,
    listener: Arc<str>,
    ctx: Arc<ServerCtx>,
) {
    permit.accepted();
    let open = ctx.metrics.connections_open.with_label_values(&[&listener]);
    open.inc();
    let settings = ctx.settings.load_full();
    let conn = Arc::new(ClientConn {
        listener,
        peer,
        proto: "http",
        activity: ConnActivity::default(),
    });
    let io = TokioIo::new(ConnIo::new(stream, Arc::clone(&conn), settings.timeouts));
    let proxy = Arc::clone(&ctx.proxy);
    let service_conn = Arc::clone(&conn);
    let service =
        service_fn(move |request| Arc::clone(&proxy).handle(request, Arc::clone(&service_conn)));
    let connection = settings.http.serve_connection_with_upgrades(io, service);
    tokio::pin!(connection);
    let result = tokio::select! {
        result = connection.as_mut() => result,
        () = ctx.draining.cancelled() => {
            // HTTP/1: finish the request in progress with `Connection: close`, close if idle;
            // HTTP/2: GOAWAY, finish open streams.
            connection.as_mut().graceful_shutdown();
            tokio::select! {
                result = connection.as_mut() => result,
                () = ctx.hard_stop.cancelled() => Ok(()),
            }
        }
    };
    if let Err(e) = result {
        tracing::debug!(%peer, error = %e, "connection ended with an error");
    }
    open.dec();
    drop(permit);
}
