//! Hostile HTTP/1 requests, `ATTACKS.md` syntax rows 12–17 (hyper and httparse): obs-fold,
//! whitespace before the colon, controls in values, bad field names, bare LF and malformed
//! request lines.
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
use support::raw_client::has_bare_lf;
use support::raw_rig::{Rig, fields_refused, forwarded_lines};

/// Row 12: obs-fold in a request.
#[tokio::test]
async fn row_12_obs_fold_is_400() {
    bounded(async {
        let rig = Rig::start("").await;
        let cases: [(&str, &[u8]); 3] = [
            ("SP fold", b"X-A: a\r\n b\r\n"),
            ("HTAB fold", b"X-A: a\r\n\tb\r\n"),
            ("fold of a second field", b"X-B: 1\r\n t2\r\n"),
        ];
        fields_refused(&rig, &cases).await;
        rig.still_serves().await;
    })
    .await;
}

/// Row 13: whitespace between a field name and its colon.
#[tokio::test]
async fn row_13_whitespace_before_the_colon_is_400() {
    bounded(async {
        let rig = Rig::start("").await;
        let cases: [(&str, &[u8]); 3] = [
            ("SP", b"X-A : b\r\n"),
            ("HTAB", b"X-A\t: b\r\n"),
            ("Host", b"Host : t\r\n"),
        ];
        fields_refused(&rig, &cases).await;
        rig.still_serves().await;
    })
    .await;
}

/// Row 14: CR, NUL (and other controls) inside a field value. A LF inside a value cannot be
/// sent: it ends the line (bare LF is a line ending, row 16).
#[tokio::test]
async fn row_14_cr_nul_or_controls_in_a_value_are_400() {
    bounded(async {
        let rig = Rig::start("").await;
        let cases: [(&str, &[u8]); 4] = [
            ("NUL", b"X-A: a\x00.evil\r\n"),
            ("bare CR", b"X-A: a\rb\r\n"),
            ("DEL", b"X-A: a\x7fb\r\n"),
            ("ESC", b"X-A: a\x1bb\r\n"),
        ];
        fields_refused(&rig, &cases).await;
        rig.refused(
            "NUL in Host",
            b"GET /f HTTP/1.1\r\nHost: a\x00.evil\r\n\r\n",
            400,
        )
        .await;
        rig.still_serves().await;
    })
    .await;
}

/// Row 15: field names that are not tokens, empty, or without a colon.
#[tokio::test]
async fn row_15_bad_field_names_are_400() {
    bounded(async {
        let rig = Rig::start("").await;
        let cases: [(&str, &[u8]); 6] = [
            ("0x85", b"X\x85A: b\r\n"),
            ("quote", b"\"X-A\": b\r\n"),
            ("space inside", b"X A: b\r\n"),
            ("parenthesis", b"X(A): b\r\n"),
            ("empty name", b": b\r\n"),
            ("no colon", b"X-A b\r\n"),
        ];
        fields_refused(&rig, &cases).await;
        rig.still_serves().await;
    })
    .await;
}

/// Row 16: bare-LF line endings are accepted (RFC 9112 §2.2 allows it) and the request goes
/// upstream re-serialised with CRLF only.
#[tokio::test]
async fn row_16_bare_lf_is_accepted_and_forwarded_with_crlf() {
    bounded(async {
        let rig = Rig::start("").await;
        let cases: [(&str, &str, &[u8]); 2] = [
            (
                "all LF",
                "/r16-lf",
                b"GET /r16-lf HTTP/1.1\nHost: t\nX-A: 1\n\n",
            ),
            (
                "mixed",
                "/r16-mixed",
                b"GET /r16-mixed HTTP/1.1\r\nHost: t\nX-A: 1\r\n\n",
            ),
        ];
        for (case, target, bytes) in cases {
            let request = rig.accepted(case, bytes, target).await;
            assert!(!has_bare_lf(&request.raw), "{case}: {:?}", request.raw);
            assert_eq!(request.header_lines(), forwarded_lines("t", &["x-a: 1"]));
        }
        rig.still_serves().await;
    })
    .await;
}

/// Row 17: malformed request lines. ATTACKS.md suggests 505 for an unsupported major
/// version; hyper answers 400 for every version it cannot parse (`Parse::Version`), and
/// httparse only parses `HTTP/1.x`, so `HTTP/2.0` on an HTTP/1 connection is a 400 too.
#[tokio::test]
async fn row_17_malformed_request_lines_are_400() {
    bounded(async {
        let rig = Rig::start("").await;
        let lines: [(&str, &[u8]); 11] = [
            ("bare CR in the target", b"GET /r17\rx HTTP/1.1"),
            ("two SP after the method", b"GET  /r17 HTTP/1.1"),
            ("two SP before the version", b"GET /r17  HTTP/1.1"),
            ("HTAB delimiter", b"GET\t/r17 HTTP/1.1"),
            ("method not a token", b"G(T /r17 HTTP/1.1"),
            ("HTTP/1.10", b"GET /r17 HTTP/1.10"),
            ("HTTP/2.0 in HTTP/1 (not 505)", b"GET /r17 HTTP/2.0"),
            ("HTTP/3.0 (not 505)", b"GET /r17 HTTP/3.0"),
            ("HTTP/0.9", b"GET /r17 HTTP/0.9"),
            ("lower-case version", b"GET /r17 http/1.1"),
            ("trailing SP", b"GET /r17 HTTP/1.1 "),
        ];
        for (case, line) in lines {
            let bytes = [line, b"\r\nHost: t\r\n\r\n"].concat();
            rig.refused(case, &bytes, 400).await;
        }
        rig.still_serves().await;
    })
    .await;
}
