//! Hostile HTTP/1 requests, `ATTACKS.md` Host and target rows 18–21: a missing, repeated or
//! invalid Host, absolute-form against Host, bad authorities and long request targets.
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
use support::raw_rig::{Rig, forwarded_lines, get};

/// Row 18 (portero): exactly one valid Host in HTTP/1.1, absolute-form included (RFC 9112
/// §3.2: a server MUST answer 400 to an HTTP/1.1 request without Host). HTTP/1.0 may name
/// none: the backend then gets its own address as Host.
#[tokio::test]
async fn row_18_missing_repeated_or_invalid_host_is_400() {
    bounded(async {
        let rig = Rig::start("").await;
        let cases: [(&str, &[u8]); 7] = [
            ("no Host", b"GET /r18 HTTP/1.1\r\n\r\n"),
            (
                "absolute-form, no Host",
                b"GET http://t/r18 HTTP/1.1\r\n\r\n",
            ),
            (
                "two equal Hosts",
                b"GET /r18 HTTP/1.1\r\nHost: t\r\nHost: t\r\n\r\n",
            ),
            (
                "two Hosts",
                b"GET /r18 HTTP/1.1\r\nHost: t\r\nHost: u\r\n\r\n",
            ),
            ("empty Host", b"GET /r18 HTTP/1.1\r\nHost:\r\n\r\n"),
            ("space in Host", b"GET /r18 HTTP/1.1\r\nHost: t u\r\n\r\n"),
            ("broken IPv6", b"GET /r18 HTTP/1.1\r\nHost: [::1\r\n\r\n"),
        ];
        for (case, bytes) in cases {
            rig.refused(case, bytes, 400).await;
        }
        let request = rig
            .accepted(
                "HTTP/1.0 without Host",
                b"GET /r18-10 HTTP/1.0\r\n\r\n",
                "/r18-10",
            )
            .await;
        assert_eq!(request.header("host"), Some(&*rig.backend.addr.to_string()));
        rig.still_serves().await;
    })
    .await;
}

/// Row 19 (portero): the absolute-form authority wins; a different Host is refused, an
/// equivalent one is replaced by the target's authority upstream (origin-form there).
#[tokio::test]
async fn row_19_absolute_form_against_a_different_host_is_400() {
    bounded(async {
        let rig = Rig::start("").await;
        let cases: [(&str, &[u8]); 3] = [
            (
                "other host",
                b"GET http://a.example/r19 HTTP/1.1\r\nHost: b.example\r\n\r\n",
            ),
            (
                "other port",
                b"GET http://a.example:8080/r19 HTTP/1.1\r\nHost: a.example\r\n\r\n",
            ),
            (
                "https default port is 443",
                b"GET https://a.example/r19 HTTP/1.1\r\nHost: a.example:80\r\n\r\n",
            ),
        ];
        for (case, bytes) in cases {
            rig.refused(case, bytes, 400).await;
        }
        let bytes = b"GET http://a.example/r19-ok?q=1 HTTP/1.1\r\nHost: A.EXAMPLE:80\r\n\r\n";
        let request = rig.accepted("same authority", bytes, "/r19-ok?q=1").await;
        assert_eq!(request.start, "GET /r19-ok?q=1 HTTP/1.1");
        assert_eq!(request.header_lines(), forwarded_lines("a.example", &[]));
        rig.still_serves().await;
    })
    .await;
}

/// Row 20 (portero): userinfo, a path or a bad port in Host or in the target's authority.
#[tokio::test]
async fn row_20_userinfo_path_or_bad_port_in_the_authority_is_400() {
    bounded(async {
        let rig = Rig::start("").await;
        let hosts = ["u@h", "h/x", "h:99999", "h:", "h:8o", "h?x", "h#x", "%zz"];
        for host in hosts {
            let bytes = format!("GET /r20 HTTP/1.1\r\nHost: {host}\r\n\r\n");
            rig.refused(&format!("Host {host:?}"), bytes.as_bytes(), 400)
                .await;
        }
        let targets: [(&str, &[u8]); 2] = [
            (
                "userinfo",
                b"GET http://u@h/r20 HTTP/1.1\r\nHost: h\r\n\r\n",
            ),
            (
                "port",
                b"GET http://h:99999/r20 HTTP/1.1\r\nHost: h:99999\r\n\r\n",
            ),
        ];
        for (case, bytes) in targets {
            rig.refused(case, bytes, 400).await;
        }
        rig.still_serves().await;
    })
    .await;
}

/// Row 21 (portero, 8 KiB): a 10 KiB request target is 414; one of exactly 8 KiB passes.
#[tokio::test]
async fn row_21_long_request_target_is_414() {
    bounded(async {
        let rig = Rig::start("").await;
        let long = format!("/{}", "a".repeat(10 * 1024 - 1));
        rig.refused("10 KiB", &get(&long, ""), 414).await;
        let limit = format!("/{}", "b".repeat(8 * 1024 - 1));
        let request = rig.accepted("8 KiB", &get(&limit, ""), &limit).await;
        assert_eq!(request.start.len(), "GET  HTTP/1.1".len() + 8 * 1024);
        rig.still_serves().await;
    })
    .await;
}
