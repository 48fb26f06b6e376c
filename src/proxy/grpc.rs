//! What portero knows of gRPC (PROTOCOL-HTTP2.md in grpc/grpc): which requests are gRPC calls,
//! the call's deadline (`grpc-timeout`), and the trailers-only response that ends a call portero
//! answers itself. gRPC calls are otherwise plain HTTP/2 exchanges to portero: messages,
//! `te: trailers` and the trailers with `grpc-status` stream through like any body.

use http::{HeaderMap, HeaderValue, Request, header};
use std::time::Duration;

/// The gRPC status codes portero answers with (the `grpc-status` numbers).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Code {
    /// 4: the deadline passed before the call could complete.
    DeadlineExceeded = 4,
    /// 7: the caller may not make this call.
    PermissionDenied = 7,
    /// 8: a quota or a size limit was reached.
    ResourceExhausted = 8,
    /// 12: no service or method here.
    Unimplemented = 12,
    /// 13: the request broke the protocol's invariants.
    Internal = 13,
    /// 14: transient; the call was not processed, so it is safe to try again.
    Unavailable = 14,
}

/// Whether `request` is a gRPC call (or gRPC-Web): its content type is `application/grpc`,
/// alone or followed by `+proto`, `-web`, `;...`.
pub fn is_grpc<B>(request: &Request<B>) -> bool {
    request
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| is_grpc_content_type(v.as_bytes()))
}

fn is_grpc_content_type(value: &[u8]) -> bool {
    const GRPC: &[u8] = b"application/grpc";
    value.len() >= GRPC.len()
        && value[..GRPC.len()].eq_ignore_ascii_case(GRPC)
        && matches!(value.get(GRPC.len()), None | Some(b'+' | b'-' | b';'))
}

/// The call's deadline from its `grpc-timeout` header, if it has a valid one.
pub fn timeout(headers: &HeaderMap) -> Option<Duration> {
    parse_timeout(headers.get("grpc-timeout")?.as_bytes())
}

/// `grpc-timeout`: 1 to 8 ASCII digits and a unit, `H` hours, `M` minutes, `S` seconds, `m`
/// milliseconds, `u` microseconds, `n` nanoseconds. Anything else is `None` (ignored: the
/// call then has only portero's own bound).
pub fn parse_timeout(value: &[u8]) -> Option<Duration> {
    let (unit, digits) = value.split_last()?;
    if digits.is_empty() || digits.len() > 8 || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    // Eight digits fit a u64 many times over, even as hours in seconds.
    let n = digits
        .iter()
        .fold(0u64, |n, d| n * 10 + u64::from(d - b'0'));
    Some(match unit {
        b'H' => Duration::from_secs(n * 3600),
        b'M' => Duration::from_secs(n * 60),
        b'S' => Duration::from_secs(n),
        b'm' => Duration::from_millis(n),
        b'u' => Duration::from_micros(n),
        b'n' => Duration::from_nanos(n),
        _ => return None,
    })
}

/// The headers of a trailers-only response (HTTP 200 and `content-type`, then `grpc-status`
/// and `grpc-message` in the same HEADERS frame, which ends the stream): the one way a gRPC
/// server ends a call without sending a message, so every gRPC client reads it as the call's
/// status rather than as a broken response.
pub fn trailers_only(headers: &mut HeaderMap, code: Code, message: &str) {
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/grpc"),
    );
    headers.insert("grpc-status", HeaderValue::from(code as u16));
    if let Ok(message) = HeaderValue::from_str(&percent_encode(message)) {
        headers.insert("grpc-message", message);
    }
}

/// `grpc-message` is percent-encoded UTF-8: bytes outside printable ASCII, and `%`, become
/// `%XX`.
fn percent_encode(text: &str) -> String {
    use std::fmt::Write as _;
    let mut out = String::with_capacity(text.len());
    for byte in text.bytes() {
        if (0x20..=0x7e).contains(&byte) && byte != b'%' {
            out.push(char::from(byte));
        } else {
            let _ = write!(out, "%{byte:02X}");
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timeouts_parse_in_every_unit() {
        let cases: [(&str, Duration); 7] = [
            ("1H", Duration::from_secs(3600)),
            ("2M", Duration::from_secs(120)),
            ("30S", Duration::from_secs(30)),
            ("250m", Duration::from_millis(250)),
            ("1500u", Duration::from_micros(1500)),
            ("99999999n", Duration::from_nanos(99_999_999)),
            ("0m", Duration::ZERO),
        ];
        for (text, expected) in cases {
            assert_eq!(parse_timeout(text.as_bytes()), Some(expected), "{text}");
        }
        assert_eq!(
            parse_timeout(b"99999999H"),
            Some(Duration::from_secs(99_999_999 * 3600))
        );
    }

    #[test]
    fn malformed_timeouts_are_ignored() {
        for text in [
            "",
            "m",
            "10",
            "123456789m",
            "10x",
            "-1S",
            "1.5S",
            " 10S",
            "10 S",
            "10s",
            "1h",
        ] {
            assert_eq!(parse_timeout(text.as_bytes()), None, "{text:?}");
        }
    }

    #[test]
    fn grpc_content_types_are_recognised() {
        for yes in [
            "application/grpc",
            "application/grpc+proto",
            "application/grpc+json",
            "application/grpc-web",
            "application/grpc-web+proto",
            "Application/GRPC",
            "application/grpc; charset=utf-8",
        ] {
            assert!(is_grpc_content_type(yes.as_bytes()), "{yes}");
        }
        for no in ["application/grpcx", "application/json", "text/plain", ""] {
            assert!(!is_grpc_content_type(no.as_bytes()), "{no}");
        }
    }

    #[test]
    fn trailers_only_carries_status_and_an_encoded_message() {
        let mut headers = HeaderMap::new();
        trailers_only(&mut headers, Code::Unavailable, "no backend: 100% down\n ñ");
        assert_eq!(headers[header::CONTENT_TYPE], "application/grpc");
        assert_eq!(headers["grpc-status"], "14");
        assert_eq!(headers["grpc-message"], "no backend: 100%25 down%0A %C3%B1");
    }
}
