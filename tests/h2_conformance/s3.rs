//! RFC 9113 §3: starting HTTP/2, the connection preface (§3.4) and a listener's `protocols`,
//! plain and TLS (ALPN, §3.2).

use super::*;

// ---------------------------------------------------------------------------------------------
// §3.4 HTTP/2 connection preface
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn s3_4_server_preface_is_a_settings_frame_first() {
    bounded(async {
        let rig = Rig::start().await;
        let mut client = Client::open(traffic(&rig.app)).await;
        client
            .send(&[PREFACE, &h2raw::settings(&[])].concat())
            .await
            .unwrap();
        let Event::Frame(first) = client.reader.next(soon()).await else {
            panic!("no frame")
        };
        assert_eq!(
            (first.kind, first.flags, first.stream),
            (kind::SETTINGS, 0, 0)
        );
        // Our SETTINGS are acknowledged (§6.5.3).
        client
            .reader
            .find(soon(), |f| f.kind == kind::SETTINGS && f.flags == ACK)
            .await;
    })
    .await;
}

#[tokio::test]
async fn s3_4_first_client_frame_other_than_settings_is_protocol_error() {
    bounded(async {
        let rig = Rig::start().await;
        let mut client = Client::open(traffic(&rig.app)).await;
        client
            .send(&[PREFACE, &h2raw::ping(*b"notfirst")].concat())
            .await
            .unwrap();
        connection_error(&mut client, code::PROTOCOL_ERROR).await;
    })
    .await;
}

#[tokio::test]
async fn s3_4_invalid_preface_on_an_h2c_only_listener_is_protocol_error() {
    bounded(async {
        let rig = Rig::with_listener("protocols = [\"h2c\"]").await;
        for garbage in [
            &b"PRI * HTTP/2.0\r\n\r\nXX\r\n\r\n"[..],
            b"GET / HTTP/1.1\r\nhost: localhost\r\n\r\n",
        ] {
            let mut client = Client::open(traffic(&rig.app)).await;
            client.send(garbage).await.unwrap();
            connection_error(&mut client, code::PROTOCOL_ERROR).await;
        }
        // A client with prior knowledge is served.
        let mut client = rig.connect().await;
        assert_eq!(status(&mut client, 1, &get("/")).await, Some(200));
        assert_eq!(rig.backend.requests(), 1);
    })
    .await;
}

#[tokio::test]
async fn s3_4_http1_only_listener_does_not_speak_h2c() {
    bounded(async {
        let rig = Rig::with_listener("protocols = [\"http1\"]").await;
        let addr = traffic(&rig.app);
        // hyper's HTTP/1 server closes on the HTTP/2 preface; no HTTP/2 frame answers it.
        let preface = [PREFACE, &h2raw::settings(&[])].concat();
        let reply = support::client::raw(addr, &preface, Duration::from_secs(5)).await;
        assert!(
            reply.is_empty() || reply.starts_with("HTTP/1.1 "),
            "{reply:?}"
        );
        let reply = support::client::try_get(addr, "/").await;
        assert_eq!(reply.map(|r| r.status.as_u16()), Some(200));
    })
    .await;
}

#[tokio::test]
async fn s3_4_listener_protocols_are_validated() {
    let text = |keys: &str| {
        config_text(&[("127.0.0.1:1".parse().unwrap(), 1)], "")
            .replace("name = \"http\"\n", &format!("name = \"http\"\n{keys}\n"))
    };
    for (keys, problem) in [
        ("protocols = []", "protocols"),
        ("protocols = [\"h3\"]", "h3"),
        ("protocols = [\"h2c\", \"h2c\"]", "twice"),
        ("protocols = [\"h2\"]", "TLS"),
    ] {
        let error = portero::Config::from_toml(&text(keys), "test").unwrap_err();
        assert!(error.to_string().contains(problem), "{keys}: {error}");
    }
    for keys in ["protocols = [\"h2c\"]", "protocols = [\"http1\", \"h2c\"]"] {
        portero::Config::from_toml(&text(keys), "test").unwrap();
    }
}

/// A TLS handshake with portero's `https` listener offering `alpn`: the protocol agreed, or
/// `None` when the handshake fails.
async fn alpn_agreed(
    addr: std::net::SocketAddr,
    ca: &support::pki::Ca,
    alpn: &[&[u8]],
) -> Option<Option<Vec<u8>>> {
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(ca.roots())
        .with_no_client_auth();
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let mut stream = connector.connect(name, tcp).await.ok()?;
    let agreed = stream.get_ref().1.alpn_protocol().map(<[u8]>::to_vec);
    if agreed.is_none() {
        // No ALPN on an HTTP/2-only listener: HTTP/2 with prior knowledge.
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        stream
            .write_all(&[PREFACE, &h2raw::settings(&[])].concat())
            .await
            .unwrap();
        let mut head = [0u8; 9];
        tokio::time::timeout(Duration::from_secs(5), stream.read_exact(&mut head))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(head[3], kind::SETTINGS, "{head:?}");
    }
    Some(agreed)
}

#[tokio::test]
async fn s3_2_tls_listener_protocols_restrict_alpn() {
    bounded(async {
        let ca = support::pki::Ca::new("conformance CA");
        let leaf = ca.issue("localhost", "localhost", &["localhost"], 1);
        let backend = TestBackend::named("app").await;
        let config = |protocols: &str| {
            support::pki::https_config(&[&leaf], "", backend.addr, "").replace(
                "name = \"https\"\n",
                &format!("name = \"https\"\nprotocols = {protocols}\n"),
            )
        };
        let h2_only = start(&config("[\"h2\"]")).await;
        let addr = h2_only.listener_addr("https").unwrap();
        assert_eq!(alpn_agreed(addr, &ca, &[b"http/1.1"]).await, None);
        let both: &[&[u8]] = &[b"http/1.1", b"h2"];
        assert_eq!(
            alpn_agreed(addr, &ca, both).await,
            Some(Some(b"h2".to_vec()))
        );
        assert_eq!(alpn_agreed(addr, &ca, &[]).await, Some(None));

        let http1_only = start(&config("[\"http/1.1\"]")).await;
        let addr = http1_only.listener_addr("https").unwrap();
        assert_eq!(alpn_agreed(addr, &ca, &[b"h2"]).await, None);
        let agreed = alpn_agreed(addr, &ca, &[b"h2", b"http/1.1"]).await;
        assert_eq!(agreed, Some(Some(b"http/1.1".to_vec())));
    })
    .await;
}
