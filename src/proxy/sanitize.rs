//! What hyper's parser accepts but an edge proxy must refuse (ATTACKS.md rows 1, 3, 4, 18–21,
//! 28, 29, 32, 48, 49), as pure functions over a request head. hyper already rejects malformed
//! syntax (bad tokens, CR/LF/NUL in values, obs-fold, conflicting Content-Lengths); these
//! checks are about meaning: exactly one well-formed Host, no framing a downstream parser
//! could read differently, limits with their proper statuses, and a path normalised before
//! any route or access rule looks at it.

use crate::config::Limits;
use crate::route::is_valid_authority;
use http::{HeaderMap, HeaderValue, Method, Request, Uri, Version, header};
use std::borrow::Cow;

/// Why a request head was refused. Statuses are in [`ProxyError::status`](super::ProxyError::status).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Invalid {
    /// Transfer-Encoding other than exactly `chunked`, or alongside a Content-Length.
    #[error("ambiguous or unsupported message framing")]
    Framing,
    /// Host missing (HTTP/1.1), repeated, or not `host[:port]`.
    #[error("missing, repeated or invalid Host")]
    Host,
    /// The target's authority (absolute-form, `:authority`) and the Host header differ.
    #[error("request target authority and Host differ")]
    HostMismatch,
    /// The request target is longer than `limits.max_uri_bytes`.
    #[error("request target too long")]
    UriTooLong,
    /// More header fields than `limits.max_headers`. hyper refuses an HTTP/1 head before it
    /// gets here; HTTP/2 has no such setting, so this is where its fields are counted.
    #[error("too many header fields")]
    TooManyHeaders,
    /// A header name with `_` (read as `-` by some backends), or a value with whitespace at an edge.
    #[error("header name or value not allowed")]
    Header,
    /// Content-Length above `limits.max_request_body`.
    #[error("request body too large")]
    BodyTooLarge,
    /// An `Expect` other than `100-continue`.
    #[error("unsupported expectation")]
    Expectation,
    /// CONNECT: portero is a reverse proxy, not a tunnel.
    #[error("method not allowed")]
    Method,
    /// A request target that is not a path (`*` outside OPTIONS, an empty HTTP/2 `:path`).
    #[error("malformed request target")]
    Target,
}

/// Checks a request head; returns the authority the request is for (empty for an HTTP/1.0
/// request that names none).
pub fn check<B>(request: &Request<B>, limits: &Limits) -> Result<String, Invalid> {
    if request.method() == Method::CONNECT {
        return Err(Invalid::Method);
    }
    let path = request.uri().path();
    if !(path.starts_with('/') || path == "*" && request.method() == Method::OPTIONS) {
        return Err(Invalid::Target);
    }
    if uri_len(request.uri(), request.version()) > limits.max_uri_bytes {
        return Err(Invalid::UriTooLong);
    }
    // The fields as sent, request line and pseudo-header fields aside, as hyper counts an
    // HTTP/1 head (so an HTTP/2 `:authority` is not one and a `host` field is). `len` is
    // O(1): no cost on the HTTP/1 path, where it only repeats hyper's check.
    if request.headers().len() > limits.max_headers {
        return Err(Invalid::TooManyHeaders);
    }
    let fields = Fields::of(request.headers())?;
    check_framing(&fields, request.version())?;
    check_expect(&fields)?;
    if declared_length(&fields)? > limits.max_request_body {
        return Err(Invalid::BodyTooLarge);
    }
    authority(request.uri(), &fields, request.version())
}

/// The values of one field name: the first, and whether there were more.
#[derive(Debug, Default, Clone, Copy)]
struct Values<'a> {
    first: Option<&'a HeaderValue>,
    repeated: bool,
}

impl<'a> Values<'a> {
    fn push(&mut self, value: &'a HeaderValue) {
        match self.first {
            None => self.first = Some(value),
            Some(_) => self.repeated = true,
        }
    }
}

/// The fields the checks read, found in one pass over the head that also checks every
/// field: a hashed lookup per name cost more than the whole pass.
#[derive(Debug, Default)]
struct Fields<'a> {
    transfer_encoding: Values<'a>,
    expect: Values<'a>,
    host: Values<'a>,
    content_length: Values<'a>,
}

