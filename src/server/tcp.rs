//! One session of a `protocol = "tcp"` listener, top to bottom: after the gate every
//! connection passes (admission, allow/deny, per-address caps, a trusted PROXY header), pick
//! a backend of the listener's pool and connect, retrying another on a failed connect; send
//! the backend a PROXY header if the pool asks; then copy bytes both ways until either side
//! is done, the session idles past `timeouts.tcp_idle`, its backend is removed or marked
//! down, or shutdown's drain ends. Each session is counted, timed and logged once.

mod connect;
mod relay;

use super::ServerCtx;
use crate::access_log::SessionRecord;
use crate::config::OnMarkedDown;
use crate::pool::Pool;
use connect::Joined;
use relay::{End, Meters};
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
    /// The listener's pool.
    pub pool: &'a str,
}

/// Serves the session on `stream` until it ends.
pub async fn serve(stream: TcpStream, session: Session<'_>, ctx: &ServerCtx) {
    let started = Instant::now();
    let time = humantime::format_rfc3339_millis(SystemTime::now()).to_string();
    let snapshot = ctx.snapshot.load_full();
    let sessions = &ctx.metrics.sessions;
    let Some(pool) = snapshot.pools().get(session.pool) else {
        // Only between a reload that dropped the pool and the one that drops the listener.
        sessions
            .refused
            .with_label_values(&[session.listener, session.pool, "no_pool"])
            .inc();
        return;
    };
    let open = sessions
        .open
        .with_label_values(&[session.listener, session.pool]);
    open.inc();
    let ended = run(stream, &session, pool, ctx).await;
    open.dec();
    let duration = started.elapsed();
    let (backend, end, meters) = match &ended {
        Ok((backend, end, meters)) => (Some(&**backend), end.as_str(), Some(meters)),
        Err(refusal) => (None, refusal.as_str(), None),
    };
    if let Some(backend) = backend {
        sessions
            .total
            .with_label_values(&[session.listener, session.pool, backend, end])
            .inc();
        sessions
            .duration
            .with_label_values(&[session.listener])
            .observe(duration.as_secs_f64());
    }
    let log = &ctx.access_log;
    if log.is_enabled() {
        log.log(&SessionRecord {
            time,
            listener: session.listener,
            client: session.client.to_string(),
            protocol: "tcp",
            bytes_in: meters.map_or(0, Meters::to_backend),
            bytes_out: meters.map_or(0, Meters::to_client),
            duration: duration.as_secs_f64(),
            pool: session.pool,
            backend,
            end,
        });
    }
}

/// Joins the client to a backend and relays until the session ends: the backend's label, how
/// it ended and what it carried; or why no backend was reached.
async fn run(
    mut stream: TcpStream,
    session: &Session<'_>,
    pool: &Arc<Pool>,
    ctx: &ServerCtx,
) -> Result<(Arc<str>, End, Meters), connect::Refusal> {
    let settings = ctx.settings.load_full();
    let Joined {
        mut upstream,
        flight,
    } = connect::join(
        pool,
        session.client,
        stream.local_addr().ok(),
        settings.upstream_connect,
        session.listener,
        &ctx.metrics,
    )
    .await
    .inspect_err(|refusal| {
        ctx.metrics
            .sessions
            .refused
            .with_label_values(&[session.listener, session.pool, refusal.as_str()])
            .inc();
    })?;
    let backend = Arc::clone(flight.backend());
    let label = Arc::clone(backend.label());
    let meters = Meters::new(
        &ctx.metrics.sessions,
        [session.listener, session.pool, &label],
    );
    let watch_downs =
        (pool.config().on_marked_down == OnMarkedDown::Close).then(|| backend.downs());
    let end = relay::run(
        &mut stream,
        &mut upstream,
        &meters,
        relay::Cuts {
            idle: settings.tcp_idle,
            shutdown: &ctx.hard_stop,
            removed: backend.cut_signal(),
            marked_down: watch_downs.map(|seen| backend.marked_down_after(seen)),
        },
    )
    .await;
    drop(flight);
    Ok((label, end, meters))
}
