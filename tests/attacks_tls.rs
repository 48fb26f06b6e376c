//! Hostile TLS (ATTACKS.md rows 50–52): garbage, plaintext and malformed ClientHellos on the
//! TLS port are closed without harm, 0-RTT early data is never offered, and a Host outside
//! the connection's certificate gets 421 by default. Old protocol versions are refused in
//! `tests/tls.rs` (`tls_1_2_and_1_3_are_accepted_and_older_versions_refused`).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper_util::rt::TokioIo;
use rustls::pki_types::ServerName;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use support::backend::TestBackend;
use support::pki::{Ca, https_config, rustls_client};
use support::source::exchange_bytes;
use support::{client, metric};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

/// A TLS 1.3 client trusting `ca`, offering `http/1.1`, with early data on or off.
fn client_config(ca: &Ca, early_data: bool) -> Arc<rustls::ClientConfig> {
    let mut config = Arc::unwrap_or_clone(rustls_client(ca, &[&rustls::version::TLS13]));
    config.enable_early_data = early_data;
    Arc::new(config)
}

/// A GET for `host` over a TLS connection made with SNI `sni`; the status.
async fn get(addr: SocketAddr, config: &Arc<rustls::ClientConfig>, sni: &str, host: &str) -> u16 {
    let tcp = TcpStream::connect(addr).await.unwrap();
    let name = ServerName::try_from(sni.to_string()).unwrap();
    let tls = TlsConnector::from(Arc::clone(config))
        .connect(name, tcp)
        .await
        .unwrap();
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(tls))
        .await
        .unwrap();
    tokio::spawn(connection);
    let request = http::Request::get("/")
        .header("host", host)
        .body(Empty::<Bytes>::new())
        .unwrap();
    let response = sender.send_request(request).await.unwrap();
    let status = response.status().as_u16();
    let _ = response.into_body().collect().await;
    status
}

