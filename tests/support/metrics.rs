//! Reading portero's admin `/metrics` in tests: the whole text, the sum of one metric's
//! samples, and waiting for that sum. Anything that knows its admin address will do: an
//! in-process [`App`], a child [`Process`], or the address itself.

use super::client;
use super::daemon::Process;
use portero::App;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::time::Instant;

/// Something with portero's admin address.
pub trait Admin {
    /// The admin listener's address.
    fn admin(&self) -> SocketAddr;
}

impl Admin for SocketAddr {
    fn admin(&self) -> SocketAddr {
        *self
    }
}

impl Admin for App {
    fn admin(&self) -> SocketAddr {
        self.admin_addr()
    }
}

impl Admin for Process {
    fn admin(&self) -> SocketAddr {
        self.admin
    }
}

impl<T: Admin + ?Sized> Admin for &T {
    fn admin(&self) -> SocketAddr {
        (**self).admin()
    }
}

impl<T: Admin + ?Sized> Admin for Arc<T> {
    fn admin(&self) -> SocketAddr {
        (**self).admin()
    }
}

/// The admin `/metrics` text.
pub async fn metrics(of: impl Admin) -> String {
    client::get(of.admin(), "/metrics").await.body
}

/// The sum of a metric's samples whose line contains `labels`, from the admin `/metrics`.
pub async fn metric_sum(of: impl Admin, name: &str, labels: &str) -> f64 {
    let text = metrics(of).await;
    text.lines()
        .filter(|l| l.starts_with(&format!("{name}{{")) && l.contains(labels))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// Polls [`metric_sum`] until it reads `value`; panics after `timeout`.
pub async fn metric_reaches(
    of: impl Admin,
    name: &str,
    labels: &str,
    value: f64,
    timeout: Duration,
) {
    let admin = of.admin();
    let deadline = Instant::now() + timeout;
    loop {
        let now = metric_sum(admin, name, labels).await;
        if now == value {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{name}{{{labels}}} stayed at {now}, not {value}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