impl<'a> Fields<'a> {
    /// Row 32: `X_Forwarded_For` is `X-Forwarded-For` to some frameworks (CGI, nginx with
    /// `underscores_in_headers`), a way around our header rewriting. Row 48: HTTP/2 values
    /// reach us untrimmed; whitespace at an edge is malformed there (RFC 9113 §8.2.1).
    fn of(headers: &'a HeaderMap) -> Result<Self, Invalid> {
        let mut fields = Fields::default();
        for (name, value) in headers {
            let v = value.as_bytes();
            let padded = |b: Option<&u8>| matches!(b, Some(b' ' | b'\t'));
            if name.as_str().contains('_') || padded(v.first()) || padded(v.last()) {
                return Err(Invalid::Header);
            }
            let values = match *name {
                header::TRANSFER_ENCODING => &mut fields.transfer_encoding,
                header::EXPECT => &mut fields.expect,
                header::HOST => &mut fields.host,
                header::CONTENT_LENGTH => &mut fields.content_length,
                _ => continue,
            };
            values.push(value);
        }
        Ok(fields)
    }
}

/// Length of the request target as the client sent it: HTTP/1's request-target (origin- or
/// absolute-form), HTTP/2's `:path` (RFC 9113 §8.3.1). hyper joins `:scheme` and
/// `:authority` to an HTTP/2 path into an absolute URI the client never sent as one; counting
/// them would make the same path 414 over HTTP/2 and not over HTTP/1.1.
fn uri_len(uri: &Uri, version: Version) -> usize {
    let path = uri.path_and_query().map_or(0, |p| p.as_str().len());
    match (uri.scheme_str(), uri.authority()) {
        (Some(scheme), Some(authority)) if version < Version::HTTP_2 => {
            scheme.len() + 3 + authority.as_str().len() + path
        }
        _ => path,
    }
}

/// Rows 1, 3, 4: only a single, exact `Transfer-Encoding: chunked`, and never with a
/// Content-Length. HTTP/2 has no Transfer-Encoding (h2 refuses it).
fn check_framing(fields: &Fields<'_>, version: Version) -> Result<(), Invalid> {
    if version >= Version::HTTP_2 {
        return Ok(());
    }
    let te = fields.transfer_encoding;
    match (te.first, te.repeated) {
        (None, _) => Ok(()),
        (Some(value), false)
            if value.as_bytes().eq_ignore_ascii_case(b"chunked")
                && fields.content_length.first.is_none() =>
        {
            Ok(())
        }
        _ => Err(Invalid::Framing),
    }
}

/// Row 29: the only expectation HTTP defines is `100-continue` (RFC 9110 §10.1.1).
fn check_expect(fields: &Fields<'_>) -> Result<(), Invalid> {
    match (fields.expect.first, fields.expect.repeated) {
        (None, _) => Ok(()),
        (Some(v), false) if v.as_bytes().eq_ignore_ascii_case(b"100-continue") => Ok(()),
        _ => Err(Invalid::Expectation),
    }
}

/// The declared body length (0 when none). hyper has already refused malformed or conflicting
/// HTTP/1 values; h2 checks the value against the DATA frames.
fn declared_length(fields: &Fields<'_>) -> Result<u64, Invalid> {
    match fields.content_length.first {
        None => Ok(0),
        Some(v) => v
            .to_str()
            .ok()
            .and_then(|s| s.parse::<u64>().ok())
            .ok_or(Invalid::Framing),
    }
}

