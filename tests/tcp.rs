//! `protocol = "tcp"` listeners on the wire: bytes both ways with a half-close, least
//! connections over the pool, a failed connect retried on another backend, the PROXY header
//! a backend asks for, the idle limit, and what each session leaves in the metrics. The
//! backends are plain tokio sockets, no HTTP at all; tests/data_tier.rs runs real Redis.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;
use support::metrics::{metric_reaches, metric_sum};
use support::{bounded, daemon};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// A backend that reads everything the client sends until its half-close, then answers
/// `<name>:<bytes read>` and closes. Counts the sessions it holds open.
struct Echo {
    addr: SocketAddr,
    open: Arc<AtomicUsize>,
    served: Arc<AtomicUsize>,
}

impl Echo {
    async fn start(name: &'static str) -> Echo {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let open = Arc::new(AtomicUsize::new(0));
        let served = Arc::new(AtomicUsize::new(0));
        let (o, s) = (Arc::clone(&open), Arc::clone(&served));
        tokio::spawn(async move {
            while let Ok((mut stream, _)) = listener.accept().await {
                let (open, served) = (Arc::clone(&o), Arc::clone(&s));
                tokio::spawn(async move {
                    open.fetch_add(1, Ordering::SeqCst);
                    let mut seen = Vec::new();
                    let read = stream.read_to_end(&mut seen).await;
                    if read.is_ok() {
                        let reply = format!("{name}:{}", seen.len());
                        let _ = stream.write_all(reply.as_bytes()).await;
                        let _ = stream.shutdown().await;
                        served.fetch_add(1, Ordering::SeqCst);
                    }
                    open.fetch_sub(1, Ordering::SeqCst);
                });
            }
        });
        Echo { addr, open, served }
    }
}

/// A config with one tcp listener `db` over the pool `db` of `backends`; `extra` goes into
/// the pool's table, then `tail` after it.
fn tcp_config(backends: &[SocketAddr], extra: &str, tail: &str) -> String {
    let list: Vec<String> = backends.iter().map(|a| format!("\"{a}\"")).collect();
    format!(
        "[admin]\naddress = \"127.0.0.1:0\"\n\n[log]\naccess_log = \"off\"\n\n\
         [[listener]]\nname = \"db\"\naddress = \"127.0.0.1:0\"\nprotocol = \"tcp\"\npool = \"db\"\n\n\
         [pool.db]\nbackends = [{}]\n{extra}\n{tail}\n",
        list.join(", ")
    )
}

/// Sends `payload`, half-closes, and reads the answer to its end.
async fn exchange(to: SocketAddr, payload: &[u8]) -> String {
    let mut stream = TcpStream::connect(to).await.unwrap();
    stream.write_all(payload).await.unwrap();
    stream.shutdown().await.unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).await.unwrap();
    answer
}

#[tokio::test]
async fn bytes_go_both_ways_and_a_half_close_reaches_the_backend() {
    bounded(async {
        let backend = Echo::start("one").await;
        let app = daemon::start(&tcp_config(&[backend.addr], "", "")).await;
        let listener = app.listener_addr("db").unwrap();
        // 1 MiB up: the backend answers only once it has read the client's half-close.
        let payload = vec![7u8; 1 << 20];
        assert_eq!(
            exchange(listener, &payload).await,
            format!("one:{}", 1 << 20)
        );
        metric_reaches(
            &app,
            "portero_tcp_sessions_total",
            "end=\"closed\"",
            1.0,
            Duration::from_secs(5),
        )
        .await;
        let up = metric_sum(&app, "portero_tcp_bytes_total", "direction=\"to_backend\"").await;
        let down = metric_sum(&app, "portero_tcp_bytes_total", "direction=\"to_client\"").await;
        assert_eq!(
            (up, down),
            ((1u64 << 20) as f64, "one:1048576".len() as f64)
        );
        assert_eq!(
            metric_sum(&app, "portero_tcp_sessions_open", "listener=\"db\"").await,
            0.0
        );
        assert_eq!(
            metric_sum(
                &app,
                "portero_tcp_session_duration_seconds_count",
                "listener=\"db\""
            )
            .await,
            1.0
        );
    })
    .await;
}

