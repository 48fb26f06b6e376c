//! Hostile requests that reach an HTTP/1 backend, `ATTACKS.md` rows 48 and 49: the HTTP/2 to
//! HTTP/1 downgrade (`:authority` against `host`, values with whitespace at an edge; raw
//! HTTP/2 frames) and path tricks when routing on the path.
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
use support::h2raw::{self, Block, kind};
use support::raw_backend::{RawBackend, Reply};
use support::raw_client::parse_all;
use support::raw_rig::{Rig, WAIT, forwarded_lines, get, shown};

/// How portero answered one HTTP/2 request.
#[derive(Debug, PartialEq, Eq)]
enum H2Answer {
    Status(u16),
    Reset(u32),
    GoAway(u32),
}

/// Sends `block` as a GET on a fresh HTTP/2 connection; the response status or the reset.
async fn h2_answer(rig: &Rig, block: &Block) -> H2Answer {
    let frame = h2raw::answer_on_fresh(rig.addr(), block, WAIT).await;
    match frame.kind {
        kind::HEADERS => H2Answer::Status(frame.status().expect("a :status")),
        kind::RST_STREAM => H2Answer::Reset(frame.error_code().unwrap()),
        _ => H2Answer::GoAway(frame.error_code().unwrap()),
    }
}

/// Row 48 (portero): HTTP/2 requests become HTTP/1 upstream, so an `:authority` that
/// disagrees with `host` is 400 (h2 accepts both fields; portero's sanitizer refuses the
/// pair). A value with whitespace at an edge, which an HTTP/1 parser would trim, makes the
/// request malformed (RFC 9113 §8.2.1): portero's h2 (vendor/h2.patch) resets the stream with
/// PROTOCOL_ERROR, the stream error §8.1.1 asks for, as it does for an `:authority` with
/// whitespace. Nothing of either is forwarded. The HTTP/1 Host is built from `:authority`.
#[tokio::test]
async fn row_48_authority_and_host_must_agree_and_values_must_be_trimmed() {
    bounded(async {
        let rig = Rig::start("").await;
        let base = |path: &str, authority: &str| {
            Block::default()
                .field(":method", "GET")
                .field(":scheme", "http")
                .field(":path", path)
                .field(":authority", authority)
        };
        let cases = [
            (
                ":authority a, host b",
                base("/r48", "a.example").field("host", "b.example"),
                H2Answer::Status(400),
            ),
            (
                "host with a trailing space",
                base("/r48", "a.example").field("host", "a.example "),
                H2Answer::Reset(h2raw::code::PROTOCOL_ERROR),
            ),
            (
                "leading space",
                base("/r48", "a.example").field("x-a", " padded"),
                H2Answer::Reset(h2raw::code::PROTOCOL_ERROR),
            ),
            (
                "trailing tab",
                base("/r48", "a.example").field("x-a", "padded\t"),
                H2Answer::Reset(h2raw::code::PROTOCOL_ERROR),
            ),
            (
                "space in :authority",
                base("/r48", " a.example"),
                H2Answer::Reset(h2raw::code::PROTOCOL_ERROR),
            ),
        ];
        for (case, block, expected) in cases {
            let before = rig.received();
            assert_eq!(h2_answer(&rig, &block).await, expected, "{case}");
            assert_eq!(rig.received(), before, "{case}: nothing forwarded");
        }
        let agreeing = [
            ("no host", base("/r48-a", "a.example")),
            (
                "same host",
                base("/r48-b", "a.example").field("host", "A.example"),
            ),
        ];
        for (case, block) in agreeing {
            assert_eq!(
                h2_answer(&rig, &block).await,
                H2Answer::Status(200),
                "{case}"
            );
        }
        for target in ["/r48-a", "/r48-b"] {
            let request = rig.forwarded_to(target);
            assert_eq!(request.start, format!("GET {target} HTTP/1.1"));
            assert_eq!(request.header_lines(), forwarded_lines("a.example", &[]));
        }
        rig.still_serves().await;
    })
    .await;
}

/// Row 49 (portero): the path is normalised before routing and sent upstream normalised, so
/// the route table and the backend see the same path: `/public/%2e%2e/admin` reaches the
/// `admin` pool as `/admin`. Encoded slashes and `;` are data, not structure (RFC 3986):
/// such paths are routed and forwarded exactly as they are.
#[tokio::test]
async fn row_49_paths_are_normalised_before_routing() {
    bounded(async {
        let admin = RawBackend::start(vec![Reply::AfterBody]).await;
        let routes = format!(
            "[[route]]\npath_prefix = \"/admin\"\npool = \"admin\"\n\n\
             [[route]]\npool = \"app\"\n\n[pool.admin]\nbackends = [\"{}\"]\n",
            admin.addr
        );
        let rig = Rig::start(&routes).await;
        let cases = [
            ("/public/%2e%2e/admin", "admin", "/admin"),
            ("/public/%2E%2e//admin/x", "admin", "/admin/x"),
            ("//admin", "admin", "/admin"),
            ("/public/./../admin?q=/../x", "admin", "/admin?q=/../x"),
            ("/admin/../public/p", "app", "/public/p"),
            ("/public/..%2Fadmin", "app", "/public/..%2Fadmin"),
            ("/public/..;/admin", "app", "/public/..;/admin"),
        ];
        for (target, pool, normalised) in cases {
            let (backend, other) = match pool {
                "admin" => (&admin, &rig.backend),
                _ => (&rig.backend, &admin),
            };
            let expected = format!("GET {normalised} HTTP/1.1");
            let arrived = |backend: &RawBackend| {
                (0..backend.accepted())
                    .flat_map(|n| parse_all(&backend.bytes(n), false, false).0)
                    .filter(|m| m.start == expected)
                    .count()
            };
            let (before, other_heads) = (arrived(backend), other.heads());
            let outcome = rig.send(&get(target, "Connection: close\r\n")).await;
            assert_eq!(outcome.statuses(), [200], "{target}: {}", shown(&outcome));
            assert_eq!(
                arrived(backend),
                before + 1,
                "{target}: reached {pool} as {normalised}"
            );
            assert_eq!(other.heads(), other_heads, "{target}: not the other pool");
        }
        rig.still_serves().await;
    })
    .await;
}
