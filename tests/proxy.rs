//! The request path end to end: real backends, a real portero, real clients.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use http::Request;
use http_body_util::Full;
use std::collections::HashMap;
use std::time::{Duration, Instant};
use support::backend::{Behavior, TestBackend};
use support::client::{self, get, send};
use support::daemon::{config_text, start, traffic};

#[tokio::test]
async fn requests_spread_over_backends_by_weight() {
    let a = TestBackend::named("a").await;
    let b = TestBackend::named("b").await;
    let c = TestBackend::named("c").await;
    let app = start(&config_text(&[(a.addr, 3), (b.addr, 2), (c.addr, 1)], "")).await;
    let addr = traffic(&app);
    let client = client::http1();
    let mut counts: HashMap<String, usize> = HashMap::new();
    let mut order = Vec::new();
    for _ in 0..600 {
        let reply = send(
            &client,
            Request::get(format!("http://{addr}/"))
                .body(Full::default())
                .unwrap(),
        )
        .await;
        assert_eq!(reply.status, 200);
        order.push(reply.body.clone());
        *counts.entry(reply.body).or_default() += 1;
    }
    assert_eq!(
        (counts["a"], counts["b"], counts["c"]),
        (300, 200, 100),
        "{counts:?}"
    );
    // Smooth: the heaviest backend never gets its whole share in one run.
    assert!(
        !order.windows(3).any(|w| w.iter().all(|n| n == "a")),
        "weights are interleaved"
    );
    assert_eq!(a.requests() + b.requests() + c.requests(), 600);
}

#[tokio::test]
async fn h2c_clients_are_served_on_the_same_port() {
    let a = TestBackend::named("a").await;
    let b = TestBackend::named("b").await;
    let app = start(&config_text(&[(a.addr, 1), (b.addr, 1)], "")).await;
    let addr = traffic(&app);
    let client = client::h2c();
    let mut seen = Vec::new();
    for _ in 0..4 {
        let reply = send(
            &client,
            Request::get(format!("http://{addr}/h2"))
                .body(Full::default())
                .unwrap(),
        )
        .await;
        assert_eq!(reply.status, 200);
        seen.push(reply.body);
    }
    assert_eq!(seen, ["a", "b", "a", "b"]);
    // The backend got an HTTP/1.1 request with a Host built from :authority.
    assert_eq!(a.last_headers()["host"], addr.to_string());
    // Concurrent streams on one connection.
    let many = (0..50).map(|_| {
        send(
            &client,
            Request::get(format!("http://{addr}/"))
                .body(Full::default())
                .unwrap(),
        )
    });
    let replies = futures_util::future::join_all(many).await;
    assert!(replies.iter().all(|r| r.status == 200));
}

#[tokio::test]
async fn h2c_backends_are_reached_with_http2() {
    let a = TestBackend::named("h2-backend").await;
    let text =
        config_text(&[(a.addr, 1)], "").replace("[pool.app]\n", "[pool.app]\nprotocol = \"h2c\"\n");
    let app = start(&text).await;
    let reply = get(traffic(&app), "/").await;
    assert_eq!(reply.status, 200);
    assert_eq!(reply.body, "h2-backend");
}

/// RFC 9113 §8.3.1: an intermediary forwarding over HTTP/2 builds `:authority` from the
/// original request's authority. The backend's address there (as hyper-util's client made it
/// from the URI) would tell a backend that routes on `:authority` the wrong site.
#[tokio::test]
async fn h2c_backends_get_the_clients_host_as_authority() {
    let a = TestBackend::named("h2-backend").await;
    let text =
        config_text(&[(a.addr, 1)], "").replace("[pool.app]\n", "[pool.app]\nprotocol = \"h2c\"\n");
    let app = start(&text).await;
    let reply = send(
        &client::http1(),
        Request::get(format!("http://{}/where", traffic(&app)))
            .header("host", "site.example:8443")
            .body(Full::default())
            .unwrap(),
    )
    .await;
    assert_eq!(reply.status, 200);
    assert_eq!(a.last_authority().as_deref(), Some("site.example:8443"));
    assert_eq!(
        a.last_headers()["host"],
        "site.example:8443",
        "Host and :authority agree"
    );
}