#[tokio::test]
async fn sessions_spread_by_least_connections() {
    bounded(async {
        let (a, b) = (Echo::start("a").await, Echo::start("b").await);
        let app = daemon::start(&tcp_config(&[a.addr, b.addr], "", "")).await;
        let listener = app.listener_addr("db").unwrap();
        // Six sessions held open, one after the other: each goes where fewer are open.
        let mut held = Vec::new();
        for n in 1..=6 {
            held.push(TcpStream::connect(listener).await.unwrap());
            support::wait_until(
                "the backends to hold the session",
                Duration::from_secs(5),
                || a.open.load(Ordering::SeqCst) + b.open.load(Ordering::SeqCst) == n,
            )
            .await;
        }
        assert_eq!(
            (a.open.load(Ordering::SeqCst), b.open.load(Ordering::SeqCst)),
            (3, 3)
        );
        // Closing the clients ends every session at both ends.
        drop(held);
        support::wait_until("every session to end", Duration::from_secs(5), || {
            a.open.load(Ordering::SeqCst) + b.open.load(Ordering::SeqCst) == 0
        })
        .await;
        assert_eq!(
            a.served.load(Ordering::SeqCst) + b.served.load(Ordering::SeqCst),
            6
        );
    })
    .await;
}

#[tokio::test]
async fn a_failed_connect_is_retried_on_another_backend_and_counted() {
    bounded(async {
        let live = Echo::start("live").await;
        // A port nobody listens on: bound, then closed.
        let dead = TcpListener::bind("127.0.0.1:0")
            .await
            .unwrap()
            .local_addr()
            .unwrap();
        let config = tcp_config(
            &[dead, live.addr],
            "balance = \"round_robin\"\nretries = 1\n[pool.db.outlier]\nconsecutive_failures = 2\n",
            "",
        );
        let app = daemon::start(&config).await;
        let listener = app.listener_addr("db").unwrap();
        for _ in 0..6 {
            assert_eq!(exchange(listener, b"ping").await, "live:4");
        }
        let errors = metric_sum(
            &app,
            "portero_tcp_connect_errors_total",
            &format!("backend=\"{dead}\""),
        )
        .await;
        assert_eq!(
            errors, 2.0,
            "two failed connects in a row eject the dead backend"
        );
        let ejected = metric_sum(
            &app,
            "portero_backend_transitions_total",
            &format!("backend=\"{dead}\",pool=\"db\",reason=\"outlier\""),
        )
        .await;
        assert_eq!(ejected, 1.0);
        assert_eq!(
            metric_sum(&app, "portero_tcp_sessions_refused_total", "").await,
            0.0
        );
    })
    .await;
}

#[tokio::test]
async fn no_healthy_backend_closes_the_session_and_counts_it() {
    bounded(async {
        let dead = TcpListener::bind("127.0.0.1:0")
            .await
            .unwrap()
            .local_addr()
            .unwrap();
        let app = daemon::start(&tcp_config(&[dead], "retries = 0\n", "")).await;
        let listener = app.listener_addr("db").unwrap();
        let mut stream = TcpStream::connect(listener).await.unwrap();
        let mut rest = Vec::new();
        let read = stream.read_to_end(&mut rest).await;
        assert!(
            read.is_ok_and(|n| n == 0),
            "closed without a byte: no HTTP 503 on a tcp listener"
        );
        metric_reaches(
            &app,
            "portero_tcp_sessions_refused_total",
            "reason=\"connect_failed\"",
            1.0,
            Duration::from_secs(5),
        )
        .await;
    })
    .await;
}

