//! Who may talk to the daemon and how much: PROXY protocol from trusted balancers only, the
//! client address it carries used everywhere, allow/deny lists per daemon and per route,
//! connections per address, and the per-client rate limit (ATTACKS.md rows 53 and 55).
//! Clients come from several loopback addresses (127.0.0.2, .3...) or are named by PROXY
//! headers.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;
use support::backend::TestBackend;
use support::daemon::{config_text, start, traffic};
use support::metric;
use support::metrics::metrics;
use support::source::{connect_from, exchange, get_closing, proxy_v1, proxy_v2, status};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const WAIT: Duration = Duration::from_secs(5);

fn ip(text: &str) -> IpAddr {
    text.parse().unwrap()
}

/// `config_text` with the `http` listener taking PROXY headers from `trusted`.
fn with_proxy_protocol(text: String, trusted: &str) -> String {
    text.replacen(
        "name = \"http\"\naddress = \"127.0.0.1:0\"\n",
        &format!(
            "name = \"http\"\naddress = \"127.0.0.1:0\"\nproxy_protocol = {{ trusted = [\"{trusted}\"] }}\n"
        ),
        1,
    )
}

/// One closing GET from `from`, after `prefix` (a PROXY header, or nothing).
async fn get_from(from: &str, addr: SocketAddr, prefix: &[u8], path: &str) -> (u16, String, bool) {
    let mut stream = connect_from(ip(from), addr).await;
    let (response, closed) =
        exchange(&mut stream, &[prefix, &get_closing(path)].concat(), WAIT).await;
    (status(&response), response, closed)
}

#[tokio::test]
async fn proxy_headers_from_the_balancer_name_the_client_and_nobody_else_may_send_them() {
    let backend = TestBackend::named("app").await;
    let log = tempfile::NamedTempFile::new().unwrap();
    let text = with_proxy_protocol(
        config_text(
            &[(backend.addr, 1)],
            "[security]\ndeny = [\"203.0.113.66/32\"]\n",
        ),
        "127.0.0.1/32",
    )
    .replace(
        "access_log = \"off\"",
        &format!("access_log = \"{}\"", log.path().display()),
    );
    let app = start(&text).await;
    let addr = traffic(&app);

    // v1 and v2 from the trusted balancer: the client they name is X-Forwarded-For.
    let v1 = proxy_v1("198.51.100.7:4000".parse().unwrap(), addr);
    let (code, _, _) = get_from("127.0.0.1", addr, &v1, "/").await;
    assert_eq!(code, 200);
    assert_eq!(backend.last_headers()["x-forwarded-for"], "198.51.100.7");
    let v2 = proxy_v2(
        "198.51.100.8:4001".parse().unwrap(),
        "127.0.0.1:80".parse().unwrap(),
    );
    let (code, _, _) = get_from("127.0.0.1", addr, &v2, "/").await;
    assert_eq!(code, 200);
    assert_eq!(backend.last_headers()["x-forwarded-for"], "198.51.100.8");
    support::wait_until("the access log to name the client", WAIT, || {
        std::fs::read_to_string(log.path())
            .is_ok_and(|l| l.contains("\"client\":\"198.51.100.8:4001\""))
    })
    .await;

    // The deny list applies to the client the header names, not to the balancer.
    let denied = proxy_v1("203.0.113.66:5000".parse().unwrap(), addr);
    let (code, response, closed) = get_from("127.0.0.1", addr, &denied, "/").await;
    assert_eq!(
        (code, response.as_str(), closed),
        (0, "", true),
        "closed unanswered"
    );

    // The trusted balancer must send one; anyone else must not.
    let (code, _, closed) = get_from("127.0.0.1", addr, b"", "/").await;
    assert_eq!((code, closed), (0, true), "a trusted peer without a header");
    let forged = proxy_v1("198.51.100.9:4000".parse().unwrap(), addr);
    let (code, _, closed) = get_from("127.0.0.2", addr, &forged, "/").await;
    assert_eq!(
        (code, closed),
        (400, true),
        "a header from an untrusted peer"
    );
    assert_eq!(backend.requests(), 2, "nothing else reached the backend");

    // Plain clients on the same listener are served as themselves.
    let (code, _, _) = get_from("127.0.0.2", addr, b"", "/").await;
    assert_eq!(code, 200);
    assert_eq!(backend.last_headers()["x-forwarded-for"], "127.0.0.2");

    let m = metrics(&app).await;
    let sample = |result: &str| {
        metric(
            &m,
            &format!("portero_proxy_protocol_total{{listener=\"http\",result=\"{result}\"}}"),
        )
    };
    assert_eq!((sample("ok"), sample("invalid")), (3.0, 1.0), "{m}");
    assert_eq!(
        metric(
            &m,
            "portero_connections_rejected_total{listener=\"http\",reason=\"denied\"}"
        ),
        1.0
    );
}