#[tokio::test]
async fn curl_sees_alternating_backends_over_http1_and_http2() {
    if !support::require_tool("curl") {
        return;
    }
    let a = TestBackend::named("a").await;
    let b = TestBackend::named("b").await;
    let app = start(&config_text(&[(a.addr, 1), (b.addr, 1)], "")).await;
    let url = format!("http://{}/", traffic(&app));
    let curl = |args: &'static [&'static str]| {
        let url = url.clone();
        async move {
            let out = tokio::process::Command::new("curl")
                .args(["-sS", "--max-time", "10"])
                .args(args)
                .arg(&url)
                .output()
                .await
                .unwrap();
            assert!(
                out.status.success(),
                "{}",
                String::from_utf8_lossy(&out.stderr)
            );
            String::from_utf8(out.stdout).unwrap()
        }
    };
    let bodies = [curl(&[]).await, curl(&[]).await];
    assert_ne!(bodies[0], bodies[1]);
    let h2 = curl(&["--http2-prior-knowledge", "-w", " %{http_version}"]).await;
    assert!(h2.ends_with(" 2"), "{h2}");
}

#[tokio::test]
async fn hop_by_hop_headers_are_removed_and_forwarding_headers_set() {
    let a = TestBackend::named("a").await;
    let app = start(&config_text(&[(a.addr, 1)], "")).await;
    let addr = traffic(&app);
    let request = Request::get(format!("http://{addr}/headers"))
        .header("connection", "keep-alive, x-secret, X-Forwarded-For")
        .header("x-secret", "s3cr3t")
        .header("keep-alive", "timeout=5")
        .header("proxy-connection", "keep-alive")
        .header("te", "gzip")
        .header("upgrade", "h2c")
        .header("x-forwarded-for", "6.6.6.6")
        .header("x-forwarded-proto", "https")
        .header("x-forwarded-host", "evil.example")
        .header("forwarded", "for=6.6.6.6")
        .header("x-real-ip", "6.6.6.6")
        .header("x-end-to-end", "kept")
        .body(Full::default())
        .unwrap();
    let reply = send(&client::http1(), request).await;
    assert_eq!(reply.status, 200);
    let seen = a.last_headers();
    for gone in [
        "x-secret",
        "keep-alive",
        "proxy-connection",
        "te",
        "upgrade",
        "forwarded",
        "x-real-ip",
    ] {
        assert!(
            !seen.contains_key(gone),
            "{gone} reached the backend: {seen:?}"
        );
    }
    assert_eq!(
        seen["x-forwarded-for"], "127.0.0.1",
        "spoofed XFF replaced: {seen:?}"
    );
    assert_eq!(seen.get_all("x-forwarded-for").iter().count(), 1);
    assert_eq!(seen["x-forwarded-proto"], "http");
    assert_eq!(seen["x-forwarded-host"], addr.to_string());
    assert_eq!(seen["x-end-to-end"], "kept");
    assert_eq!(seen["x-request-id"].len(), 32);
}

#[tokio::test]
async fn trusted_proxies_keep_their_chain_and_request_ids_pass_through() {
    let a = TestBackend::named("a").await;
    let text = config_text(
        &[(a.addr, 1)],
        "[security]\ntrusted_proxies = [\"127.0.0.0/8\"]\n",
    );
    let app = start(&text).await;
    let request = Request::get(format!("http://{}/", traffic(&app)))
        .header("x-forwarded-for", "203.0.113.9")
        .header("x-forwarded-proto", "https")
        .header("x-request-id", "client-chosen-id")
        .body(Full::default())
        .unwrap();
    send(&client::http1(), request).await;
    let seen = a.last_headers();
    assert_eq!(seen["x-forwarded-for"], "203.0.113.9, 127.0.0.1");
    assert_eq!(seen["x-forwarded-proto"], "https");
    assert_eq!(seen["x-request-id"], "client-chosen-id");
}

