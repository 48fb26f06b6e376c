//! Reading portero's admin `/status` in tests: a backend's state, and waiting for one.

use super::client;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

/// The state `/status` shows for `backend` in the first pool ("healthy", "unhealthy",
/// "draining"), or "" when it is not there.
pub async fn state(app: &portero::App, backend: SocketAddr) -> String {
    let body = client::get(app.admin_addr(), "/status").await.body;
    let status: serde_json::Value = serde_json::from_str(&body).unwrap();
    status["pools"][0]["backends"]
        .as_array()
        .unwrap()
        .iter()
        .find(|b| b["address"] == backend.to_string())
        .map(|b| b["state"].as_str().unwrap().to_string())
        .unwrap_or_default()
}

/// Polls `/status` every 10 ms until `backend` is `wanted`; panics after 10 s.
pub async fn wait_for_state(app: &portero::App, backend: SocketAddr, wanted: &str) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let now = state(app, backend).await;
        if now == wanted {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{backend} never became {wanted} (still {now:?})"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}
