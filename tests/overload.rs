//! Memory pressure (ATTACKS.md row 54): buffers per connection stay bounded however large the
//! heads clients send, and past `limits.max_memory` the daemon refuses new requests (503,
//! `Retry-After`) until memory is back under it. portero runs as a child process here, so its
//! resident memory is its own.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::time::{Duration, Instant};
use support::backend::TestBackend;
use support::client;
use support::daemon::{Process, config_text};
use support::source::{exchange, get_closing, status};
use support::{metric, rss_bytes};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

async fn overload_level(process: &Process) -> f64 {
    metric(
        &client::get(process.admin, "/metrics").await.body,
        "portero_overload_level",
    )
}

async fn get(process: &Process) -> String {
    let mut stream = TcpStream::connect(process.traffic).await.unwrap();
    exchange(&mut stream, &get_closing("/"), Duration::from_secs(5))
        .await
        .0
}

async fn wait_for_level(process: &Process, level: f64) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while overload_level(process).await != level {
        assert!(
            Instant::now() < deadline,
            "overload level never reached {level}: {:?}",
            process.log.lock().unwrap()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn past_the_memory_limit_new_requests_are_refused_until_it_is_raised() {
    let backend = TestBackend::named("app").await;
    let normal = config_text(&[(backend.addr, 1)], "");
    let process = Process::spawn(&normal);
    assert_eq!(status(&get(&process).await), 200);

    // A limit far below what the daemon already holds: level 2, refuse.
    let tight = config_text(&[(backend.addr, 1)], "[limits]\nmax_memory = \"1MiB\"\n");
    process.write_config(&tight);
    process.signal("HUP");
    wait_for_level(&process, 2.0).await;
    let refused = get(&process).await;
    assert_eq!(status(&refused), 503, "{refused}");
    assert!(refused.contains("retry-after: 1"), "{refused}");
    assert!(refused.contains("connection: close"), "{refused}");
    assert_eq!(backend.requests(), 1, "refused before any backend is asked");

    // Raised (here: removed) again, requests flow.
    process.write_config(&normal);
    process.signal("HUP");
    wait_for_level(&process, 0.0).await;
    assert_eq!(status(&get(&process).await), 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn large_unfinished_heads_cost_at_most_the_header_limit_each() {
    const CONNECTIONS: usize = 400;
    let backend = TestBackend::named("app").await;
    let process = Process::spawn(&config_text(&[(backend.addr, 1)], ""));
    assert_eq!(status(&get(&process).await), 200);
    let before = rss_bytes(process.pid());

    // Each client sends 31 KiB of head (just under the 32 KiB limit) and never ends it.
    let line = format!("X-Filler: {}\r\n", "a".repeat(1000));
    let head = format!("GET / HTTP/1.1\r\nHost: test\r\n{}", line.repeat(31));
    let mut held = Vec::with_capacity(CONNECTIONS);
    for _ in 0..CONNECTIONS {
        let mut stream = TcpStream::connect(process.traffic).await.unwrap();
        stream.write_all(head.as_bytes()).await.unwrap();
        held.push(stream);
    }
    // Let the daemon read everything that was sent: its memory stops growing.
    let mut last = 0;
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        tokio::time::sleep(Duration::from_millis(200)).await;
        let now = rss_bytes(process.pid());
        if now == last || Instant::now() > deadline {
            break;
        }
        last = now;
    }
    let growth = rss_bytes(process.pid()).saturating_sub(before);
    let per_connection = growth / CONNECTIONS as u64;
    eprintln!(
        "{CONNECTIONS} unfinished 31 KiB heads: +{} KiB, {} B per connection",
        growth / 1024,
        per_connection
    );
    assert!(
        per_connection < 64 * 1024,
        "each held head costs its buffer (32 KiB limit), hyper's write buffer and the connection's state: {per_connection} B"
    );
    drop(held);
    assert_eq!(status(&get(&process).await), 200, "still serving");
}
