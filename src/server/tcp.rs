//! One session of a `protocol = "tcp"` or `"tls-passthrough"` listener, top to bottom: after
//! the gate every connection passes (admission, allow/deny, per-address caps, a trusted PROXY
//! header), find the pool (the listener's one, or by the server name of the client's TLS
//! ClientHello, read and kept but not answered); pick a backend and connect, retrying another
//! on a failed connect; send it the pool's PROXY header and the kept hello; then copy bytes
//! both ways until either side is done, the session idles past `timeouts.tcp_idle`, its
//! backend is removed or marked down, or shutdown's drain ends. Each session is counted,
//! timed and logged once.

mod connect;
mod hello;
mod relay;

use super::ServerCtx;
use crate::access_log::SessionRecord;
use crate::config::{ListenerMode, OnMarkedDown};
use connect::Joined;
use relay::Meters;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Instant, SystemTime};
use tokio::net::TcpStream;

/// Where a session came from.
pub struct Session<'a> {
    /// The client, as the gate settled it (a PROXY header's source, or the peer).
    pub client: SocketAddr,
    /// The listener's name.
    pub listener: &'a str,
    /// What the listener does: which pool, or how to choose it.
    pub mode: &'a ListenerMode,
}

/// How a session went.
struct Ended<'a> {
    /// Its pool; `none` when none was chosen.
    pool: &'a str,
    /// Its backend; `None` when it reached none.
    backend: Option<Arc<str>>,
    /// How it ended, or why it reached no backend.
    end: &'static str,
    to_backend: u64,
    to_client: u64,
}

impl<'a> Ended<'a> {
    fn refused(pool: &'a str, reason: &'static str) -> Self {
        Self {
            pool,
            backend: None,
            end: reason,
            to_backend: 0,
            to_client: 0,
        }
    }
}

/// Serves the session on `stream` until it ends.
pub async fn serve(stream: TcpStream, session: Session<'_>, ctx: &ServerCtx) {
    let started = Instant::now();
    let accepted = SystemTime::now();
    let ended = run(stream, &session, ctx).await;
    record(&session, &ended, started, accepted, ctx);
}

async fn run<'a>(mut stream: TcpStream, session: &Session<'a>, ctx: &ServerCtx) -> Ended<'a> {
    let (hello_timeout, connect_timeout, idle) = {
        let settings = ctx.settings.load();
        (
            settings.tls_handshake,
            settings.upstream_connect,
            settings.tcp_idle,
        )
    };
    let (pool, first) = match session.mode {
        ListenerMode::TlsPassthrough { .. } => {
            match hello::read(&mut stream, hello_timeout).await {
                Ok(hello) => (
                    session.mode.pool_for(hello.server_name.as_deref()),
                    hello.bytes,
                ),
                Err(error) => return Ended::refused("none", error.as_str()),
            }
        }
        _ => (session.mode.pool_for(None), Vec::new()),
    };
    let Some(name) = pool else {
        return Ended::refused("none", "no_sni_route");
    };
    let snapshot = ctx.snapshot.load_full();
    let Some(pool) = snapshot.pools().get(name) else {
        // Only between a reload that dropped the pool and the one that drops the listener.
        return Ended::refused(name, "no_pool");
    };
    let _open = Open::new(
        ctx.metrics
            .sessions
            .open
            .with_label_values(&[session.listener, name]),
    );
    let target = connect::Target {
        client: session.client,
        // A system call: made only for the PROXY header that names it.
        local: pool
            .config()
            .send_proxy_protocol
            .and_then(|_| stream.local_addr().ok()),
        first: &first,
        timeout: connect_timeout,
    };
    let (upstream, flight) =
        match connect::join(pool, &target, session.listener, &ctx.metrics).await {
            Ok(Joined { upstream, flight }) => (upstream, flight),
            Err(refusal) => return Ended::refused(name, refusal.as_str()),
        };
    drop(first);
    let backend = Arc::clone(flight.backend());
    let label = Arc::clone(backend.label());
    let meters = Meters::new(&ctx.metrics.sessions, [session.listener, name, &label]);
    let watch_downs =
        (pool.config().on_marked_down == OnMarkedDown::Close).then(|| backend.downs());
    // A session may last hours: it must not keep this generation of pools alive after
    // reloads. What it needs of its backend lives in the `Backend`, shared with later ones.
    drop(snapshot);
    let end = relay::run(
        &stream,
        &upstream,
        &meters,
        relay::Cuts {
            idle,
            shutdown: &ctx.hard_stop,
            removed: backend.cut_signal(),
            marked_down: watch_downs.map(|seen| backend.marked_down_after(seen)),
        },
    )
    .await;
    drop(flight);
    Ended {
        pool: name,
        backend: Some(label),
        end: end.as_str(),
        to_backend: meters.to_backend(),
        to_client: meters.to_client(),
    }
}

/// A session counted in `portero_tcp_sessions_open` while it lives.
struct Open(prometheus::IntGauge);

impl Open {
    fn new(gauge: prometheus::IntGauge) -> Self {
        gauge.inc();
        Self(gauge)
    }
}

impl Drop for Open {
    fn drop(&mut self) {
        self.0.dec();
    }
}

/// Counts the session, times it and writes its access-log line.
fn record(
    session: &Session<'_>,
    ended: &Ended<'_>,
    started: Instant,
    accepted: SystemTime,
    ctx: &ServerCtx,
) {
    let sessions = &ctx.metrics.sessions;
    let duration = started.elapsed().as_secs_f64();
    match &ended.backend {
        Some(backend) => {
            sessions
                .total
                .with_label_values(&[session.listener, ended.pool, backend, ended.end])
                .inc();
            sessions
                .duration
                .with_label_values(&[session.listener])
                .observe(duration);
        }
        None => sessions
            .refused
            .with_label_values(&[session.listener, ended.pool, ended.end])
            .inc(),
    }
    let log = &ctx.access_log;
    if log.is_enabled() {
        log.log(&SessionRecord {
            time: humantime::format_rfc3339_millis(accepted).to_string(),
            listener: session.listener,
            client: session.client.to_string(),
            protocol: "tcp",
            bytes_in: ended.to_backend,
            bytes_out: ended.to_client,
            duration,
            pool: ended.pool,
            backend: ended.backend.as_deref(),
            end: ended.end,
        });
    }
}
