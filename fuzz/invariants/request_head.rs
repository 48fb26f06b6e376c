//! Invariants over one raw HTTP/1 request head, for the `request_head` fuzz target and for
//! `tests/fuzz_corpus.rs` (the same checks on the committed corpus, on stable).
//!
//! The bytes are parsed as hyper's server parses them (httparse with its defaults, at most
//! 100 headers), so the sanitizer sees what it sees in production; input hyper would refuse
//! is of no interest past the head scan. A broken invariant panics.

use http::{HeaderName, HeaderValue, Method, Request, Version};
use portero::config::Limits;
use portero::proxy::sanitize::{self, RawHead};
use portero::server::head_scan::HeadScan;

/// hyper's default `max_headers`.
const MAX_HEADERS: usize = 100;

/// Checks every invariant that applies to `data`.
pub fn check(data: &[u8]) {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut parsed = httparse::Request::new(&mut headers);
    let Ok(httparse::Status::Complete(head_len)) = parsed.parse(data) else {
        return;
    };
    check_head_scan(data, head_len, parsed.headers);
    let Some(request) = to_request(&parsed) else {
        return;
    };
    for content_length in [false, true] {
        let raw = RawHead { content_length };
        if let Ok(host) = sanitize::check(&request, &Limits::default(), raw) {
            assert!(
                host.is_empty() || portero::route::is_valid_authority(&host),
                "check accepted the authority {host:?}"
            );
        }
    }
    check_normalize_path(request.uri().path());
}

/// The request as hyper builds it; `None` where hyper would answer 400 before the proxy runs.
fn to_request(parsed: &httparse::Request<'_, '_>) -> Option<Request<()>> {
    let method = Method::from_bytes(parsed.method?.as_bytes()).ok()?;
    let version = match parsed.version? {
        0 => Version::HTTP_10,
        _ => Version::HTTP_11,
    };
    let mut builder = Request::builder()
        .method(method)
        .version(version)
        .uri(parsed.path?);
    for header in parsed.headers.iter() {
        let name = HeaderName::from_bytes(header.name.as_bytes()).ok()?;
        let value = HeaderValue::from_bytes(header.value).ok()?;
        builder = builder.header(name, value);
    }
    builder.body(()).ok()
}

/// The connection's [`HeadScan`] must see the head end exactly where httparse does, and see
/// a Content-Length line exactly when httparse does, however the bytes are split.
fn check_head_scan(data: &[u8], head_len: usize, headers: &[httparse::Header<'_>]) {
    let expected = headers
        .iter()
        .any(|h| h.name.eq_ignore_ascii_case("content-length"));
    let scan = |chunks: &[&[u8]]| {
        let mut scan = HeadScan::default();
        scan.start();
        chunks.iter().find_map(|chunk| scan.feed(chunk))
    };
    assert_eq!(
        scan(&[data]),
        Some(expected),
        "head scan of the whole input"
    );
    assert_eq!(
        scan(&[&data[..head_len - 1]]),
        None,
        "head scan ended before the head did"
    );
    for split in [1, head_len / 2, head_len - 1] {
        let (first, rest) = data.split_at(split.min(head_len));
        assert_eq!(
            scan(&[first, rest]),
            Some(expected),
            "head scan split at {split}"
        );
    }
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
