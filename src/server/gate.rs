//! The gate every accepted connection passes before any HTTP: who the client really is (the
//! PROXY header of a trusted load balancer, else the TCP peer), whether the daemon-wide
//! allow/deny lists let it in, and whether it is within `max_connections_per_ip`. Everything
//! later (X-Forwarded-For, rate limits, route rules, logs) sees the address settled here.

use super::listener::{ListenerCtx, ListenerSettings};
use super::per_ip::PerIpSlot;
use super::{ServerCtx, proxy_protocol, refuse};
use std::net::SocketAddr;
use tokio::net::TcpStream;

/// A connection let through, with its per-address slot (if counted).
pub struct Admitted {
    /// The client's address.
    pub client: SocketAddr,
    /// Released when the connection ends.
    pub slot: Option<Box<PerIpSlot>>,
}

/// Lets the connection through, or refuses it (counted, answered where HTTP can be, closed).
pub async fn pass(
    mut stream: TcpStream,
    peer: SocketAddr,
    listener: &ListenerCtx,
    settings: &ListenerSettings,
    ctx: &ServerCtx,
) -> Option<(TcpStream, Admitted)> {
    let conn_settings = ctx.settings.load();
    let client = match &settings.proxy_protocol {
        Some(trusted)
            if trusted
                .iter()
                .any(|net| net.contains(&peer.ip().to_canonical())) =>
        {
            let deadline = conn_settings.timeouts.request_header;
            let read = tokio::time::timeout(deadline, proxy_protocol::read(&mut stream)).await;
            let result = match &read {
                Ok(Ok(_)) => "ok",
                Ok(Err(_)) => "invalid",
                Err(_) => "timeout",
            };
            ctx.metrics
                .connections
                .proxy_protocol
                .with_label_values(&[&listener.name, result])
                .inc();
            match read {
                Ok(Ok(header)) => header.source.unwrap_or(peer),
                Ok(Err(e)) => {
                    tracing::debug!(%peer, error = %e, "PROXY header refused");
                    return None;
                }
                Err(_) => return None,
            }
        }
        _ => peer,
    };
    let refused = |reason: &str| {
        ctx.metrics
            .connections
            .rejected
            .with_label_values(&[&listener.name, reason])
            .inc();
    };
    if !conn_settings.access.permits(client.ip()) {
        tracing::debug!(%client, "connection refused by security.allow/deny");
        refused("denied");
        return None;
    }
    match ctx
        .per_ip
        .try_open(client.ip(), conn_settings.max_connections_per_ip)
    {
        Ok(slot) => Some((stream, Admitted { client, slot })),
        Err(_over_limit) => {
            tracing::debug!(%client, "connection refused by security.max_connections_per_ip");
            refused("per_ip_limit");
            if settings.answers_plain_http() {
                refuse::answer(stream, refuse::PER_IP_LIMIT).await;
            }
            None
        }
    }
}