/// A TLS 1.2-style ClientHello record with `extensions` (type, data) and one cipher suite.
fn client_hello(extensions: &[(u16, Vec<u8>)]) -> Vec<u8> {
    let mut ext = Vec::new();
    for (kind, data) in extensions {
        ext.extend_from_slice(&kind.to_be_bytes());
        ext.extend_from_slice(&(data.len() as u16).to_be_bytes());
        ext.extend_from_slice(data);
    }
    let mut body = vec![0x03, 0x03];
    body.extend_from_slice(&[7u8; 32]); // random
    body.push(0); // session id
    body.extend_from_slice(&[0, 2, 0x13, 0x01]); // TLS_AES_128_GCM_SHA256
    body.extend_from_slice(&[1, 0]); // null compression
    body.extend_from_slice(&(ext.len() as u16).to_be_bytes());
    body.extend_from_slice(&ext);
    let mut handshake = vec![1];
    handshake.extend_from_slice(&(body.len() as u32).to_be_bytes()[1..]);
    handshake.extend_from_slice(&body);
    let mut record = vec![0x16, 0x03, 0x01];
    record.extend_from_slice(&(handshake.len() as u16).to_be_bytes());
    record.extend_from_slice(&handshake);
    record
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn row_50_garbage_plaintext_and_malformed_hellos_are_closed_harmlessly() {
    let ca = Ca::new("test ca");
    let leaf = ca.issue("a", "a-cert", &["a.test"], 1);
    let backend = TestBackend::named("app").await;
    let app = support::daemon::start(&https_config(&[&leaf], "", backend.addr, "")).await;
    let addr = app.listener_addr("https").unwrap();

    let many: Vec<(u16, Vec<u8>)> = (0..500u16).map(|i| (0xfa00 + i, vec![])).collect();
    let repeated: Vec<(u16, Vec<u8>)> = (0..3).map(|_| (0x000a, vec![0, 2, 0, 0x1d])).collect();
    let mut lying = client_hello(&[]);
    lying[3] = 0xff; // the record claims more than follows
    let cases: Vec<(&str, Vec<u8>)> = vec![
        (
            "plaintext HTTP",
            b"GET / HTTP/1.1\r\nHost: a.test\r\n\r\n".to_vec(),
        ),
        (
            "random bytes",
            (0..4096u32).map(|i| (i * 7919 % 251) as u8).collect(),
        ),
        (
            "SSLv2 hello",
            vec![
                0x80, 0x2e, 0x01, 0x00, 0x02, 0x00, 0x15, 0x00, 0x00, 0x00, 0x10,
            ],
        ),
        ("SSLv3 record", {
            let mut h = client_hello(&[]);
            h[2] = 0x00;
            h[10] = 0x00; // hello version 3.0
            h
        }),
        ("500 unknown extensions", client_hello(&many)),
        ("repeated extension", client_hello(&repeated)),
        ("truncated record", lying),
    ];
    for (case, bytes) in &cases {
        let mut stream = TcpStream::connect(addr).await.unwrap();
        let (answer, closed) = exchange_bytes(&mut stream, bytes, Duration::from_secs(5)).await;
        assert!(closed, "{case}: closed");
        // At most a TLS alert record (content type 21), never HTTP or a handshake.
        assert!(
            answer.is_empty() || answer[0] == 0x15,
            "{case}: answered {:?}",
            &answer[..answer.len().min(16)]
        );
    }
    assert_eq!(backend.requests(), 0, "nothing reached the backend");
    let m = client::get(app.admin_addr(), "/metrics").await.body;
    assert!(
        metric(
            &m,
            "portero_tls_handshakes_total{listener=\"https\",result=\"error\",version=\"none\"}"
        ) >= cases.len() as f64,
        "{m}"
    );
    let good = client_config(&ca, false);
    assert_eq!(
        get(addr, &good, "a.test", "a.test").await,
        200,
        "still serving"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn row_51_early_data_is_never_offered() {
    let ca = Ca::new("test ca");
    let leaf = ca.issue("a", "a-cert", &["a.test"], 1);
    let backend = TestBackend::named("app").await;
    let app = support::daemon::start(&https_config(&[&leaf], "", backend.addr, "")).await;
    let addr = app.listener_addr("https").unwrap();
    // A client that would send 0-RTT data if the server's tickets allowed it.
    let eager = client_config(&ca, true);
    assert_eq!(get(addr, &eager, "a.test", "a.test").await, 200);

    let name = ServerName::try_from("a.test").unwrap();
    let mut session = rustls::ClientConnection::new(Arc::clone(&eager), name).unwrap();
    assert!(
        session.early_data().is_none(),
        "the ticket from the first connection allows no early data"
    );
    let resumed = tokio::task::spawn_blocking(move || {
        let mut tcp = std::net::TcpStream::connect(addr).unwrap();
        tcp.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        while session.is_handshaking() {
            session.complete_io(&mut tcp).unwrap();
        }
        (session.handshake_kind(), session.is_early_data_accepted())
    })
    .await
    .unwrap();
    assert_eq!(
        resumed,
        (Some(rustls::HandshakeKind::Resumed), false),
        "a resumed session (so a ticket existed), without early data"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn row_52_a_host_outside_the_certificate_is_misdirected_by_default() {
    let ca = Ca::new("test ca");
    let a = ca.issue("a", "a-cert", &["a.test"], 1);
    let b = ca.issue("b", "b-cert", &["b.test"], 2);
    let backend = TestBackend::named("app").await;
    let app = support::daemon::start(&https_config(&[&a, &b], "", backend.addr, "")).await;
    let addr = app.listener_addr("https").unwrap();
    let client = client_config(&ca, false);
    assert_eq!(get(addr, &client, "a.test", "a.test").await, 200);
    assert_eq!(get(addr, &client, "b.test", "b.test").await, 200);
    assert_eq!(
        get(addr, &client, "a.test", "b.test").await,
        421,
        "SNI a, Host b"
    );
    assert_eq!(
        get(addr, &client, "b.test", "a.test:443").await,
        421,
        "SNI b, Host a"
    );
    assert_eq!(backend.requests(), 2);
}
