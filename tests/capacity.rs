//! Capacity with real sockets: 10,000 idle keep-alive connections held against one portero
//! process (the client is this test process), every one served, and the daemon's resident
//! memory per connection reported. The figure is printed for BENCHMARKS.md, not asserted:
//! memory depends on the allocator and the machine.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;
use support::backend::TestBackend;
use support::daemon::{Process, config_text};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};

const CONNECTIONS: usize = 10_000;
const AT_ONCE: usize = 250;

fn raise_own_fd_limit() {
    let (_, hard) = rlimit::getrlimit(rlimit::Resource::NOFILE).unwrap();
    rlimit::setrlimit(rlimit::Resource::NOFILE, hard, hard).unwrap();
    assert!(
        hard >= (CONNECTIONS + 2_000) as u64,
        "this test needs {} descriptors, the hard limit is {hard}",
        CONNECTIONS + 2_000
    );
}

/// Connects from 127.0.0.{2..9} in turn, so ephemeral ports never run short.
async fn connect(target: SocketAddr, index: usize) -> TcpStream {
    let source = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2 + (index % 8) as u8));
    let socket = TcpSocket::new_v4().unwrap();
    socket.bind(SocketAddr::new(source, 0)).unwrap();
    socket
        .connect(target)
        .await
        .unwrap_or_else(|e| panic!("connection {index} refused: {e}"))
}

async fn one_request(target: SocketAddr, index: usize) -> TcpStream {
    let mut stream = connect(target, index).await;
    request_on(&mut stream, index).await;
    stream
}

/// One keep-alive request on an open connection, its response read whole.
async fn request_on(stream: &mut TcpStream, index: usize) {
    stream
        .write_all(b"GET / HTTP/1.1\r\nHost: capacity\r\n\r\n")
        .await
        .unwrap();
    let mut buf = [0u8; 512];
    let mut text = Vec::new();
    while !text.ends_with(b"a") {
        let n = tokio::time::timeout(Duration::from_secs(30), stream.read(&mut buf))
            .await
            .expect("a response")
            .unwrap();
        assert!(n > 0, "connection {index} closed without a response");
        text.extend_from_slice(&buf[..n]);
    }
    assert!(
        text.starts_with(b"HTTP/1.1 200"),
        "connection {index}: {}",
        String::from_utf8_lossy(&text)
    );
}

fn idle_config(backend: SocketAddr) -> String {
    config_text(
        &[(backend, 1)],
        "[timeouts]\nrequest_header = \"300s\"\nidle = \"300s\"\n",
    )
}

/// Opens `CONNECTIONS` with `open`, waits until portero holds them all (and, with `parked`,
/// until every one has gone idle and parked), and returns them with RSS growth per connection.
async fn hold<F, Fut>(process: &Process, open: F, parked: bool) -> (Vec<TcpStream>, f64)
where
    F: Fn(SocketAddr, usize) -> Fut,
    Fut: std::future::Future<Output = TcpStream>,
{
    for _ in 0..5 {
        assert_eq!(support::client::get(process.traffic, "/").await.status, 200);
    }
    let before = support::rss_bytes(process.pid());
    let mut held = Vec::with_capacity(CONNECTIONS);
    for batch in (0..CONNECTIONS).collect::<Vec<_>>().chunks(AT_ONCE) {
        let opened =
            futures_util::future::join_all(batch.iter().map(|&i| open(process.traffic, i))).await;
        held.extend(opened);
    }
    // A connect completes in the kernel's backlog; wait for portero to have accepted them all.
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    loop {
        let status: serde_json::Value =
            serde_json::from_str(&support::client::get(process.admin, "/status").await.body)
                .unwrap();
        let metrics = support::client::get(process.admin, "/metrics").await.body;
        let parked_now =
            support::metric(&metrics, "portero_connections_parked{listener=\"http\"}") as usize;
        if status["connections"]["open"] == CONNECTIONS && (!parked || parked_now == CONNECTIONS) {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "not every connection was accepted: {status}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let after = support::rss_bytes(process.pid());
    (
        held,
        (after.saturating_sub(before)) as f64 / CONNECTIONS as f64,
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_thousand_idle_keep_alive_connections_are_held_and_measured() {
    raise_own_fd_limit();
    let backend = TestBackend::named("a").await;
    let process = Process::spawn(&idle_config(backend.addr));
    let (held, per_connection) = hold(&process, one_request, true).await;
    println!(
        "portero RSS per idle keep-alive connection: {per_connection:.0} bytes ({} connections, one request each)",
        held.len()
    );
    assert!(
        process.logged("open-files limit"),
        "the daemon reports its descriptor limit"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_thousand_connections_before_their_first_byte_are_held_and_measured() {
    raise_own_fd_limit();
    let backend = TestBackend::named("a").await;
    let process = Process::spawn(&idle_config(backend.addr));
    let (held, per_connection) = hold(&process, connect, false).await;
    println!(
        "portero RSS per connection before its first byte: {per_connection:.0} bytes ({} connections)",
        held.len()
    );
}

/// An idle keep-alive connection holds no read buffer, however many requests it has served: a
/// request read into a buffer kept between requests would leave a resident page (4 KiB) per
/// connection from its second request on. Compared within one process, so the allocator's
/// own overhead cancels out; the margin is a quarter of the page.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_keep_alive_connections_keep_no_buffer_after_more_requests() {
    const HELD: usize = 6_000;
    raise_own_fd_limit();
    let backend = TestBackend::named("a").await;
    let process = Process::spawn(&idle_config(backend.addr));
    let mut held = Vec::with_capacity(HELD);
    for batch in (0..HELD).collect::<Vec<_>>().chunks(AT_ONCE) {
        let opened =
            futures_util::future::join_all(batch.iter().map(|&i| one_request(process.traffic, i)))
                .await;
        held.extend(opened);
    }
    wait_until_parked(&process, HELD).await;
    let after_one = support::rss_bytes(process.pid());
    for _ in 0..2 {
        for (batch, streams) in held.chunks_mut(AT_ONCE).enumerate() {
            futures_util::future::join_all(
                streams
                    .iter_mut()
                    .enumerate()
                    .map(|(i, stream)| request_on(stream, batch * AT_ONCE + i)),
            )
            .await;
        }
        wait_until_parked(&process, HELD).await;
    }
    let after_three = support::rss_bytes(process.pid());
    let grown = after_three.saturating_sub(after_one) as f64 / HELD as f64;
    println!(
        "portero RSS growth per idle connection from its first to its third request: {grown:.0} bytes"
    );
    assert!(
        grown < 1_024.0,
        "idle connections grew by {grown:.0} bytes each after two more requests: a read buffer is kept between requests"
    );
}

/// Waits until `count` connections are open and every one is parked (idle, nothing read).
async fn wait_until_parked(process: &Process, count: usize) {
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    loop {
        let metrics = support::client::get(process.admin, "/metrics").await.body;
        let parked =
            support::metric(&metrics, "portero_connections_parked{listener=\"http\"}") as usize;
        if parked == count {
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{parked} of {count} connections parked"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