#[tokio::test]
async fn a_dead_backend_gives_502() {
    // A port that was just free: nothing listens there.
    let dead = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let app = start(&config_text(&[(dead, 1)], "")).await;
    let reply = get(traffic(&app), "/").await;
    assert_eq!(reply.status, 502);
    assert_eq!(reply.body, "502 Bad Gateway\n");
    assert_eq!(reply.header("content-type"), "text/plain; charset=utf-8");
}

#[tokio::test]
async fn a_hung_backend_gives_504_after_the_upstream_response_timeout() {
    let hung = TestBackend::start("hung", Behavior::Hang).await;
    let text = config_text(
        &[(hung.addr, 1)],
        "[timeouts]\nupstream_response = \"300ms\"\n",
    );
    let app = start(&text).await;
    let started = Instant::now();
    let reply = get(traffic(&app), "/").await;
    let elapsed = started.elapsed();
    assert_eq!(reply.status, 504);
    assert!(
        elapsed >= Duration::from_millis(300),
        "answered before the timeout: {elapsed:?}"
    );
    assert!(
        elapsed < Duration::from_secs(10),
        "the 30 s default was not replaced: {elapsed:?}"
    );
    assert_eq!(hung.requests(), 1);
}

#[tokio::test]
async fn unknown_hosts_get_404_and_missing_host_400() {
    let a = TestBackend::named("a").await;
    let text = config_text(
        &[(a.addr, 1)],
        "[[route]]\nhost = \"api.example.com\"\npool = \"app\"\n",
    );
    let app = start(&text).await;
    let addr = traffic(&app);
    let routed = Request::get(format!("http://{addr}/"))
        .header("host", "API.example.com:80")
        .body(Full::default())
        .unwrap();
    assert_eq!(send(&client::http1(), routed).await.status, 200);
    let other = Request::get(format!("http://{addr}/"))
        .header("host", "other.example.com")
        .body(Full::default())
        .unwrap();
    assert_eq!(send(&client::http1(), other).await.status, 404);
    let no_host = client::raw(addr, b"GET / HTTP/1.1\r\n\r\n", Duration::from_secs(5)).await;
    assert!(no_host.starts_with("HTTP/1.1 400 "), "{no_host}");
    assert_eq!(a.requests(), 1);
}

#[tokio::test]
async fn websocket_echo_works_through_the_proxy() {
    let ws = TestBackend::start("ws", Behavior::WebSocketEcho).await;
    let app = start(&config_text(&[(ws.addr, 1)], "")).await;
    let url = format!("ws://{}/socket", traffic(&app));
    let (mut socket, response) = tokio_tungstenite::connect_async(url).await.unwrap();
    assert_eq!(response.status(), 101);
    for i in 0..10 {
        let text = format!("message {i}");
        socket
            .send(tokio_tungstenite::tungstenite::Message::text(text.clone()))
            .await
            .unwrap();
        let echoed = tokio::time::timeout(Duration::from_secs(5), socket.next())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        assert_eq!(echoed.into_text().unwrap().as_str(), text);
    }
    socket.close(None).await.unwrap();
}

#[tokio::test]
async fn a_websocket_outlives_the_header_and_idle_timeouts() {
    let ws = TestBackend::start("ws", Behavior::WebSocketEcho).await;
    let text = config_text(
        &[(ws.addr, 1)],
        "[timeouts]\nrequest_header = \"100ms\"\nidle = \"200ms\"\n",
    );
    let app = start(&text).await;
    let (mut socket, _) = tokio_tungstenite::connect_async(format!("ws://{}/", traffic(&app)))
        .await
        .unwrap();
    // Messages spread over several header timeouts, then a silence longer than the idle one.
    for (i, pause) in [50u64, 80, 80, 80, 450].into_iter().enumerate() {
        tokio::time::sleep(Duration::from_millis(pause)).await;
        let text = format!("ping {i}");
        socket
            .send(tokio_tungstenite::tungstenite::Message::text(text.clone()))
            .await
            .unwrap();
        let echoed = tokio::time::timeout(Duration::from_secs(5), socket.next())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        assert_eq!(
            echoed.into_text().unwrap().as_str(),
            text,
            "the tunnel was cut"
        );
    }
}

