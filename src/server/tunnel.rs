//! Upgraded connections (WebSocket and friends): once the backend has answered 101 and its
//! connection is handed over, the two sides are spliced byte for byte until either closes, or
//! until shutdown's drain deadline.

use crate::upstream::UpstreamIo;
use hyper_util::rt::TokioIo;
use std::io;
use std::net::SocketAddr;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use tokio_util::sync::{CancellationToken, WaitForCancellationFutureOwned};

/// Splices `client` with the backend's upgraded connection.
pub async fn run<C: AsyncRead + AsyncWrite + Unpin>(
    mut client: C,
    upstream: Option<UpstreamIo>,
    cut: WaitForCancellationFutureOwned,
    hard_stop: &CancellationToken,
    peer: SocketAddr,
) {
    let splice = async {
        match upstream {
            Some(UpstreamIo::Http1(mut upgraded)) => {
                // What the backend sent behind its 101 goes first.
                client.write_all(&upgraded.read).await?;
                tokio::io::copy_bidirectional(&mut client, &mut upgraded.io).await
            }
            Some(UpstreamIo::Hyper(on_upgrade)) => {
                let upgraded = on_upgrade.await.map_err(io::Error::other)?;
                tokio::io::copy_bidirectional(&mut client, &mut TokioIo::new(upgraded)).await
            }
            None => Err(io::Error::other(
                "the backend's connection was already taken",
            )),
        }
    };
    tokio::select! {
        result = splice => match result {
            Ok((up, down)) => tracing::debug!(%peer, bytes_up = up, bytes_down = down, "tunnel closed"),
            Err(e) => tracing::debug!(%peer, error = %e, "tunnel failed"),
        },
        () = hard_stop.cancelled() => tracing::debug!(%peer, "tunnel cut at the shutdown drain deadline"),
        () = cut => tracing::debug!(%peer, "tunnel cut: its backend was removed and drained"),
    }
}