#[tokio::test]
async fn allow_and_deny_lists_guard_the_daemon_and_each_route() {
    let backend = TestBackend::named("app").await;
    let extra = "[security]\nallow = [\"127.0.0.0/29\"]\ndeny = [\"127.0.0.3/32\"]\n\n\
                 [[route]]\npath_prefix = \"/admin\"\npool = \"app\"\nallow = [\"127.0.0.2/32\"]\n\n\
                 [[route]]\npool = \"app\"\n";
    let app = start(&config_text(&[(backend.addr, 1)], extra)).await;
    let addr = traffic(&app);

    assert_eq!(get_from("127.0.0.2", addr, b"", "/").await.0, 200);
    for outsider in ["127.0.0.3", "127.0.0.9"] {
        let (code, response, closed) = get_from(outsider, addr, b"", "/").await;
        assert_eq!(
            (code, response.as_str(), closed),
            (0, "", true),
            "{outsider}"
        );
    }
    // The route's own list, on the path as normalised: no way around it by spelling.
    assert_eq!(get_from("127.0.0.2", addr, b"", "/admin/x").await.0, 200);
    for path in [
        "/admin/x",
        "//admin",
        "/public/../admin",
        "/public/%2e%2e/admin",
    ] {
        let (code, _, _) = get_from("127.0.0.4", addr, b"", path).await;
        assert_eq!(code, 403, "{path}");
    }
    assert_eq!(get_from("127.0.0.4", addr, b"", "/public").await.0, 200);
    assert_eq!(backend.requests(), 3);
    let m = metrics(&app).await;
    assert_eq!(
        metric(
            &m,
            "portero_connections_rejected_total{listener=\"http\",reason=\"denied\"}"
        ),
        2.0
    );
}

/// A kept-alive GET on `stream`, read up to the end of the backend's 3-byte body.
async fn get_kept_alive(stream: &mut TcpStream) -> String {
    stream
        .write_all(b"GET / HTTP/1.1\r\nHost: test\r\n\r\n")
        .await
        .unwrap();
    let mut out = Vec::new();
    let read = async {
        let mut chunk = [0u8; 1024];
        while !out.ends_with(b"\r\n\r\napp") {
            match stream.read(&mut chunk).await {
                Ok(0) | Err(_) => break,
                Ok(n) => out.extend_from_slice(&chunk[..n]),
            }
        }
    };
    let _ = tokio::time::timeout(WAIT, read).await;
    String::from_utf8_lossy(&out).into_owned()
}

#[tokio::test]
async fn connections_per_address_are_capped() {
    let backend = TestBackend::named("app").await;
    let extra = "[security]\nmax_connections_per_ip = 3\n";
    let app = start(&config_text(&[(backend.addr, 1)], extra)).await;
    let addr = traffic(&app);

    let mut held = Vec::new();
    for _ in 0..3 {
        let mut stream = connect_from(ip("127.0.0.2"), addr).await;
        assert_eq!(status(&get_kept_alive(&mut stream).await), 200);
        held.push(stream);
    }
    let (code, response, closed) = get_from("127.0.0.2", addr, b"", "/").await;
    assert_eq!((code, closed), (429, true), "{response}");
    assert!(response.contains("retry-after: 1"));
    assert_eq!(
        get_from("127.0.0.3", addr, b"", "/").await.0,
        200,
        "another address"
    );

    // A slot comes back when one of the three closes.
    drop(held.pop());
    let mut admitted = false;
    let deadline = std::time::Instant::now() + WAIT;
    while !admitted && std::time::Instant::now() < deadline {
        admitted = get_from("127.0.0.2", addr, b"", "/").await.0 == 200;
    }
    assert!(admitted, "a freed slot is given back");
    let m = metrics(&app).await;
    assert!(
        metric(
            &m,
            "portero_connections_rejected_total{listener=\"http\",reason=\"per_ip_limit\"}"
        ) >= 1.0
    );
}

#[tokio::test]
async fn each_client_gets_its_own_rate_budget_and_a_retry_after() {
    let backend = TestBackend::named("app").await;
    let extra = "[security]\ntrusted_proxies = [\"127.0.0.5/32\"]\n\
                 [security.rate_limit]\nrequests_per_second = 1\nburst = 5\n";
    let app = start(&config_text(&[(backend.addr, 1)], extra)).await;
    let addr = traffic(&app);

    for i in 0..5 {
        assert_eq!(
            get_from("127.0.0.2", addr, b"", "/").await.0,
            200,
            "burst {i}"
        );
    }
    let (code, response, _) = get_from("127.0.0.2", addr, b"", "/").await;
    assert_eq!(code, 429);
    assert!(response.contains("retry-after: 1"), "{response}");
    assert_eq!(
        get_from("127.0.0.3", addr, b"", "/").await.0,
        200,
        "another client"
    );

    // Behind a trusted proxy, the client is the address it forwards for.
    let via = |client: &str| {
        format!(
            "GET / HTTP/1.1\r\nHost: test\r\nX-Forwarded-For: {client}\r\nConnection: close\r\n\r\n"
        )
        .into_bytes()
    };
    for _ in 0..5 {
        let mut stream = connect_from(ip("127.0.0.5"), addr).await;
        let (response, _) = exchange(&mut stream, &via("198.51.100.1"), WAIT).await;
        assert_eq!(status(&response), 200);
    }
    let mut stream = connect_from(ip("127.0.0.5"), addr).await;
    assert_eq!(
        status(&exchange(&mut stream, &via("198.51.100.1"), WAIT).await.0),
        429
    );
    let mut stream = connect_from(ip("127.0.0.5"), addr).await;
    assert_eq!(
        status(&exchange(&mut stream, &via("198.51.100.2"), WAIT).await.0),
        200
    );

    assert_eq!(
        backend.requests(),
        12,
        "refused requests never reach the backend"
    );
    let m = metrics(&app).await;
    assert_eq!(
        metric(
            &m,
            "portero_requests_refused_total{listener=\"http\",reason=\"rate_limited\"}"
        ),
        2.0
    );
    assert_eq!(metric(&m, "portero_rate_limit_tracked_clients"), 4.0);
}