#[tokio::test]
async fn a_pool_can_send_the_client_address_in_a_proxy_header() {
    bounded(async {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let backend = listener.local_addr().unwrap();
        let header = tokio::spawn(async move {
            let (mut stream, _) = listener.accept().await.unwrap();
            let mut seen = Vec::new();
            stream.read_to_end(&mut seen).await.unwrap();
            seen
        });
        let app = daemon::start(&tcp_config(
            &[backend],
            "send_proxy_protocol = \"v1\"\n",
            "",
        ))
        .await;
        let front = app.listener_addr("db").unwrap();
        let mut client = TcpStream::connect(front).await.unwrap();
        let me = client.local_addr().unwrap();
        client.write_all(b"HELLO").await.unwrap();
        client.shutdown().await.unwrap();
        let seen = String::from_utf8(header.await.unwrap()).unwrap();
        assert_eq!(
            seen,
            format!(
                "PROXY TCP4 {} {} {} {}\r\nHELLO",
                me.ip(),
                front.ip(),
                me.port(),
                front.port()
            )
        );
    })
    .await;
}

#[tokio::test]
async fn a_quiet_session_is_closed_at_tcp_idle() {
    bounded(async {
        let backend = Echo::start("one").await;
        let config = tcp_config(&[backend.addr], "", "[timeouts]\ntcp_idle = \"300ms\"\n");
        let app = daemon::start(&config).await;
        let mut stream = TcpStream::connect(app.listener_addr("db").unwrap())
            .await
            .unwrap();
        stream.write_all(b"some").await.unwrap();
        // Nothing more either way: portero closes it; the read sees the end.
        let mut rest = Vec::new();
        let read =
            tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut rest)).await;
        assert!(read.is_ok(), "the quiet session was not closed");
        metric_reaches(
            &app,
            "portero_tcp_sessions_total",
            "end=\"idle\"",
            1.0,
            Duration::from_secs(5),
        )
        .await;
    })
    .await;
}

#[test]
fn tcp_listeners_are_validated() {
    let bad = |text: &str| {
        portero::Config::from_toml(text, "t.toml")
            .unwrap_err()
            .to_string()
    };
    let base = "[[listener]]\naddress = \"127.0.0.1:0\"\nprotocol = \"tcp\"\n";
    let pool = "[pool.db]\nbackends = [\"127.0.0.1:6379\"]\n";
    assert!(bad(&format!("{base}{pool}")).contains("needs `pool`"));
    assert!(
        bad(&format!("{base}pool = \"nope\"\n{pool}"))
            .contains("pool `nope`, which does not exist")
    );
    let tls = format!("{base}pool = \"db\"\nhttp_redirect = true\n{pool}");
    assert!(bad(&tls).contains("`http_redirect` is for HTTP listeners"));
    let passthrough = "[[listener]]\naddress = \"127.0.0.1:0\"\nprotocol = \"tls-passthrough\"\n";
    assert!(bad(&format!("{passthrough}{pool}")).contains("needs `sni` rules, a default `pool`"));
    let bad_name = format!("{passthrough}sni = [{{ name = \"a b\", pool = \"db\" }}]\n{pool}");
    assert!(bad(&bad_name).contains("invalid sni name `a b`"));
    let sni_on_tcp =
        format!("{base}pool = \"db\"\nsni = [{{ name = \"a.test\", pool = \"db\" }}]\n{pool}");
    assert!(bad(&sni_on_tcp).contains("`sni` is for protocol = \"tls-passthrough\""));
    let hash = format!(
        "{base}pool = \"db\"\n{pool}balance = \"consistent_hash\"\nhash_key = \"header:x\"\n"
    );
    assert!(bad(&hash).contains("can only be \"client_ip\""));
    let http_pool_key =
        format!("[[listener]]\naddress = \"127.0.0.1:0\"\n{pool}send_proxy_protocol = \"v2\"\n");
    assert!(bad(&http_pool_key).contains("is for pools of protocol = \"tcp\" listeners"));
    // A tcp pool beside one HTTP pool: HTTP still gets its catch-all route, and a route may
    // not name the tcp pool.
    let mixed = format!(
        "[[listener]]\naddress = \"127.0.0.1:0\"\n\
         [[listener]]\nname = \"db\"\naddress = \"127.0.0.1:0\"\nprotocol = \"tcp\"\npool = \"db\"\n\
         {pool}[pool.web]\nbackends = [\"127.0.0.1:8080\"]\n"
    );
    let config = portero::Config::from_toml(&mixed, "t.toml").unwrap();
    assert_eq!(config.routes.len(), 1);
    assert_eq!(config.routes[0].pool, "web");
    assert_eq!(
        config.pools["db"].balance,
        portero::config::Balance::LeastConn
    );
    let routed = format!("{mixed}[[route]]\npool = \"db\"\n");
    assert!(bad(&routed).contains("which a tcp or tls-passthrough listener uses"));
    // Only tcp listeners: no route needed.
    let only = format!("{base}pool = \"db\"\n{pool}");
    assert!(
        portero::Config::from_toml(&only, "t.toml")
            .unwrap()
            .routes
            .is_empty()
    );
}

