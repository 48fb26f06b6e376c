//! Hostile HTTP/1 requests, `ATTACKS.md` rows 30–32 on the headers portero rewrites: hop-by-hop
//! headers and those named in Connection, spoofed forwarding headers, underscores in names.
//!
//! Raw bytes on a socket against a real portero whose backend is a `RawBackend` that records
//! every byte (the rig is `tests/support/raw_rig.rs`), so each test asserts the exact status,
//! whether the connection was closed, and exactly what reached the backend — nothing for a
//! refused request, portero's own clean bytes for an accepted one. Every test ends by checking
//! that a fresh connection is still served.
//!
//! Rows marked H in ATTACKS.md are hyper's (or httparse's) work; they are proven here anyway,
//! so an upgrade that loosens a default fails a test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use support::bounded;
use support::raw_rig::{Rig, fields_refused, forwarded_lines, get, shown};

/// Row 30 (portero): Connection, every header it names and the fixed hop-by-hop set are
/// removed, then portero's own X-Forwarded-* added: the client cannot make portero drop
/// X-Forwarded-For, nor pass credentials a hop on.
#[tokio::test]
async fn row_30_hop_by_hop_headers_and_those_named_in_connection_are_removed() {
    bounded(async {
        let rig = Rig::start("").await;
        let fields = "Connection: close, X-Forwarded-For, Authorization, X-Auth-User, Cookie\r\n\
                      X-Forwarded-For: 6.6.6.6\r\nAuthorization: Basic ZXZpbA==\r\n\
                      X-Auth-User: admin\r\nCookie: session=1\r\nKeep-Alive: timeout=5\r\n\
                      Proxy-Connection: keep-alive\r\nProxy-Authorization: Basic ZXZpbA==\r\n\
                      TE: gzip\r\nUpgrade: websocket\r\nX-Kept: yes\r\n";
        let outcome = rig.send(&get("/r30", fields)).await;
        assert_eq!(outcome.statuses(), [200], "{}", shown(&outcome));
        assert!(outcome.closed, "Connection: close is honoured");
        let request = rig.forwarded_to("/r30");
        assert_eq!(
            request.header_lines(),
            forwarded_lines("t", &["x-kept: yes"])
        );
        rig.still_serves().await;
    })
    .await;
}

/// Row 30, TE (RFC 9110 §7.6.1, §10.1.4): TE is hop-by-hop whatever its value, so neither
/// `TE: trailers` nor the `Connection: TE` that must come with it reach an HTTP/1.1 backend
/// (only an HTTP/2 backend gets `te: trailers`, for gRPC).
#[tokio::test]
async fn row_30_te_never_reaches_an_http1_backend() {
    bounded(async {
        let rig = Rig::start("").await;
        for (n, fields) in [
            "Connection: TE\r\nTE: trailers\r\n",
            "TE: trailers, deflate;q=0.5\r\nConnection: te\r\n",
            "TE: trailers\r\n",
        ]
        .iter()
        .enumerate()
        {
            let path = format!("/r30te{n}");
            let request = rig.accepted(fields, &get(&path, fields), &path).await;
            assert_eq!(
                request.header_lines(),
                forwarded_lines("t", &[]),
                "{fields:?}"
            );
        }
        rig.still_serves().await;
    })
    .await;
}

/// Row 31 (portero): forwarding headers from an untrusted client are replaced, not
/// appended to; from a trusted proxy the chain is kept and extended.
#[tokio::test]
async fn row_31_spoofed_forwarding_headers_are_replaced() {
    bounded(async {
        let spoofed = "X-Forwarded-For: 1.2.3.4\r\nX-Forwarded-For: 5.6.7.8\r\n\
                       X-Forwarded-Proto: https\r\nX-Forwarded-Host: evil.example\r\n\
                       Forwarded: for=1.2.3.4;proto=https\r\nX-Real-IP: 1.2.3.4\r\n";
        let rig = Rig::start("").await;
        let request = rig
            .accepted("untrusted", &get("/r31", spoofed), "/r31")
            .await;
        assert_eq!(request.header_lines(), forwarded_lines("t", &[]));
        rig.still_serves().await;

        let trusted = Rig::start("[security]\ntrusted_proxies = [\"127.0.0.1/32\"]\n").await;
        let request = trusted
            .accepted("trusted", &get("/r31", spoofed), "/r31")
            .await;
        let mut expected = vec![
            "forwarded: for=1.2.3.4;proto=https",
            "host: t",
            "x-forwarded-for: 1.2.3.4, 5.6.7.8, 127.0.0.1",
            "x-forwarded-host: evil.example",
            "x-forwarded-proto: https",
            "x-real-ip: 1.2.3.4",
            "x-request-id: *",
        ];
        expected.sort();
        assert_eq!(request.header_lines(), expected);
    })
    .await;
}

/// Row 32 (portero): header names with underscores are refused (Envoy's edge default).
#[tokio::test]
async fn row_32_underscores_in_header_names_are_400() {
    bounded(async {
        let rig = Rig::start("").await;
        let cases: [(&str, &[u8]); 3] = [
            ("X_Forwarded_For", b"X_Forwarded_For: 1.2.3.4\r\n"),
            ("one underscore", b"X-Forwarded_For: 1.2.3.4\r\n"),
            ("Content_Length", b"Content_Length: 0\r\n"),
        ];
        fields_refused(&rig, &cases).await;
        rig.still_serves().await;
    })
    .await;
}
