//! Slowloris at scale (ATTACKS.md row 24): hundreds of connections trickling their request
//! heads a byte at a time. Normal clients must be served meanwhile, and every slow connection
//! must be answered 408 and closed when `timeouts.request_header` runs out, not before.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::time::{Duration, Instant};
use support::backend::TestBackend;
use support::client;
use support::daemon::{config_text, start, traffic};
use support::metric;
use support::source::connect_from;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const SLOW: usize = 300;
const HEADER_TIMEOUT: Duration = Duration::from_secs(2);

/// How one slow connection ended.
struct Ended {
    after: Duration,
    answer: String,
}

/// Sends a head one byte every 50 ms, never finishing it, until the server closes.
async fn trickle(from: std::net::IpAddr, addr: std::net::SocketAddr) -> Ended {
    let mut stream = connect_from(from, addr).await;
    let started = Instant::now();
    let head = b"GET / HTTP/1.1\r\nHost: test\r\n";
    let filler = b"X-Slow: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n";
    let mut bytes = head.iter().chain(filler.iter().cycle());
    let mut answer = Vec::new();
    let mut chunk = [0u8; 512];
    // Bounded: the server must close long before this many bytes.
    for _ in 0..2_000 {
        let byte = *bytes.next().unwrap();
        if stream.write_all(&[byte]).await.is_err() {
            break;
        }
        match tokio::time::timeout(Duration::from_millis(50), stream.read(&mut chunk)).await {
            Ok(Ok(0)) | Ok(Err(_)) => break,
            Ok(Ok(n)) => answer.extend_from_slice(&chunk[..n]),
            Err(_) => {}
        }
    }
    // Whatever is still coming (the 408 may arrive just before the close).
    let _ = tokio::time::timeout(Duration::from_secs(2), stream.read_to_end(&mut answer)).await;
    Ended {
        after: started.elapsed(),
        answer: String::from_utf8_lossy(&answer).into_owned(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_heads_are_cut_at_the_header_timeout_while_others_are_served() {
    let backend = TestBackend::named("app").await;
    let extra = format!(
        "[timeouts]\nrequest_header = \"{}ms\"\n",
        HEADER_TIMEOUT.as_millis()
    );
    let app = start(&config_text(&[(backend.addr, 1)], &extra)).await;
    let addr = traffic(&app);

    let mut slow = tokio::task::JoinSet::new();
    for i in 0..SLOW {
        let from = std::net::IpAddr::from([127, 0, 0, 2 + (i % 8) as u8]);
        slow.spawn(trickle(from, addr));
    }
    let admin = app.admin_addr();
    open_connections_reach(
        admin,
        |n| n >= SLOW as f64,
        "the slow connections to be open",
    )
    .await;

    // Normal clients, while every slow one holds its connection.
    for i in 0..20 {
        let reply = client::get(addr, &format!("/normal/{i}")).await;
        assert_eq!(reply.status, 200, "request {i} during the attack");
    }

    let mut ended = Vec::new();
    while let Some(result) = slow.join_next().await {
        ended.push(result.unwrap());
    }
    let earliest = ended.iter().map(|e| e.after).min().unwrap();
    let latest = ended.iter().map(|e| e.after).max().unwrap();
    eprintln!("{SLOW} slow connections closed between {earliest:?} and {latest:?}");
    for e in &ended {
        assert!(
            e.answer.starts_with("HTTP/1.1 408 "),
            "answered 408: {:?}",
            e.answer
        );
    }
    // The server's clock starts at its accept, a little before the client task sees its
    // connect complete when 300 of them share two threads.
    assert!(
        earliest >= HEADER_TIMEOUT.mul_f32(0.9),
        "none cut early: {earliest:?}"
    );
    assert!(
        latest < HEADER_TIMEOUT * 4,
        "all cut near the timeout: {latest:?}"
    );
    assert_eq!(backend.requests(), 20, "no slow head reached the backend");
    open_connections_reach(admin, |n| n == 0.0, "every connection to be closed").await;
}

/// Polls `portero_connections_open` until `condition` holds (or panics after 10 s).
async fn open_connections_reach(
    admin: std::net::SocketAddr,
    condition: impl Fn(f64) -> bool,
    what: &str,
) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let m = client::get(admin, "/metrics").await.body;
        let open = metric(&m, "portero_connections_open{listener=\"http\"}");
        if condition(open) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "timed out waiting for {what}: {open} open"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
