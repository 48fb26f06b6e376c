//! Upgraded connections (WebSocket and friends): once the backend has answered 101, the two
//! sides are spliced byte for byte until either closes, or until shutdown's drain deadline.

use hyper::upgrade::OnUpgrade;
use hyper_util::rt::TokioIo;
use std::net::SocketAddr;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// Spawns the splice between the client's and the backend's upgraded connections.
pub fn spawn(
    tasks: &TaskTracker,
    hard_stop: &CancellationToken,
    client: OnUpgrade,
    upstream: OnUpgrade,
    peer: SocketAddr,
) {
    let hard_stop = hard_stop.clone();
    tasks.spawn(async move {
        let splice = async {
            let (client, upstream) = tokio::try_join!(client, upstream)
                .map_err(|e| std::io::Error::other(e.to_string()))?;
            let mut client = TokioIo::new(client);
            let mut upstream = TokioIo::new(upstream);
            tokio::io::copy_bidirectional(&mut client, &mut upstream).await
        };
        tokio::select! {
            result = splice => match result {
                Ok((up, down)) => tracing::debug!(%peer, bytes_up = up, bytes_down = down, "tunnel closed"),
                Err(e) => tracing::debug!(%peer, error = %e, "tunnel failed"),
            },
            () = hard_stop.cancelled() => tracing::info!(%peer, "tunnel cut at the drain deadline"),
        }
    });
}
