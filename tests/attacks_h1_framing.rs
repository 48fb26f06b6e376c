//! Hostile HTTP/1 requests, `ATTACKS.md` framing rows 1–7, 10 and 11: Content-Length against
//! Transfer-Encoding, malformed and obfuscated framing fields, chunk extensions and trailers.
//! (Rows 8 and 9, malformed chunk sizes, are in `attacks_upstream.rs`.)
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
use support::raw_client::RawClient;
use support::raw_rig::{HELLO_CHUNKED, Rig, WAIT, forwarded_lines, get, shown};

/// Row 1, strict choice: a head with both Content-Length and `Transfer-Encoding: chunked` is
/// refused whole. hyper would drop the Content-Length and frame by chunked; portero's own
/// parser (`h1/request.rs`) sees both framing fields in the same pass and answers 400 and
/// closes, wherever the request falls on the connection (first, after a pause, pipelined).
#[tokio::test]
async fn row_01_content_length_with_chunked_is_refused_and_never_forwarded() {
    bounded(async {
        let rig = Rig::start("").await;
        let cases = [
            (
                "TE first",
                format!(
                    "POST /r1 HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\
                     Content-Length: 15\r\n\r\n{HELLO_CHUNKED}"
                ),
            ),
            (
                "CL first",
                format!(
                    "POST /r1 HTTP/1.1\r\nHost: t\r\nContent-Length: 4\r\n\
                     Transfer-Encoding: chunked\r\n\r\n{HELLO_CHUNKED}"
                ),
            ),
            (
                "CL in mixed case, bare LF",
                format!(
                    "POST /r1 HTTP/1.1\nHost: t\ncOnTeNt-LeNgTh: 4\n\
                     Transfer-Encoding: chunked\n\n{HELLO_CHUNKED}"
                ),
            ),
        ];
        for (case, bytes) in &cases {
            rig.refused(case, bytes.as_bytes(), 400).await;
        }

        // After a keep-alive pause: the next head is scanned too.
        let mut client = RawClient::connect(rig.addr()).await;
        client.send(&get("/r1-first", "")).await.unwrap();
        let first = client.response(WAIT).await.map(|r| r.status());
        assert_eq!(first, Some(200));
        let before = rig.received();
        client.send(cases[1].1.as_bytes()).await.unwrap();
        let outcome = client.finish(WAIT).await;
        assert_eq!(
            outcome.statuses(),
            [400],
            "after a pause: {}",
            shown(&outcome)
        );
        assert!(outcome.closed, "after a pause: closed");
        assert_eq!(rig.received(), before, "after a pause: nothing forwarded");

        // Pipelined behind a request in the same write: portero's own parser sees every head
        // whole, so this one is refused too (hyper's server, which framed it by chunked and
        // dropped the Content-Length, forwarded it), and nothing of it reaches the backend.
        let pipelined = [
            get("/r1-benign", ""),
            format!(
                "POST /r1-pipelined HTTP/1.1\r\nHost: t\r\nContent-Length: 4\r\n\
                 Transfer-Encoding: chunked\r\n\r\n{HELLO_CHUNKED}"
            )
            .into_bytes(),
        ]
        .concat();
        let outcome = rig.send(&pipelined).await;
        assert_eq!(outcome.statuses(), [200, 400], "{}", shown(&outcome));
        assert!(outcome.closed, "closed after the refusal");
        assert_eq!(outcome.responses[1].header("connection"), Some("close"));
        assert!(
            !rig.forwarded()
                .iter()
                .any(|m| m.start.contains("/r1-pipelined")),
            "the pipelined CL+TE request is never forwarded"
        );
        rig.still_serves().await;
    })
    .await;
}

/// Sends `POST {target}` with each `Transfer-Encoding` value and a chunked body; each must be
/// refused with `status`.
async fn te_refused(rig: &Rig, values: &[&str], status: u16) {
    for te in values {
        let bytes = format!(
            "POST /te HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: {te}\r\n\r\n{HELLO_CHUNKED}"
        );
        rig.refused(&format!("TE {te:?}"), bytes.as_bytes(), status)
            .await;
    }
}