#[tokio::test]
async fn shutdown_lets_an_open_session_carry_on_until_the_drain_deadline() {
    bounded(async {
        let backend = echo_lines().await;
        let config = tcp_config(&[backend], "", "[timeouts]\ndrain = \"1s\"\n");
        let app = daemon::start(&config).await;
        let front = app.listener_addr("db").unwrap();
        let mut session = TcpStream::connect(front).await.unwrap();
        let mut echo = [0u8; 4];
        session.write_all(b"one\n").await.unwrap();
        session.read_exact(&mut echo).await.unwrap();
        let stopping = tokio::spawn({
            let app = Arc::clone(&app);
            async move { app.shutdown(Duration::ZERO).await }
        });
        // Listeners close at once: no new session.
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        while TcpStream::connect(front).await.is_ok() {
            assert!(
                std::time::Instant::now() < deadline,
                "the listener stayed open"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        // The open one still carries bytes during the drain...
        session.write_all(b"two\n").await.unwrap();
        session.read_exact(&mut echo).await.unwrap();
        assert_eq!(&echo, b"two\n");
        // ...and is closed at its deadline, counted as such.
        let mut rest = Vec::new();
        let closed =
            tokio::time::timeout(Duration::from_secs(10), session.read_to_end(&mut rest)).await;
        assert!(closed.is_ok(), "the session outlived the drain deadline");
        stopping.await.unwrap();
        // The admin listener is gone with the rest: the registry is read directly.
        let text = app.metrics().encode();
        let ended = text
            .lines()
            .filter(|l| {
                l.starts_with("portero_tcp_sessions_total{") && l.contains("end=\"shutdown\"")
            })
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum::<f64>();
        assert_eq!(ended, 1.0, "{text}");
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bulk_bytes_both_ways_at_once_arrive_whole_and_in_order() {
    bounded(async {
        let backend = echo_lines().await;
        let app = daemon::start(&tcp_config(&[backend], "", "")).await;
        let front = app.listener_addr("db").unwrap();
        // Four sessions at once, each 16 MiB up and the same 16 MiB back while it is sent:
        // a direction that stalls fails the bound, and every byte must come back in order.
        const SIZE: usize = 16 << 20;
        let sessions = (0..4u8).map(|seed| {
            tokio::spawn(async move {
                let (mut read, mut write) = TcpStream::connect(front).await.unwrap().into_split();
                let pattern: Vec<u8> = (0..SIZE)
                    .map(|i| (i as u8).wrapping_mul(31) ^ seed)
                    .collect();
                let sent = pattern.clone();
                let sender = tokio::spawn(async move {
                    for chunk in sent.chunks(100_003) {
                        write.write_all(chunk).await.unwrap();
                    }
                    write.shutdown().await.unwrap();
                });
                let mut back = Vec::with_capacity(SIZE);
                read.read_to_end(&mut back).await.unwrap();
                sender.await.unwrap();
                assert!(
                    back == pattern,
                    "session {seed}: {} bytes back, not the {SIZE} sent",
                    back.len()
                );
            })
        });
        for session in sessions.collect::<Vec<_>>() {
            session.await.unwrap();
        }
        let up = metric_sum(&app, "portero_tcp_bytes_total", "direction=\"to_backend\"").await;
        assert_eq!(up, (4 * SIZE) as f64);
    })
    .await;
}

/// An echo backend: every byte it reads goes straight back.
async fn echo_lines() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            tokio::spawn(async move {
                let (mut read, mut write) = stream.into_split();
                let _ = tokio::io::copy(&mut read, &mut write).await;
            });
        }
    });
    addr
}

#[tokio::test]
async fn a_backend_removed_by_reload_keeps_its_session_until_the_drain_deadline() {
    bounded(async {
        let (old, new) = (echo_lines().await, echo_lines().await);
        let text =
            |backend: SocketAddr| tcp_config(&[backend], "", "[timeouts]\ndrain = \"500ms\"\n");
        let (app, file) = daemon::start_with_file(&text(old)).await;
        let front = app.listener_addr("db").unwrap();
        let mut session = TcpStream::connect(front).await.unwrap();
        let mut echo = [0u8; 4];
        session.write_all(b"one\n").await.unwrap();
        session.read_exact(&mut echo).await.unwrap();
        std::fs::write(file.path(), text(new)).unwrap();
        app.reload("test").await.unwrap();
        // New sessions go to the new backend at once; the old one's session goes on...
        let mut fresh = TcpStream::connect(front).await.unwrap();
        fresh.write_all(b"new\n").await.unwrap();
        fresh.read_exact(&mut echo).await.unwrap();
        session.write_all(b"two\n").await.unwrap();
        session.read_exact(&mut echo).await.unwrap();
        assert_eq!(&echo, b"two\n");
        // ...until the drain deadline cuts it, counted as such; the new one stays open.
        let mut rest = Vec::new();
        let cut =
            tokio::time::timeout(Duration::from_secs(10), session.read_to_end(&mut rest)).await;
        assert!(
            cut.is_ok(),
            "the removed backend's session outlived the drain"
        );
        metric_reaches(
            &app,
            "portero_tcp_sessions_total",
            "end=\"backend_removed\"",
            1.0,
            Duration::from_secs(5),
        )
        .await;
        fresh.write_all(b"yes\n").await.unwrap();
        fresh.read_exact(&mut echo).await.unwrap();
        assert_eq!(&echo, b"yes\n");
    })
    .await;
}

#[tokio::test]
async fn each_session_writes_one_access_log_line() {
    bounded(async {
        let backend = Echo::start("one").await;
        let log = tempfile::NamedTempFile::new().unwrap();
        let config = tcp_config(&[backend.addr], "", "").replace(
            "access_log = \"off\"",
            &format!("access_log = \"{}\"", log.path().display()),
        );
        let app = daemon::start(&config).await;
        let front = app.listener_addr("db").unwrap();
        assert_eq!(exchange(front, b"hello").await, "one:5");
        let line = {
            let deadline = std::time::Instant::now() + Duration::from_secs(10);
            loop {
                let text = std::fs::read_to_string(log.path()).unwrap();
                if let Some(line) = text.lines().next() {
                    break line.to_string();
                }
                assert!(std::time::Instant::now() < deadline, "no access log line");
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        };
        let record: serde_json::Value = serde_json::from_str(&line).unwrap();
        assert_eq!(record["protocol"], "tcp");
        assert_eq!(record["listener"], "db");
        assert_eq!(record["pool"], "db");
        assert_eq!(record["backend"], backend.addr.to_string());
        assert_eq!(record["end"], "closed");
        assert_eq!(
            (record["bytes_in"].as_u64(), record["bytes_out"].as_u64()),
            (Some(5), Some(5))
        );
        assert!(record["client"].as_str().unwrap().starts_with("127.0.0.1:"));
    })
    .await;
}
