//! The active health probe on the wire: what request a backend gets, and which answers pass.
//! The backends here route on the raw request target, as Python's `http.server` and Node's
//! `http` do, so an absolute-form probe (`GET http://host/healthz`) misses the health route;
//! tests/peers_backends.rs runs the real Python, Node, nginx and ASGI servers.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use bytes::Bytes;
use http::{Response, StatusCode};
use http_body_util::Full;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use support::client;
use support::daemon::{config_text, start, traffic};
use support::status::{state, wait_for_state};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

/// An HTTP/1.1 backend that routes on the raw request target: `/healthz` answers the
/// configured health reply, anything else 200 `app`. Records every request line and head.
struct RawRouter {
    addr: SocketAddr,
    health: Arc<Mutex<(u16, &'static str)>>,
    heads: Arc<Mutex<Vec<String>>>,
    served: Arc<AtomicU64>,
}

impl RawRouter {
    async fn start() -> RawRouter {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let router = RawRouter {
            addr: listener.local_addr().unwrap(),
            health: Arc::new(Mutex::new((200, "ok"))),
            heads: Arc::default(),
            served: Arc::default(),
        };
        let (health, heads, served) = (
            Arc::clone(&router.health),
            Arc::clone(&router.heads),
            Arc::clone(&router.served),
        );
        tokio::spawn(async move {
            loop {
                let Ok((mut stream, _)) = listener.accept().await else {
                    return;
                };
                let (health, heads, served) =
                    (Arc::clone(&health), Arc::clone(&heads), Arc::clone(&served));
                tokio::spawn(async move {
                    let mut head = Vec::new();
                    let mut buf = [0u8; 4096];
                    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                        match stream.read(&mut buf).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => head.extend_from_slice(&buf[..n]),
                        }
                    }
                    let head = String::from_utf8_lossy(&head).into_owned();
                    let target = head.split(' ').nth(1).unwrap_or_default().to_string();
                    heads.lock().unwrap().push(head);
                    let (status, body) = if target.split('?').next() == Some("/healthz") {
                        *health.lock().unwrap()
                    } else {
                        served.fetch_add(1, Ordering::SeqCst);
                        (200, "app")
                    };
                    let reply = format!(
                        "HTTP/1.1 {status} X\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                        body.len()
                    );
                    let _ = stream.write_all(reply.as_bytes()).await;
                });
            }
        });
        router
    }

    fn set_health(&self, status: u16, body: &'static str) {
        *self.health.lock().unwrap() = (status, body);
    }

    fn health_heads(&self) -> Vec<String> {
        let heads = self.heads.lock().unwrap();
        heads
            .iter()
            .filter(|h| h.contains("/healthz"))
            .cloned()
            .collect()
    }
}

fn checked(backend: SocketAddr, check: &str) -> String {
    config_text(
        &[(backend, 1)],
        &format!(
            "[pool.app.health_check]\ninterval = \"50ms\"\ntimeout = \"500ms\"\nrise = 1\nfall = 2\n{check}"
        ),
    )
}

#[tokio::test]
async fn http1_probe_is_origin_form_with_host_and_connection_close() {
    let backend = RawRouter::start().await;
    let app = start(&checked(
        backend.addr,
        "path = \"/healthz?deep=1\"\nhost = \"api.internal\"\n",
    ))
    .await;
    support::wait_until("a health check", Duration::from_secs(10), || {
        !backend.health_heads().is_empty()
    })
    .await;
    let head = backend.health_heads().remove(0);
    assert!(
        head.starts_with("GET /healthz?deep=1 HTTP/1.1\r\n"),
        "not origin-form: {head:?}"
    );
    let lower = head.to_ascii_lowercase();
    assert!(lower.contains("\r\nhost: api.internal\r\n"), "{head:?}");
    assert!(lower.contains("\r\nconnection: close\r\n"), "{head:?}");
    assert_eq!(state(&app, backend.addr).await, "healthy");
}

