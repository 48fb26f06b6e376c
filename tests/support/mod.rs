//! Helpers for the integration tests: real backends, a real portero (in this process or as a
//! child process), clients, and polling with deadlines instead of sleeps.
//!
//! (`mod.rs` here, as the Cargo book does for `tests/common`: a file directly under `tests/`
//! would be compiled as a test crate of its own.)
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

pub mod backend;
pub mod client;
pub mod daemon;
pub mod dns;
pub mod external;
pub mod feed;
pub mod h2raw;
pub mod mariadb;
pub mod metrics;
pub mod pebble;
pub mod peers;
pub mod pki;
pub mod raw_backend;
pub mod raw_client;
pub mod raw_rig;
pub mod redis;
pub mod source;
pub mod status;

use std::future::Future;
use std::time::{Duration, Instant};

/// Runs a whole test under a time limit of 60 s.
pub async fn bounded(test: impl Future<Output = ()>) {
    bounded_by(Duration::from_secs(60), test).await;
}

/// Runs a whole test under a time limit of `limit` (whole seconds).
pub async fn bounded_by(limit: Duration, test: impl Future<Output = ()>) {
    tokio::time::timeout(limit, test)
        .await
        .unwrap_or_else(|e| panic!("the test took over {} s: {e:?}", limit.as_secs()));
}

/// Polls `condition` every 10 ms until it holds; panics with `what` after `timeout`.
pub async fn wait_until(what: &str, timeout: Duration, mut condition: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !condition() {
        assert!(
            Instant::now() < deadline,
            "timed out after {timeout:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// [`wait_until`] for a condition that must await (a request, a metric read).
pub async fn wait_until_async<F: Future<Output = bool>>(
    what: &str,
    timeout: Duration,
    mut condition: impl FnMut() -> F,
) {
    let deadline = Instant::now() + timeout;
    while !condition().await {
        assert!(
            Instant::now() < deadline,
            "timed out after {timeout:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Blocking variant of [`wait_until`] for synchronous tests.
pub fn wait_until_blocking(what: &str, timeout: Duration, mut condition: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !condition() {
        assert!(
            Instant::now() < deadline,
            "timed out after {timeout:?} waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Whether `tool` is on PATH. Under `CI=true` a missing tool fails the test (the CI script
/// installs it); elsewhere the test is skipped with a loud message.
pub fn require_tool(tool: &str) -> bool {
    let found = std::process::Command::new("sh")
        .arg("-c")
        .arg(format!("command -v {tool}"))
        .output()
        .is_ok_and(|o| o.status.success());
    if !found {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "{tool} is required under CI=true; scripts/test installs it"
        );
        eprintln!("\n*** SKIPPED: {tool} is not installed (scripts/test installs it) ***\n");
    }
    found
}

/// Resident memory of a process, in bytes (Linux).
pub fn rss_bytes(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .map_or(0, |kb| kb * 1024)
}

/// The value of one sample in Prometheus text, by its exact name and labels as printed
/// (`portero_connections_open{listener="http"}`); 0 when absent.
pub fn metric(text: &str, sample: &str) -> f64 {
    text.lines()
        .find_map(|line| {
            line.strip_prefix(sample)?
                .strip_prefix(' ')?
                .trim()
                .parse()
                .ok()
        })
        .unwrap_or(0.0)
}
