//! Trailers in both directions keep only what cannot change the message's meaning.

use http::HeaderMap;

/// Trailer fields that would change how a message is framed, routed, authenticated or
/// cached if a recipient merged them into the head (RFC 9110 §6.5.1); they are dropped from
/// trailers in both directions.
pub fn remove_forbidden_trailers(trailers: &mut HeaderMap) {
    const FORBIDDEN: [&str; 18] = [
        "authorization",
        "proxy-authorization",
        "cookie",
        "set-cookie",
        "host",
        "content-length",
        "content-type",
        "content-encoding",
        "content-range",
        "transfer-encoding",
        "te",
        "trailer",
        "connection",
        "upgrade",
        "cache-control",
        "expect",
        "max-forwards",
        "location",
    ];
    for name in FORBIDDEN {
        trailers.remove(name);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::{HeaderName, HeaderValue};

    #[test]
    fn trailers_cannot_carry_framing_routing_or_credentials() {
        let mut t: HeaderMap = [
            ("content-length", "5"),
            ("host", "evil.example"),
            ("transfer-encoding", "chunked"),
            ("authorization", "Bearer x"),
            ("grpc-status", "0"),
        ]
        .into_iter()
        .map(|(k, v)| (HeaderName::from_static(k), HeaderValue::from_static(v)))
        .collect();
        remove_forbidden_trailers(&mut t);
        assert_eq!(t.len(), 1);
        assert_eq!(t["grpc-status"], "0");
    }
}