#[tokio::test]
async fn a_sick_health_route_behind_a_catch_all_is_ejected_and_gets_no_traffic() {
    let sick = RawRouter::start().await;
    sick.set_health(503, "down");
    let well = RawRouter::start().await;
    let text = config_text(
        &[(sick.addr, 1), (well.addr, 1)],
        "[pool.app.health_check]\npath = \"/healthz\"\ninterval = \"50ms\"\ntimeout = \"500ms\"\nrise = 1\nfall = 2\n",
    );
    let app = start(&text).await;
    wait_for_state(&app, sick.addr, "unhealthy").await;
    wait_for_state(&app, well.addr, "healthy").await;
    for _ in 0..20 {
        assert_eq!(client::get(traffic(&app), "/").await.status, 200);
    }
    assert_eq!(sick.served.load(Ordering::SeqCst), 0, "traffic reached it");
    assert_eq!(well.served.load(Ordering::SeqCst), 20);

    sick.set_health(200, "ok");
    wait_for_state(&app, sick.addr, "healthy").await;
}

#[tokio::test]
async fn expect_status_and_expect_body_decide_the_verdict() {
    let backend = RawRouter::start().await;
    backend.set_health(204, "");
    let app = start(&checked(
        backend.addr,
        "path = \"/healthz\"\nexpect_status = \"200\"\n",
    ))
    .await;
    // 204 is a 2xx, but the check asks for exactly 200.
    wait_for_state(&app, backend.addr, "unhealthy").await;
    backend.set_health(200, "");
    wait_for_state(&app, backend.addr, "healthy").await;
    drop(app);

    let backend = RawRouter::start().await;
    backend.set_health(200, "status: degraded");
    let app = start(&checked(
        backend.addr,
        "path = \"/healthz\"\nexpect_body = \"status: ok\"\n",
    ))
    .await;
    wait_for_state(&app, backend.addr, "unhealthy").await;
    backend.set_health(200, "{\"x\": 1, status: ok}");
    wait_for_state(&app, backend.addr, "healthy").await;
}

/// An HTTP/2-only backend (no HTTP/1 at all): a check that spoke HTTP/1.1 to it would fail.
async fn h2_only_backend(
    health: Arc<Mutex<u16>>,
    authorities: Arc<Mutex<Vec<String>>>,
) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let (health, authorities) = (Arc::clone(&health), Arc::clone(&authorities));
            let service = service_fn(move |request: http::Request<hyper::body::Incoming>| {
                let status = if request.uri().path() == "/healthz" {
                    authorities.lock().unwrap().push(
                        request
                            .uri()
                            .authority()
                            .map(|a| a.to_string())
                            .unwrap_or_default(),
                    );
                    *health.lock().unwrap()
                } else {
                    200
                };
                let mut response = Response::new(Full::new(Bytes::from_static(b"h2")));
                *response.status_mut() = StatusCode::from_u16(status).unwrap();
                async move { Ok::<_, Infallible>(response) }
            });
            tokio::spawn(
                hyper::server::conn::http2::Builder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(stream), service),
            );
        }
    });
    addr
}

#[tokio::test]
async fn h2c_pools_are_probed_over_http2_with_the_configured_authority() {
    let health = Arc::new(Mutex::new(200));
    let authorities = Arc::new(Mutex::new(Vec::new()));
    let addr = h2_only_backend(Arc::clone(&health), Arc::clone(&authorities)).await;
    let text = checked(
        addr,
        "path = \"/healthz\"\nhost = \"grpc.internal:50051\"\n",
    )
    .replace("[pool.app]\n", "[pool.app]\nprotocol = \"h2c\"\n");
    let app = start(&text).await;
    wait_for_state(&app, addr, "healthy").await;
    assert_eq!(authorities.lock().unwrap()[0], "grpc.internal:50051");
    *health.lock().unwrap() = 503;
    wait_for_state(&app, addr, "unhealthy").await;
    *health.lock().unwrap() = 200;
    wait_for_state(&app, addr, "healthy").await;
}

#[test]
fn health_check_keys_are_validated_with_their_position() {
    let bad = |check: &str| {
        let text = checked("127.0.0.1:1".parse().unwrap(), check);
        portero::Config::from_toml(&text, "t.toml")
            .unwrap_err()
            .to_string()
    };
    let error = bad("path = \"/healthz\"\nexpect_status = \"2xx\"\n");
    assert!(error.contains("invalid expect_status `2xx`"), "{error}");
    let error = bad("path = \"/healthz\"\nhost = \"user@host\"\n");
    assert!(error.contains("invalid health_check.host"), "{error}");
    let error = bad("path = \"http://a/healthz\"\n");
    assert!(error.contains("origin-form"), "{error}");
    let error = bad("expect_body = \"ok\"\n");
    assert!(error.contains("needs `path`"), "{error}");
}
