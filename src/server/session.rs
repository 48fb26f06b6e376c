//! One client connection, from accept to close. portero reads the first bytes itself to tell
//! HTTP/1 from HTTP/2. HTTP/2 is served by one hyper connection for its whole life. HTTP/1 is
//! served by portero's own engine (`server::h1`), which holds a read buffer only while a
//! request is in progress: between requests the connection waits for its next request holding
//! only the socket ("parked"; the server's idle sweep keeps its idle time). After a 101 the
//! socket is spliced with the backend's.
//!
//! A tcp or tls-passthrough listener's connection is not HTTP at all: after the gate it is
//! handed to `tcp`.
//!
//! A connection closes gracefully when the daemon drains, when admission reclaims it (idle at
//! the ceiling), or after a request when it was admitted in burst and the daemon is still over
//! its baseline.

use super::conn_io::{ConnIo, Protocol};
use super::h1::{Ended, Http1};
use super::h2_guard::H2Guard;
use super::listener::{ListenerCtx, ListenerSettings};
use super::per_ip::PerIpSlot;
use super::served::Active;
use super::stream::ClientStream;
use super::tunnel;
use super::{ServerCtx, gate, tcp};
use crate::admission::{Permit, Tier};
use crate::body::Inbound;
use crate::clock::now_us;
use crate::config::ListenerMode;
use crate::conn::{ClientConn, ConnScheme, ConnTls, SlowReader, Tunnel};
use crate::proxy::ResponseBody;
use http::{Request, Response};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use prometheus::IntGauge;
use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::{Pin, pin};
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpStream;

type Io = ConnIo<ClientStream>;

/// The proxy's answer to one request, boxed (hyper's HTTP/1 connection needs an `Unpin`
/// future to be handed back the socket).
type Responding =
    Pin<Box<dyn Future<Output = Result<Response<ResponseBody<Active>>, Infallible>> + Send>>;

/// Serves one accepted connection until it closes; the permit is released at the end.
///
/// The connection's task is as large as the largest state of this future, and an idle
/// keep-alive connection pays for all of it: so the steps before serving are boxed (a PROXY
/// header's buffer, a TLS handshake: `open_connection`), and this is an `async` block rather
/// than an `async fn`, whose arguments would be kept twice (rust-lang/rust#62958). A unit test
/// keeps it within a 384-byte task. README, "Resource budget".
#[allow(
    clippy::manual_async_fn,
    reason = "an async fn keeps its arguments twice"
)]
pub fn serve(accepted: Box<Accepted>) -> impl Future<Output = ()> + Send {
    async move {
        // Boxed: the gate, a TLS handshake and the listener's settings are needed only until
        // the connection is open, and an idle connection's task would carry their room.
        let Some(Opened {
            stream,
            protocol,
            conn,
            ctx,
            slot,
            permit,
        }) = Box::pin(open_connection(accepted)).await
        else {
            return;
        };
        ctx.register(&conn);
        let io = ConnIo::new(
            stream,
            Arc::clone(&conn),
            Arc::clone(&ctx.settings.load().timeouts),
        );
        let session = Session {
            ctx: &ctx,
            conn: &conn,
        };
        if let Err(e) = session.run(io, protocol).await {
            tracing::debug!(peer = %conn.info.peer, error = %e, "connection ended with an error");
        }
        if let Some(reason) = conn.slow_reader() {
            ctx.metrics
                .connections
                .slow_readers
                .with_label_values(&[&conn.info.listener, reason.as_str()])
                .inc();
        }
        ctx.unregister(&conn);
        // Looked up again rather than kept: every idle connection's task would carry it.
        let open = open_gauge(&ctx, &conn.info.listener);
        // The connection's state is gone before its slot and permit are given back.
        drop(conn);
        open.dec();
        drop(slot);
        drop(permit);
    }
}

/// An HTTP connection ready to be served, and what it holds until it closes.
struct Opened {
    stream: ClientStream,
    /// Known from ALPN or the listener's protocols; `None`: told from the first bytes.
    protocol: Option<Protocol>,
    conn: Arc<ClientConn>,
    /// The connection counts in `portero_connections_open{listener}` until it closes.
    ctx: Arc<ServerCtx>,
    slot: Option<Box<PerIpSlot>>,
    permit: Permit,
}

