//! One client connection: HTTP/1.1 or HTTP/2 detected from its first bytes, every request
//! handed to the proxy, and a graceful close when the daemon drains, when admission reclaims
//! it (idle at the ceiling) or after its first request when it was admitted in burst.

use super::ServerCtx;
use super::conn_io::ConnIo;
use crate::admission::{Permit, Tier};
use crate::conn::ClientConn;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::net::TcpStream;

/// Serves one accepted connection until it closes; the permit is released at the end.
pub async fn serve(
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
    let conn = Arc::new(ClientConn::new(listener, peer, "http", permit.tier()));
    let id = ctx.register(&conn);

    let io = TokioIo::new(ConnIo::new(stream, Arc::clone(&conn), settings.timeouts));
    let proxy = Arc::clone(&ctx.proxy);
    let service_conn = Arc::clone(&conn);
    let service =
        service_fn(move |request| Arc::clone(&proxy).handle(request, Arc::clone(&service_conn)));
    let http = match permit.tier() {
        Tier::Baseline => &settings.http,
        Tier::Burst => &settings.http_burst,
    };
    let connection = http.serve_connection_with_upgrades(io, service);
    tokio::pin!(connection);
    let asked_to_close = async {
        tokio::select! {
            () = conn.close_requested() => {}
            () = ctx.draining.cancelled() => {}
        }
    };
    let result = tokio::select! {
        result = connection.as_mut() => result,
        () = asked_to_close => {
            // HTTP/1: finish the response in progress with `Connection: close`, or close now
            // if idle; HTTP/2: GOAWAY, then finish the open streams.
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
    ctx.unregister(id);
    open.dec();
    drop(permit);
}
