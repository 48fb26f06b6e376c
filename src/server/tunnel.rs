//! Upgraded connections (WebSocket and friends): once the backend has answered 101 and hyper
//! has handed the client's socket back, the two sides are spliced byte for byte until either
//! closes, or until shutdown's drain deadline.

use hyper::upgrade::OnUpgrade;
use hyper_util::rt::TokioIo;
use std::net::SocketAddr;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio_util::sync::{CancellationToken, WaitForCancellationFutureOwned};

/// Splices `client` with the backend's upgraded connection.
pub async fn run<C: AsyncRead + AsyncWrite + Unpin>(
    mut client: C,
    upstream: OnUpgrade,
    cut: WaitForCancellationFutureOwned,
    hard_stop: &CancellationToken,
    peer: SocketAddr,
) {
    let splice = async {
        let upstream = upstream
            .await
            .map_err(|e| std::io::Error::other(e.to_string()))?;
        let mut upstream = TokioIo::new(upstream);
        tokio::io::copy_bidirectional(&mut client, &mut upstream).await
    };
    tokio::select! {
        result = splice => match result {
            Ok((up, down)) => tracing::debug!(%peer, bytes_up = up, bytes_down = down, "tunnel closed"),
            Err(e) => tracing::debug!(%peer, error = %e, "tunnel failed"),
        },
        () = hard_stop.cancelled() => tracing::info!(%peer, "tunnel cut at the shutdown drain deadline"),
        () = cut => tracing::info!(%peer, "tunnel cut: its backend was removed and drained"),
    }
}
