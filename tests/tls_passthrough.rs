//! `protocol = "tls-passthrough"`: two TLS origins with their own names behind one listener,
//! reached by the ClientHello's server name, with each certificate checked end to end by the
//! client (rustls, and `openssl s_client`); and the hostile first flights: not TLS, a hello
//! in 1-byte pieces, an oversized hello, a hello that never ends, and a backend that accepts
//! and never reads. portero never holds a key here: the origins terminate TLS.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use rustls::pki_types::pem::PemObject;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use support::metrics::metric_reaches;
use support::pki::{Ca, Leaf, rustls_client};
use support::{bounded, daemon, require_tool};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::{TlsAcceptor, TlsConnector};

/// A TLS origin that answers each connection's first line with its own name.
async fn origin(leaf: &Leaf, name: &'static str) -> SocketAddr {
    let certs = portero::tls::load_chain(&leaf.cert).unwrap();
    let key = rustls::pki_types::PrivateKeyDer::from_pem_file(&leaf.key).unwrap();
    let config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::aws_lc_rs::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_no_client_auth()
    .with_single_cert(certs, key)
    .unwrap();
    let acceptor = TlsAcceptor::from(Arc::new(config));
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                let Ok(mut tls) = acceptor.accept(stream).await else {
                    return;
                };
                let mut line = [0u8; 64];
                if tls.read(&mut line).await.unwrap_or(0) > 0 {
                    let _ = tls.write_all(format!("{name}\n").as_bytes()).await;
                    let _ = tls.shutdown().await;
                }
            });
        }
    });
    addr
}

/// Two origins, `a.db.test` (pool `a`, by an exact rule) and anything under `*.b.test`
/// (pool `b`, by a wildcard, and the default pool), behind one passthrough listener.
struct Rig {
    ca: Ca,
    app: Arc<portero::App>,
    front: SocketAddr,
}

async fn rig(extra: &str) -> Rig {
    let ca = Ca::new("passthrough test CA");
    let a = ca.issue("a", "a.db.test", &["a.db.test"], 1);
    let b = ca.issue("b", "x.b.test", &["*.b.test"], 2);
    let (a, b) = (origin(&a, "origin-a").await, origin(&b, "origin-b").await);
    let config = format!(
        "[admin]\naddress = \"127.0.0.1:0\"\n[log]\naccess_log = \"off\"\n\
         [[listener]]\nname = \"tls\"\naddress = \"127.0.0.1:0\"\nprotocol = \"tls-passthrough\"\npool = \"b\"\n\
         sni = [{{ name = \"a.db.test\", pool = \"a\" }}, {{ name = \"*.b.test\", pool = \"b\" }}]\n\
         [pool.a]\nbackends = [\"{a}\"]\n[pool.b]\nbackends = [\"{b}\"]\n{extra}\n"
    );
    let app = daemon::start(&config).await;
    let front = app.listener_addr("tls").unwrap();
    Rig { ca, app, front }
}

/// Opens TLS to `name` through the listener, the certificate checked against the test CA.
async fn ask(rig: &Rig, name: &str) -> std::io::Result<String> {
    let connector = TlsConnector::from(rustls_client(&rig.ca, rustls::ALL_VERSIONS));
    let stream = TcpStream::connect(rig.front).await?;
    let server = rustls::pki_types::ServerName::try_from(name.to_string()).unwrap();
    let mut tls = connector.connect(server, stream).await?;
    tls.write_all(b"hello\n").await?;
    let mut answer = String::new();
    tls.read_to_string(&mut answer).await?;
    Ok(answer)
}

#[tokio::test]
async fn sessions_reach_the_origin_their_server_name_names() {
    bounded(async {
        let rig = rig("").await;
        assert_eq!(ask(&rig, "a.db.test").await.unwrap(), "origin-a\n");
        assert_eq!(ask(&rig, "x.b.test").await.unwrap(), "origin-b\n");
        assert_eq!(ask(&rig, "y.b.test").await.unwrap(), "origin-b\n");
        // A name no rule matches goes to the default pool, whose certificate does not cover
        // it: the client refuses it. portero forwarded the hello untouched; it cannot vouch.
        let wrong = ask(&rig, "c.db.test").await;
        assert!(
            wrong.is_err(),
            "the client must refuse origin-b's certificate for c.db.test"
        );
    })
    .await;
}

#[tokio::test]
async fn openssl_s_client_verifies_the_origin_through_the_listener() {
    if !require_tool("openssl") {
        return;
    }
    bounded(async {
        let rig = rig("").await;
        let ca = rig.ca.file();
        let front = rig.front;
        let output = tokio::task::spawn_blocking(move || {
            let mut child = std::process::Command::new("openssl")
                .args([
                    "s_client",
                    "-connect",
                    &front.to_string(),
                    "-servername",
                    "a.db.test",
                ])
                .args([
                    "-verify_return_error",
                    "-verify_hostname",
                    "a.db.test",
                    "-CAfile",
                ])
                .arg(ca)
                .arg("-quiet")
                .stdin(std::process::Stdio::piped())
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .unwrap();
            use std::io::Write;
            child.stdin.take().unwrap().write_all(b"hello\n").unwrap();
            child.wait_with_output().unwrap()
        })
        .await
        .unwrap();
        let stdout = String::from_utf8_lossy(&output.stdout);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(
            stdout.contains("origin-a"),
            "stdout {stdout:?}, stderr {stderr:?}"
        );
    })
    .await;
}