/// Row 2 (hyper): a final coding other than chunked leaves the body length unknown.
#[tokio::test]
async fn row_02_transfer_encoding_not_ending_in_chunked_is_400() {
    bounded(async {
        let rig = Rig::start("").await;
        te_refused(
            &rig,
            &["gzip", "chunked, gzip", "identity", "chunked, x"],
            400,
        )
        .await;
        rig.still_serves().await;
    })
    .await;
}

/// Row 3 (portero): hyper accepts anything that ends in chunked; portero allows exactly
/// `chunked`. ATTACKS.md allows 400, 422 or 501 here; portero answers 400 throughout.
#[tokio::test]
async fn row_03_extra_or_unknown_codings_before_chunked_are_400() {
    bounded(async {
        let rig = Rig::start("").await;
        let values = [
            "gzip, chunked",
            "chunked, chunked",
            "x, chunked",
            "identity, chunked",
        ];
        te_refused(&rig, &values, 400).await;
        rig.still_serves().await;
    })
    .await;
}

/// Row 4: obfuscated Transfer-Encoding is refused; the accepted spellings (case, padding
/// that HTTP allows) reach the backend as portero's own clean `transfer-encoding: chunked`.
#[tokio::test]
async fn row_04_obfuscated_transfer_encoding_is_refused_or_normalised() {
    bounded(async {
        let rig = Rig::start("").await;
        let head = "POST /r4 HTTP/1.1\r\nHost: t\r\n";
        let cases: [(&str, &[u8]); 9] = [
            ("leading comma", b"Transfer-Encoding: ,chunked\r\n"),
            ("trailing comma", b"Transfer-Encoding: chunked,\r\n"),
            (
                "two lines",
                b"Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n",
            ),
            (
                "split over two lines",
                b"Transfer-Encoding: gzip\r\nTransfer-Encoding: chunked\r\n",
            ),
            ("VT before", b"Transfer-Encoding: \x0bchunked\r\n"),
            ("VT after", b"Transfer-Encoding: chunked\x0b\r\n"),
            ("NBSP before", b"Transfer-Encoding: \xa0chunked\r\n"),
            ("underscore", b"Transfer_Encoding: chunked\r\n"),
            ("space before the name", b" Transfer-Encoding: chunked\r\n"),
        ];
        for (case, field) in cases {
            let bytes = [head.as_bytes(), field, b"\r\n", HELLO_CHUNKED.as_bytes()].concat();
            rig.refused(case, &bytes, 400).await;
        }
        let accepted = [
            ("upper case", "/r4-upper", "CHUNKED"),
            ("optional whitespace", "/r4-ows", " \t chunked \t "),
        ];
        for (case, target, value) in accepted {
            let bytes = format!(
                "POST {target} HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: {value}\r\n\r\n\
                 {HELLO_CHUNKED}"
            );
            let request = rig.accepted(case, bytes.as_bytes(), target).await;
            assert_eq!(
                request.header_lines(),
                forwarded_lines("t", &["transfer-encoding: chunked"]),
                "{case}"
            );
            assert_eq!(request.text(), "hello", "{case}");
        }
        rig.still_serves().await;
    })
    .await;
}

/// Row 5 (hyper): HTTP/1.0 has no Transfer-Encoding.
#[tokio::test]
async fn row_05_transfer_encoding_in_http_1_0_is_400() {
    bounded(async {
        let rig = Rig::start("").await;
        for method in ["POST", "GET"] {
            let bytes = format!(
                "{method} /r5 HTTP/1.0\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n\
                 {HELLO_CHUNKED}"
            );
            rig.refused(method, bytes.as_bytes(), 400).await;
        }
        rig.still_serves().await;
    })
    .await;
}