#[tokio::test]
async fn an_incomplete_request_head_gets_408_at_the_header_timeout() {
    let a = TestBackend::named("a").await;
    let text = config_text(&[(a.addr, 1)], "[timeouts]\nrequest_header = \"300ms\"\n");
    let app = start(&text).await;
    let started = Instant::now();
    let reply = client::raw(
        traffic(&app),
        b"GET / HTTP/1.1\r\nHost: x\r\nX-Slow: ",
        Duration::from_secs(10),
    )
    .await;
    assert!(reply.starts_with("HTTP/1.1 408 "), "{reply:?}");
    assert!(started.elapsed() >= Duration::from_millis(300));
    assert!(started.elapsed() < Duration::from_secs(10));
    assert_eq!(a.requests(), 0, "nothing reached the backend");
    // A connection that sends nothing is closed silently at the same deadline.
    let silent = client::raw(traffic(&app), b"", Duration::from_secs(10)).await;
    assert_eq!(silent, "");
}

#[tokio::test]
async fn idle_keep_alive_connections_are_closed_after_the_idle_timeout_not_the_header_one() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let a = TestBackend::named("a").await;
    let text = config_text(
        &[(a.addr, 1)],
        "[timeouts]\nrequest_header = \"200ms\"\nidle = \"800ms\"\n",
    );
    let app = start(&text).await;
    let mut stream = tokio::net::TcpStream::connect(traffic(&app)).await.unwrap();
    let request = b"GET / HTTP/1.1\r\nHost: x\r\n\r\n";
    stream.write_all(request).await.unwrap();
    let mut buf = vec![0u8; 4096];
    let n = stream.read(&mut buf).await.unwrap();
    assert!(String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 200"));
    let done = Instant::now();
    // Idle longer than the header timeout: still open, and a second request is served.
    tokio::time::sleep(Duration::from_millis(400)).await;
    stream.write_all(request).await.unwrap();
    let n = stream.read(&mut buf).await.unwrap();
    assert!(
        String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 200"),
        "closed before the idle timeout"
    );
    // Then nothing: closed (EOF) after the idle timeout, without a response.
    let n = tokio::time::timeout(Duration::from_secs(10), stream.read(&mut buf))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(n, 0);
    assert!(done.elapsed() >= Duration::from_millis(800));
}

/// The idle time of parked HTTP/1 connections is kept by one sweep that reads the live
/// settings: a reload that shortens `timeouts.idle` closes connections already parked.
#[tokio::test]
async fn a_reload_that_shortens_the_idle_time_closes_parked_connections() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let a = TestBackend::named("a").await;
    let text =
        |idle: &str| config_text(&[(a.addr, 1)], &format!("[timeouts]\nidle = \"{idle}\"\n"));
    let (app, file) = support::daemon::start_with_file(&text("300s")).await;
    let mut stream = tokio::net::TcpStream::connect(traffic(&app)).await.unwrap();
    stream
        .write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let mut buf = vec![0u8; 4096];
    let n = stream.read(&mut buf).await.unwrap();
    assert!(String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 200"));
    std::fs::write(file.path(), text("500ms")).unwrap();
    app.reload("test").await.unwrap();
    let n = tokio::time::timeout(Duration::from_secs(10), stream.read(&mut buf))
        .await
        .expect("still open 10 s after the reload: the old idle time was kept")
        .unwrap();
    assert_eq!(n, 0, "closed silently");
}

#[tokio::test]
async fn post_bodies_stream_to_the_backend() {
    let sink = TestBackend::start("sink", Behavior::Sink).await;
    let app = start(&config_text(&[(sink.addr, 1)], "")).await;
    let body = Bytes::from(vec![b'y'; 300_000]);
    let request = Request::post(format!("http://{}/upload", traffic(&app)))
        .body(Full::new(body))
        .unwrap();
    let reply = send(&client::http1(), request).await;
    assert_eq!(reply.body, "300000");
}