/// Lets an accepted connection through the gate and opens it (TLS, the protocol); a tcp or
/// tls-passthrough listener's connection is served here, to its end. `None` when there is
/// nothing more to serve.
async fn open_connection(accepted: Box<Accepted>) -> Option<Opened> {
    // Moved out of a temporary, so that the box is freed here.
    let Accepted {
        stream,
        peer,
        mut permit,
        listener,
        ctx,
    } = *{ accepted };
    permit.accepted();
    let open = open_gauge(&ctx, &listener.name);
    open.inc();
    let settings = listener.settings.load_full();
    let Some((stream, gate::Admitted { client, slot })) =
        gate::pass(stream, peer, &listener, &settings, &ctx).await
    else {
        open.dec();
        return None;
    };
    if settings.mode != ListenerMode::Http {
        let session = tcp::Session {
            client,
            listener: &listener.name,
            mode: &settings.mode,
        };
        // Boxed: the HTTP connections' setup does not carry its room.
        Box::pin(tcp::serve(stream, session, &ctx)).await;
        open.dec();
        drop(slot);
        return None;
    }
    let Some((stream, scheme, protocol)) =
        open_stream(stream, &settings, &listener.name, &ctx).await
    else {
        open.dec();
        return None;
    };
    let conn = ClientConn::new(Arc::clone(&listener.name), client, scheme, permit.tier());
    let conn = Arc::new(match permit.tier() {
        Tier::Baseline => conn,
        Tier::Burst => conn.in_burst_of(Arc::clone(&ctx.admission)),
    });
    Some(Opened {
        stream,
        protocol,
        conn,
        ctx,
        slot,
        permit,
    })
}

/// `portero_connections_open{listener}`.
fn open_gauge(ctx: &ServerCtx, listener: &str) -> IntGauge {
    ctx.metrics.connections.open.with_label_values(&[listener])
}

/// An accepted connection, handed to its task in one box (see [`serve`]).
pub struct Accepted {
    /// The socket.
    pub stream: TcpStream,
    /// The client's address as the socket has it.
    pub peer: SocketAddr,
    /// Its admission permit, released when the task ends.
    pub permit: Permit,
    /// The listener it came in on.
    pub listener: Arc<ListenerCtx>,
    /// The server.
    pub ctx: Arc<ServerCtx>,
}

/// The plain stream, or the TLS one after a handshake within `timeouts.tls_handshake` (a
/// stalled handshake gives its slot back at that deadline). The protocol is known from ALPN
/// for TLS, or from the listener's `protocols` when it allows only one; otherwise (`None`) it
/// is told from the first bytes.
async fn open_stream(
    stream: TcpStream,
    settings: &ListenerSettings,
    listener: &str,
    ctx: &ServerCtx,
) -> Option<(ClientStream, ConnScheme, Option<Protocol>)> {
    let Some(tls) = &settings.tls else {
        let scheme = settings
            .redirect
            .map_or(ConnScheme::Http, ConnScheme::Redirect);
        let protocols = settings.protocols;
        let protocol = if protocols.http2_only() {
            Some(Protocol::Http2)
        } else if protocols.http1_only() {
            Some(Protocol::Http1)
        } else {
            None
        };
        return Some((ClientStream::Plain(stream), scheme, protocol));
    };
    let handshakes = &ctx.metrics.connections.tls_handshakes;
    let deadline = ctx.settings.load().tls_handshake;
    let stream = match tokio::time::timeout(deadline, tls.acceptor.accept(stream)).await {
        Ok(Ok(stream)) => stream,
        Ok(Err(e)) => {
            tracing::debug!(listener, error = %e, "TLS handshake failed");
            handshakes
                .with_label_values(&[listener, "error", "none"])
                .inc();
            ctx.metrics
                .connections
                .tls_handshake_errors
                .with_label_values(&[listener, crate::tls::failure_reason(&e)])
                .inc();
            return None;
        }
        Err(_) => {
            tracing::debug!(listener, "TLS handshake timed out");
            handshakes
                .with_label_values(&[listener, "timeout", "none"])
                .inc();
            return None;
        }
    };
    let session = stream.get_ref().1;
    let version = match session.protocol_version() {
        Some(rustls::ProtocolVersion::TLSv1_3) => "TLSv1.3",
        Some(rustls::ProtocolVersion::TLSv1_2) => "TLSv1.2",
        _ => "other",
    };
    handshakes
        .with_label_values(&[listener, "ok", version])
        .inc();
    // A CA's TLS-ALPN-01 validation: the handshake was the answer (RFC 8737 §3).
    if session.alpn_protocol() == Some(crate::tls::ACME_TLS_ALPN) {
        return None;
    }
    // No ALPN: HTTP/2 if that is all the listener speaks (prior knowledge over TLS).
    let protocol = match session.alpn_protocol() {
        Some(b"h2") => Protocol::Http2,
        None if settings.protocols.http2_only() => Protocol::Http2,
        _ => Protocol::Http1,
    };
    let covered = if tls.strict_sni {
        crate::tls::chosen(&tls.certs, tls.acme.as_ref(), session.server_name())
    } else {
        None
    };
    let scheme = ConnScheme::Https(Box::new(ConnTls {
        version,
        covered,
        hsts: tls.hsts.clone(),
    }));
    Some((ClientStream::Tls(Box::new(stream)), scheme, Some(protocol)))
}

