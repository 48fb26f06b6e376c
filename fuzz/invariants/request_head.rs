//! Invariants over one raw HTTP/1 request head, for the `request_head` fuzz target and for
//! `tests/fuzz_corpus.rs` (the same checks on the committed corpus, on stable).
//!
//! The bytes are parsed as a client connection parses them (portero's own codec, default
//! limits), so the sanitizer sees what it sees in production; input the codec refuses is of
//! no interest here (`h1_differential` holds the codec to hyper's verdict). The codec must
//! give the same request whether the bytes arrive whole or split. A broken invariant panics.

use bytes::BytesMut;
use portero::config::Limits;
use portero::h1::{HeadLimits, ParsedRequest, parse_request};
use portero::proxy::sanitize;

const LIMITS: HeadLimits = HeadLimits {
    max_bytes: 32 * 1024,
    max_headers: 100,
};

/// Checks every invariant that applies to `data`.
pub fn check(data: &[u8]) {
    let Some(parsed) = parse_split(data, data.len()) else {
        return;
    };
    for split in [1, data.len() / 2, data.len().saturating_sub(1)] {
        let again = parse_split(data, split).map(|p| format!("{:?}", p.request));
        assert_eq!(
            again,
            Some(format!("{:?}", parsed.request)),
            "parse split at {split}"
        );
    }
    if let Ok(host) = sanitize::check(&parsed.request, &Limits::default()) {
        assert!(
            host.is_empty() || portero::route::is_valid_authority(&host),
            "check accepted the authority {host:?}"
        );
    }
    check_normalize_path(parsed.request.uri().path());
}

/// The head parsed from `data` fed in two parts, the second after `split` bytes; `None` when
/// refused or incomplete.
fn parse_split(data: &[u8], split: usize) -> Option<ParsedRequest> {
    let split = split.min(data.len());
    let mut buf = BytesMut::from(&data[..split]);
    match parse_request(&mut buf, LIMITS) {
        Ok(Some(parsed)) => return Some(parsed),
        Ok(None) => {}
        Err(_) => return None,
    }
    buf.extend_from_slice(&data[split..]);
    parse_request(&mut buf, LIMITS).ok().flatten()
}

/// What routes, access rules and the backend see of a path must be normal: rooted, without
/// empty or dot segments, still a valid request target, and a fixed point, so that no second
/// decoding (the backend's) can turn it into a different path.
fn check_normalize_path(path: &str) {
    let normalized = sanitize::normalize_path(path);
    if !path.starts_with('/') {
        assert_eq!(normalized, path, "only rooted paths are rewritten");
        return;
    }
    assert!(normalized.starts_with('/'), "{path:?} -> {normalized:?}");
    assert!(!normalized.contains("//"), "{path:?} -> {normalized:?}");
    assert!(
        !normalized.split('/').any(|s| s == "." || s == ".."),
        "dot segment left: {path:?} -> {normalized:?}"
    );
    assert!(
        http::uri::PathAndQuery::try_from(normalized.as_ref()).is_ok(),
        "not a valid target: {path:?} -> {normalized:?}"
    );
    let again = sanitize::normalize_path(&normalized);
    assert_eq!(again, normalized, "not idempotent: {path:?}");
}