#[tokio::test]
async fn a_backend_that_never_completes_the_connect_gives_504_after_the_connect_timeout() {
    // A listener that never accepts, with its accept queue full: further SYNs are dropped and
    // connects hang, like a backend behind a black-holing firewall.
    let socket = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    socket
        .bind(
            &"127.0.0.1:0"
                .parse::<std::net::SocketAddr>()
                .unwrap()
                .into(),
        )
        .unwrap();
    socket.listen(0).unwrap();
    let black_hole = socket.local_addr().unwrap().as_socket().unwrap();
    let mut fillers = Vec::new();
    for _ in 0..4 {
        if let Ok(Ok(s)) = tokio::time::timeout(
            Duration::from_millis(200),
            tokio::net::TcpStream::connect(black_hole),
        )
        .await
        {
            fillers.push(s);
        }
    }
    let text = config_text(
        &[(black_hole, 1)],
        "[timeouts]\nupstream_connect = \"300ms\"\n",
    );
    let app = start(&text).await;
    let started = Instant::now();
    let reply = get(traffic(&app), "/").await;
    assert_eq!(reply.status, 504, "{reply:?}");
    assert!(started.elapsed() >= Duration::from_millis(300));
    assert!(started.elapsed() < Duration::from_secs(10));
}

async fn read_until(stream: &mut tokio::net::TcpStream, needle: &str, count: usize) -> String {
    use tokio::io::AsyncReadExt;
    let mut text = String::new();
    let mut buf = [0u8; 4096];
    while text.matches(needle).count() < count {
        let n = tokio::time::timeout(Duration::from_secs(10), stream.read(&mut buf))
            .await
            .expect("more bytes")
            .unwrap();
        if n == 0 {
            break;
        }
        text.push_str(&String::from_utf8_lossy(&buf[..n]));
    }
    text
}

#[tokio::test]
async fn pipelined_requests_are_answered_in_order() {
    use tokio::io::AsyncWriteExt;
    let a = TestBackend::named("a").await;
    let app = start(&config_text(&[(a.addr, 1)], "")).await;
    let mut stream = tokio::net::TcpStream::connect(traffic(&app)).await.unwrap();
    stream
        .write_all(b"GET /1 HTTP/1.1\r\nHost: x\r\n\r\nGET /2 HTTP/1.1\r\nHost: x\r\n\r\nGET /3 HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let text = read_until(&mut stream, "HTTP/1.1 200", 3).await;
    assert_eq!(text.matches("HTTP/1.1 200").count(), 3, "{text}");
    assert_eq!(a.requests(), 3);
}

#[tokio::test]
async fn a_parked_keep_alive_connection_serves_slow_heads_and_times_out_stalled_ones() {
    use tokio::io::AsyncWriteExt;
    let a = TestBackend::named("a").await;
    let text = config_text(
        &[(a.addr, 1)],
        "[timeouts]\nrequest_header = \"1s\"\nidle = \"30s\"\n",
    );
    let app = start(&text).await;
    let mut stream = tokio::net::TcpStream::connect(traffic(&app)).await.unwrap();
    stream
        .write_all(b"GET /1 HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    assert!(
        read_until(&mut stream, "\r\n\r\na", 1)
            .await
            .starts_with("HTTP/1.1 200")
    );
    // After a pause (the connection parks), a head that arrives in pieces is still served.
    tokio::time::sleep(Duration::from_millis(200)).await;
    for piece in [&b"GET /2 HT"[..], b"TP/1.1\r\nHo", b"st: x\r\n", b"\r\n"] {
        stream.write_all(piece).await.unwrap();
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        read_until(&mut stream, "\r\n\r\na", 1)
            .await
            .starts_with("HTTP/1.1 200")
    );
    // A head that stalls after the pause gets 408 at the header timeout, not the idle one.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let started = Instant::now();
    stream.write_all(b"GET /3 HTTP/1.1\r\nHo").await.unwrap();
    let reply = read_until(&mut stream, "408", 1).await;
    assert!(reply.starts_with("HTTP/1.1 408"), "{reply:?}");
    assert!(started.elapsed() < Duration::from_secs(10));
    assert_eq!(a.requests(), 2);
}

#[tokio::test]
async fn an_http10_backend_does_not_downgrade_the_client_connection() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let backend = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let backend_addr = backend.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = backend.accept().await {
            tokio::spawn(async move {
                let mut buf = [0u8; 4096];
                let _ = s.read(&mut buf).await;
                let _ = s
                    .write_all(b"HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\nok")
                    .await;
            });
        }
    });
    let app = start(&config_text(&[(backend_addr, 1)], "")).await;
    let mut stream = tokio::net::TcpStream::connect(traffic(&app)).await.unwrap();
    for _ in 0..2 {
        stream
            .write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            .await
            .unwrap();
        let reply = read_until(&mut stream, "\r\n\r\nok", 1).await;
        assert!(reply.starts_with("HTTP/1.1 200"), "{reply}");
        assert!(
            !reply.to_ascii_lowercase().contains("connection: close"),
            "{reply}"
        );
    }
}