struct Session<'a> {
    ctx: &'a ServerCtx,
    conn: &'a Arc<ClientConn>,
}

impl<'a> Session<'a> {
    /// An `async` block, not an `async fn`, for the reason `serve` gives; the session is
    /// moved in, so that its caller does not keep it as well.
    #[allow(
        clippy::manual_async_fn,
        reason = "an async fn keeps its arguments twice"
    )]
    fn run(
        self,
        mut io: Io,
        known: Option<Protocol>,
    ) -> impl Future<Output = Result<(), Box<dyn std::error::Error + Send + Sync>>> + Send + 'a
    {
        async move {
            let protocol = match known {
                Some(Protocol::Http1) => Some(io.known(Protocol::Http1)),
                // portero checks the preface itself: h2 closes on a bad one without a GOAWAY.
                // Both end early (`None`) when the connection is asked to close.
                Some(Protocol::Http2) => io.preface().await?,
                None => io.detect().await?,
            };
            match protocol {
                None => Ok(()),
                // Boxed: the parked state below must not carry hyper's connection inline.
                Some(Protocol::Http2) => Ok(Box::pin(self.http2(io)).await?),
                Some(Protocol::Http1) => {
                    // The engine's future is this state's whole content beside the socket.
                    let limits = self.ctx.settings.load().head;
                    let engine = Http1::new(self.ctx, &self.conn.info.listener, limits);
                    if let Ended::Upgraded(tunnel) = engine.run(&mut io).await? {
                        // Boxed: inline, the tunnel's state (with the socket moved into it)
                        // would be the largest of this future, and every idle connection
                        // would carry room for it.
                        Box::pin(self.tunnel(io, tunnel)).await;
                    }
                    Ok(())
                }
            }
        }
    }

    /// The proxy as hyper's HTTP/2 connection calls it.
    fn service(
        &self,
    ) -> impl hyper::service::Service<
        Request<Incoming>,
        Response = Response<ResponseBody<Active>>,
        Error = Infallible,
        Future = Responding,
    > + use<> {
        let proxy = Arc::clone(&self.ctx.proxy);
        let conn = Arc::clone(self.conn);
        service_fn(move |request: Request<Incoming>| -> Responding {
            let request = request.map(Inbound::Hyper);
            let active = Active::start(Arc::clone(&conn));
            Box::pin(Arc::clone(&proxy).handle(request, Arc::clone(&conn), active))
        })
    }

    /// Splices an upgraded connection with its backend (boxed by its caller).
    async fn tunnel(&self, io: Io, tunnel: Tunnel) {
        tunnel::run(
            io,
            tunnel.upstream.lock().ok().and_then(|mut io| io.take()),
            tunnel.backend.cut_signal(),
            &self.ctx.hard_stop,
            self.conn.info.peer,
        )
        .await;
    }

    async fn http2(&self, io: Io) -> Result<(), hyper::Error> {
        let settings = self.ctx.settings.load_full();
        let connection = settings
            .http2
            .serve_connection(TokioIo::new(H2Guard::new(io)), self.service());
        let mut connection = pin!(connection);
        // HTTP/2 flow control can stall a response without blocking a single socket write
        // (the client keeps its window at zero), so the streams' progress is watched here.
        let limit = settings.timeouts.client_write;
        let mut watch = tokio::time::interval((limit / 4).max(Duration::from_millis(50)));
        loop {
            tokio::select! {
                result = connection.as_mut() => return result,
                // Reclaimed at the ceiling, over the baseline in burst, or draining.
                () = self.conn.close_requested() => break,
                _ = watch.tick() => {
                    if self.conn.activity.stalled(now_us(), limit.as_micros() as u64) {
                        self.conn.set_slow_reader(SlowReader::Stalled);
                        tracing::debug!(peer = %self.conn.info.peer, "HTTP/2 responses stalled for timeouts.client_write: closing");
                        return Ok(());
                    }
                }
            }
        }
        // GOAWAY, then the open streams finish.
        connection.as_mut().graceful_shutdown();
        tokio::select! {
            result = connection.as_mut() => result,
            () = self.ctx.hard_stop.cancelled() => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The size of what `make` returns, read from its type (no value needed).
    fn returned_size<A, F>(_make: fn(A) -> F) -> usize {
        size_of::<F>()
    }

    /// Every idle keep-alive connection pays for its task, and the task is as large as the
    /// largest state of `serve`'s future: at most 272 bytes keeps it in jemalloc's 384-byte
    /// class (tokio adds 112). Past it the next classes are 448 and 512 (BENCHMARKS.md,
    /// issue 21). Release builds are 8 bytes smaller; the bound holds in both.
    #[test]
    fn the_connection_task_fits_384_bytes() {
        let size = returned_size(serve);
        assert!(size <= 272, "a connection's future is {size} bytes");
    }
}