/// Row 6 (hyper): differing Content-Lengths are refused; a repeated identical one is
/// de-duplicated. hyper is stricter than RFC 9110 §8.6 about lists: it refuses `5, 5` too.
#[tokio::test]
async fn row_06_conflicting_content_lengths_are_400() {
    bounded(async {
        let rig = Rig::start("").await;
        let cases = [
            ("two lines", "Content-Length: 5\r\nContent-Length: 6\r\n"),
            ("a list", "Content-Length: 5, 6\r\n"),
            (
                "a list of one value (hyper is strict)",
                "Content-Length: 5, 5\r\n",
            ),
        ];
        for (case, fields) in cases {
            let bytes = format!("POST /r6 HTTP/1.1\r\nHost: t\r\n{fields}\r\nhello!");
            rig.refused(case, bytes.as_bytes(), 400).await;
        }
        let bytes = b"POST /r6-same HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\n\
                      Content-Length: 5\r\n\r\nhello";
        let request = rig.accepted("same value twice", bytes, "/r6-same").await;
        assert_eq!(
            request.header_lines(),
            forwarded_lines("t", &["content-length: 5"])
        );
        assert_eq!(request.text(), "hello");
        rig.still_serves().await;
    })
    .await;
}

/// Row 7 (hyper): Content-Length is 1*DIGIT that fits a u64.
#[tokio::test]
async fn row_07_malformed_content_length_is_400() {
    bounded(async {
        let rig = Rig::start("").await;
        let values = [
            "+5",
            "-1",
            "0x10",
            "",
            "1_0",
            "5 5",
            "18446744073709551616",
            "99999999999999999999999",
        ];
        for value in values {
            let bytes =
                format!("POST /r7 HTTP/1.1\r\nHost: t\r\nContent-Length: {value}\r\n\r\nhello");
            rig.refused(&format!("CL {value:?}"), bytes.as_bytes(), 400)
                .await;
        }
        rig.still_serves().await;
    })
    .await;
}

/// Row 10 (hyper, 16 KiB of extensions per body): a chunk extension of 64 KiB fails the
/// body; no response head was sent yet, so the client gets a 400 (ATTACKS.md: "4xx or
/// close"), and the upload is aborted upstream.
#[tokio::test]
async fn row_10_huge_chunk_extensions_fail_the_body_and_abort_upstream() {
    bounded(async {
        let rig = Rig::start("").await;
        let bytes = [
            b"POST /r10 HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n".as_slice(),
            b"1;",
            &vec![b'a'; 64 * 1024],
            b"\r\nx\r\n0\r\n\r\n",
        ]
        .concat();
        let outcome = rig.send(&bytes).await;
        assert_eq!(outcome.statuses(), [400], "{}", shown(&outcome));
        assert!(outcome.closed);
        rig.aborted_upstream("/r10").await;
        // The body can fail before hyper has written even the head upstream (then the
        // connection carries nothing); that connection is discarded all the same.
        for n in 0..rig.backend.accepted() {
            rig.backend.wait_closed(n, WAIT).await;
        }
        rig.still_serves().await;
    })
    .await;
}

/// Row 11 (portero): trailer fields that carry framing, routing or credentials are dropped
/// before the body goes upstream; others pass. (hyper forwards only the trailers the
/// request's `Trailer` field announces, so all are announced.)
#[tokio::test]
async fn row_11_framing_and_routing_trailers_are_dropped() {
    bounded(async {
        let rig = Rig::start("").await;
        let bytes = b"POST /r11 HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\
            Trailer: x-checksum, content-length, host, te, transfer-encoding, authorization\r\n\r\n\
            5\r\nhello\r\n0\r\nX-Checksum: abc\r\nContent-Length: 5\r\nHost: evil\r\nTE: gzip\r\n\
            Transfer-Encoding: gzip\r\nAuthorization: Basic ZXZpbA==\r\n\r\n";
        let request = rig.accepted("trailers", bytes, "/r11").await;
        assert_eq!(request.text(), "hello");
        assert_eq!(
            request.trailers,
            [("x-checksum".to_string(), "abc".to_string())]
        );
        rig.still_serves().await;
    })
    .await;
}