/// Rows 18–20, 48: the authority of an absolute-form target or of `:authority` wins, must be
/// valid, and must agree with Host when both are there; otherwise exactly one valid Host
/// (HTTP/2 needs one of the two, HTTP/1.1 always a Host; HTTP/1.0 may name none).
fn authority(uri: &Uri, fields: &Fields<'_>, version: Version) -> Result<String, Invalid> {
    let host = match (fields.host.first, fields.host.repeated) {
        (_, true) => return Err(Invalid::Host),
        (None, _) => None,
        (Some(v), false) => Some(v.to_str().map_err(|_| Invalid::Host)?),
    };
    if let Some(host) = host
        && !is_valid_authority(host)
    {
        return Err(Invalid::Host);
    }
    let Some(target) = uri.authority() else {
        return match host {
            Some(host) => Ok(host.to_string()),
            None if version == Version::HTTP_10 => Ok(String::new()),
            None => Err(Invalid::Host),
        };
    };
    let target = target.as_str();
    if !is_valid_authority(target) {
        return Err(Invalid::Host);
    }
    // RFC 9112 §3.2: an HTTP/1.1 request without Host is a 400 even in absolute-form.
    if host.is_none() && version == Version::HTTP_11 {
        return Err(Invalid::Host);
    }
    if let Some(host) = host {
        let default_port = if uri.scheme_str() == Some("https") {
            ":443"
        } else {
            ":80"
        };
        let same = |a: &str, b: &str| {
            let a = a.strip_suffix(default_port).unwrap_or(a);
            let b = b.strip_suffix(default_port).unwrap_or(b);
            a.eq_ignore_ascii_case(b)
        };
        if !same(target, host) {
            return Err(Invalid::HostMismatch);
        }
    }
    Ok(target.to_string())
}

/// Row 49: the path routes and access rules see, and the backend receives. Percent-encoded
/// unreserved characters are decoded (`%2e` is `.`), dot segments removed (RFC 3986 §5.2.4,
/// never above the root) and repeated slashes merged, so `/public/%2e%2e//admin` is `/admin`
/// for the route table as it will be for the backend. Encoded slashes (`%2F`) and every other
/// escape are left as they are: they are data, not structure. A `%` that starts no escape is
/// written `%25`, so that no second decoding (the backend's) can make one of it: `/%%32%65`
/// would otherwise come out as `/%2e`, a dot segment to the backend that routing never saw
/// (found by the fuzzer). The result is a fixed point. Borrows when nothing changes.
pub fn normalize_path(path: &str) -> Cow<'_, str> {
    if !path.starts_with('/') || !needs_normalizing(path) {
        return Cow::Borrowed(path);
    }
    let decoded = decode_unreserved(path);
    let mut out: Vec<&str> = Vec::new();
    let segments: Vec<&str> = decoded.split('/').skip(1).collect();
    let last = segments.len().saturating_sub(1);
    for (i, segment) in segments.into_iter().enumerate() {
        match segment {
            "." | "" if i < last => {}
            ".." => {
                out.pop();
                if i == last {
                    out.push("");
                }
            }
            "." => out.push(""),
            s => out.push(s),
        }
    }
    let mut normalized = String::with_capacity(decoded.len());
    for segment in &out {
        normalized.push('/');
        normalized.push_str(segment);
    }
    if normalized.is_empty() {
        normalized.push('/');
    }
    Cow::Owned(normalized)
}

fn needs_normalizing(path: &str) -> bool {
    path.contains("//") || path.contains("/.") || path.contains('%')
}

/// Decodes `%XX` where XX is an unreserved character (RFC 3986 §2.3), upper-cases the hex of
/// the other escapes (§6.2.2.1) and encodes a `%` that starts no escape as `%25`.
fn decode_unreserved(path: &str) -> String {
    let bytes = path.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && let Some(hex) = path.get(i + 1..i + 3)
            && hex.bytes().all(|b| b.is_ascii_hexdigit())
            && let Ok(byte) = u8::from_str_radix(hex, 16)
        {
            if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'.' | b'_' | b'~') {
                out.push(byte);
            } else {
                out.push(b'%');
                out.extend_from_slice(hex.to_ascii_uppercase().as_bytes());
            }
            i += 3;
            continue;
        }
        if bytes[i] == b'%' {
            out.extend_from_slice(b"%25");
        } else {
            out.push(bytes[i]);
        }
        i += 1;
    }
    String::from_utf8(out).expect("only ASCII escapes were replaced in valid UTF-8")
}

#[cfg(test)]
mod tests;