/// `OPTIONS *` asks about the server, which the balancer is: portero answers it (it used to
/// look for a route for the path `*` and answer 404), and no backend sees it.
#[tokio::test]
async fn options_asterisk_is_answered_by_the_balancer() {
    let backend = TestBackend::named("a").await;
    let app = start(&config_text(&[(backend.addr, 1)], "")).await;
    let reply = client::raw(
        traffic(&app),
        b"OPTIONS * HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n",
        Duration::from_secs(5),
    )
    .await;
    assert!(reply.starts_with("HTTP/1.1 200 "), "{reply}");
    let lower = reply.to_ascii_lowercase();
    assert!(
        lower.contains("\r\nallow: get, head, post, put, delete, patch, options\r\n"),
        "{reply}"
    );
    assert!(lower.contains("\r\ncontent-length: 0\r\n"), "{reply}");
    assert_eq!(backend.requests(), 0);
}

/// The raw answer to `METHOD /x` on a closing connection.
async fn answer_to(addr: std::net::SocketAddr, method: &str) -> String {
    let request = format!("{method} /x HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n");
    client::raw(addr, request.as_bytes(), Duration::from_secs(5)).await
}

/// Whether `reply` carries exactly this `Allow` line.
fn allows(reply: &str, methods: &str) -> bool {
    reply
        .to_ascii_lowercase()
        .contains(&format!("\r\nallow: {methods}\r\n"))
}

/// TRACE echoes a request back, credentials and cookies included: denied by default (405
/// with `Allow`), as nginx does; `security.deny_methods` sets the list.
#[tokio::test]
async fn trace_is_denied_by_default_and_deny_methods_sets_the_list() {
    let backend = TestBackend::named("a").await;
    let app = start(&config_text(&[(backend.addr, 1)], "")).await;
    let reply = answer_to(traffic(&app), "TRACE").await;
    assert!(reply.starts_with("HTTP/1.1 405 "), "{reply}");
    assert!(
        allows(&reply, "get, head, post, put, delete, patch, options"),
        "{reply}"
    );
    assert_eq!(backend.requests(), 0);
    drop(app);

    let app = start(&config_text(
        &[(backend.addr, 1)],
        "[security]\ndeny_methods = [\"DELETE\", \"PURGE\"]\n",
    ))
    .await;
    let reply = answer_to(traffic(&app), "TRACE").await;
    assert!(
        reply.starts_with("HTTP/1.1 200 "),
        "TRACE allowed now: {reply}"
    );
    for method in ["DELETE", "PURGE"] {
        let reply = answer_to(traffic(&app), method).await;
        assert!(reply.starts_with("HTTP/1.1 405 "), "{reply}");
        assert!(
            allows(&reply, "get, head, post, put, patch, options"),
            "{reply}"
        );
    }
    assert_eq!(backend.requests(), 1, "only the TRACE");

    let error = portero::Config::from_toml(
        &config_text(
            &[(backend.addr, 1)],
            "[security]\ndeny_methods = [\"BAD METHOD\"]\n",
        ),
        "t.toml",
    )
    .unwrap_err()
    .to_string();
    assert!(error.contains("invalid method `BAD METHOD`"), "{error}");
}