/// Sends `bytes` (then waits), and returns whether portero closed without a byte.
async fn closed_after(front: SocketAddr, bytes: &[u8]) -> bool {
    let mut stream = TcpStream::connect(front).await.unwrap();
    let _ = stream.write_all(bytes).await;
    let mut rest = Vec::new();
    matches!(
        tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut rest)).await,
        Ok(Ok(0)) | Ok(Err(_))
    )
}

#[tokio::test]
async fn hostile_first_flights_are_closed_and_counted() {
    bounded(async {
        let rig = rig("[timeouts]\ntls_handshake = \"500ms\"\n").await;
        let refused = |reason: &'static str| {
            let app = Arc::clone(&rig.app);
            async move {
                metric_reaches(
                    &app,
                    "portero_tcp_sessions_refused_total",
                    &format!("reason=\"{reason}\""),
                    1.0,
                    Duration::from_secs(10),
                )
                .await;
            }
        };
        // Plain HTTP on a passthrough port.
        assert!(closed_after(rig.front, b"GET / HTTP/1.1\r\nHost: a.db.test\r\n\r\n").await);
        refused("not_tls").await;
        // A full 16 KiB record opening a ClientHello that announces 60 KiB, then more.
        let mut huge = vec![0x16, 0x03, 0x01, 0x40, 0x00, 0x01, 0x00, 0xf0, 0x00];
        huge.resize(20 * 1024, 0x41);
        assert!(closed_after(rig.front, &huge).await);
        refused("client_hello_too_large").await;
        // Half a hello, then nothing: the handshake timeout ends it.
        assert!(closed_after(rig.front, &[0x16, 0x03, 0x01, 0x02, 0x00, 0x01]).await);
        refused("client_hello_timeout").await;
    })
    .await;
}

#[tokio::test]
async fn a_hello_in_one_byte_pieces_still_reaches_its_origin() {
    bounded(async {
        let rig = rig("").await;
        // The TLS client's stream is wrapped so its every write goes out one byte at a time.
        let connector = TlsConnector::from(rustls_client(&rig.ca, rustls::ALL_VERSIONS));
        let stream = OneByte(TcpStream::connect(rig.front).await.unwrap());
        let server = rustls::pki_types::ServerName::try_from("a.db.test").unwrap();
        let mut tls = connector.connect(server, stream).await.unwrap();
        tls.write_all(b"hello\n").await.unwrap();
        let mut answer = String::new();
        tls.read_to_string(&mut answer).await.unwrap();
        assert_eq!(answer, "origin-a\n");
    })
    .await;
}

/// A stream whose writes carry one byte each, flushed (TCP_NODELAY) as separate segments.
struct OneByte(TcpStream);

impl tokio::io::AsyncRead for OneByte {
    fn poll_read(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.0).poll_read(cx, buf)
    }
}

impl tokio::io::AsyncWrite for OneByte {
    fn poll_write(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        let _ = self.0.set_nodelay(true);
        let one = &buf[..buf.len().min(1)];
        std::pin::Pin::new(&mut self.0).poll_write(cx, one)
    }

    fn poll_flush(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.0).poll_flush(cx)
    }

    fn poll_shutdown(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.0).poll_shutdown(cx)
    }
}

#[tokio::test]
async fn a_backend_that_accepts_and_never_reads_costs_a_bounded_session() {
    bounded(async {
        // The backend accepts, and then neither reads nor closes.
        let silent = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let backend = silent.local_addr().unwrap();
        let held = tokio::spawn(async move {
            let mut kept = Vec::new();
            while let Ok((stream, _)) = silent.accept().await {
                kept.push(stream);
            }
        });
        let config = format!(
            "[admin]\naddress = \"127.0.0.1:0\"\n[log]\naccess_log = \"off\"\n\
             [[listener]]\nname = \"tls\"\naddress = \"127.0.0.1:0\"\nprotocol = \"tls-passthrough\"\npool = \"db\"\n\
             [pool.db]\nbackends = [\"{backend}\"]\n[timeouts]\ntcp_idle = \"300ms\"\n"
        );
        let app = daemon::start(&config).await;
        let ca = Ca::new("unused");
        let connector = TlsConnector::from(rustls_client(&ca, rustls::ALL_VERSIONS));
        let stream = TcpStream::connect(app.listener_addr("tls").unwrap()).await.unwrap();
        let server = rustls::pki_types::ServerName::try_from("db.test").unwrap();
        // The handshake never completes; portero ends the quiet session at tcp_idle.
        let handshake = tokio::time::timeout(Duration::from_secs(10), connector.connect(server, stream)).await;
        assert!(matches!(handshake, Ok(Err(_))), "the session was not closed at tcp_idle");
        metric_reaches(&app, "portero_tcp_sessions_total", "end=\"idle\"", 1.0, Duration::from_secs(5)).await;
        held.abort();
    })
    .await;
}
