//! Routing: which pool serves a request, by host and path prefix, first match wins. Pure: no
//! I/O, so the table is unit-tested here and benchmarked in `benches/`.

use std::fmt;

/// The host part of a route.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HostMatch {
    /// Any host (the route has no `host` key).
    Any,
    /// Exactly this host, lower case, without port.
    Exact(String),
    /// `*.example.com`: any name ending in `.example.com` (stored as `.example.com`), at any
    /// depth, as nginx does; `example.com` itself does not match.
    Suffix(String),
}

impl HostMatch {
    /// Parses a route's `host` value.
    pub fn parse(pattern: &str) -> Result<HostMatch, String> {
        let lower = pattern.trim().to_ascii_lowercase();
        let (wildcard, name) = match lower.strip_prefix("*.") {
            Some(rest) => (true, rest),
            None => (false, lower.as_str()),
        };
        let valid = !name.is_empty()
            && name.split('.').all(|label| {
                !label.is_empty()
                    && label.len() <= 63
                    && label
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
            });
        if !valid {
            return Err(format!(
                "invalid host `{pattern}`: expected a name like \"api.example.com\" or \"*.example.com\" (no port, no scheme)"
            ));
        }
        Ok(if wildcard {
            HostMatch::Suffix(format!(".{name}"))
        } else {
            HostMatch::Exact(name.to_string())
        })
    }

    /// Whether `host` (already normalised by [`normalize_host`]) matches.
    pub fn matches(&self, host: &str) -> bool {
        match self {
            HostMatch::Any => true,
            HostMatch::Exact(name) => host == name,
            HostMatch::Suffix(suffix) => {
                host.len() > suffix.len() && host.ends_with(suffix.as_str())
            }
        }
    }
}

impl fmt::Display for HostMatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HostMatch::Any => f.write_str("*"),
            HostMatch::Exact(name) => f.write_str(name),
            HostMatch::Suffix(suffix) => write!(f, "*{suffix}"),
        }
    }
}

/// Lower-cases a Host value and strips its port and a trailing dot, borrowing when it can.
pub fn normalize_host(host: &str) -> std::borrow::Cow<'_, str> {
    let without_port = match host.rfind(':') {
        // An IPv6 literal "[::1]:80" keeps its brackets; only a port after `]` is cut.
        Some(colon) if !host[colon..].contains(']') => &host[..colon],
        _ => host,
    };
    let trimmed = without_port.strip_suffix('.').unwrap_or(without_port);
    if trimmed.bytes().any(|b| b.is_ascii_uppercase()) {
        std::borrow::Cow::Owned(trimmed.to_ascii_lowercase())
    } else {
        std::borrow::Cow::Borrowed(trimmed)
    }
}

/// A compiled route table: entries point at a target of type `T` (a pool, in the daemon).
#[derive(Debug)]
pub struct Router<T> {
    routes: Vec<(HostMatch, String, T)>,
}

impl<T> Router<T> {
    /// Builds a table from `(host, path_prefix, target)` entries in priority order.
    pub fn new(routes: Vec<(HostMatch, String, T)>) -> Self {
        Self { routes }
    }

    /// The first route matching `host` (normalised) and `path`.
    pub fn route(&self, host: &str, path: &str) -> Option<&T> {
        self.routes
            .iter()
            .find(|(h, prefix, _)| h.matches(host) && path.starts_with(prefix.as_str()))
            .map(|(_, _, target)| target)
    }

    /// Every target, in route order (a target may appear more than once).
    pub fn targets(&self) -> impl Iterator<Item = &T> {
        self.routes.iter().map(|(_, _, t)| t)
    }
}

/// `host [":" port]` as RFC 9110 §7.2 allows it in Host: a reg-name, an IPv4 address or a
/// bracketed IPv6 literal, and a port of 1–5 digits up to 65535. No userinfo (`u@h`), path,
/// query or empty name.
pub fn is_valid_authority(value: &str) -> bool {
    let (host, port) = if let Some(rest) = value.strip_prefix('[') {
        let Some((literal, after)) = rest.split_once(']') else {
            return false;
        };
        if literal.parse::<std::net::Ipv6Addr>().is_err() {
            return false;
        }
        match after {
            "" => return true,
            _ => match after.strip_prefix(':') {
                Some(port) => ("[]", Some(port)),
                None => return false,
            },
        }
    } else {
        match value.rsplit_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (value, None),
        }
    };
    let port_ok = port.is_none_or(|p| {
        !p.is_empty() && p.len() <= 5 && p.bytes().all(|b| b.is_ascii_digit()) && {
            p.parse::<u32>().is_ok_and(|n| n <= 65535)
        }
    });
    port_ok && (host == "[]" || is_reg_name(host))
}

/// unreserved / pct-encoded / sub-delims (RFC 3986 §3.2.2), non-empty.
fn is_reg_name(host: &str) -> bool {
    let bytes = host.as_bytes();
    if bytes.is_empty() {
        return false;
    }
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' => {
                let hex = bytes.get(i + 1..i + 3);
                if !hex.is_some_and(|h| h.iter().all(u8::is_ascii_hexdigit)) {
                    return false;
                }
                i += 3;
                continue;
            }
            b if b.is_ascii_alphanumeric() => {}
            b'-' | b'.' | b'_' | b'~' | b'!' | b'$' | b'&' | b'\'' | b'(' | b')' | b'*' | b'+'
            | b',' | b';' | b'=' => {}
            _ => return false,
        }
        i += 1;
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table() -> Router<&'static str> {
        Router::new(vec![
            (
                HostMatch::parse("api.example.com").unwrap(),
                "/v2".into(),
                "api-v2",
            ),
            (
                HostMatch::parse("api.example.com").unwrap(),
                "/".into(),
                "api",
            ),
            (
                HostMatch::parse("*.example.com").unwrap(),
                "/".into(),
                "wild",
            ),
            (HostMatch::Any, "/static".into(), "static"),
        ])
    }

    #[test]
    fn first_match_wins_by_host_then_prefix() {
        let t = table();
        assert_eq!(t.route("api.example.com", "/v2/users"), Some(&"api-v2"));
        assert_eq!(t.route("api.example.com", "/v1/users"), Some(&"api"));
        assert_eq!(t.route("www.example.com", "/"), Some(&"wild"));
        assert_eq!(t.route("a.b.example.com", "/"), Some(&"wild"));
        assert_eq!(t.route("example.com", "/static/x.css"), Some(&"static"));
        assert_eq!(t.route("example.com", "/"), None);
        assert_eq!(t.route("evilexample.com", "/"), None);
    }

    #[test]
    fn hosts_are_normalised() {
        assert_eq!(normalize_host("API.Example.com:8080"), "api.example.com");
        assert_eq!(normalize_host("api.example.com."), "api.example.com");
        assert_eq!(normalize_host("[::1]:8080"), "[::1]");
        assert_eq!(normalize_host("[::1]"), "[::1]");
        assert_eq!(normalize_host("10.0.0.1"), "10.0.0.1");
    }

    #[test]
    fn host_patterns_are_validated() {
        assert!(HostMatch::parse("http://x.com").is_err());
        assert!(HostMatch::parse("x.com:80").is_err());
        assert!(HostMatch::parse("").is_err());
        assert!(HostMatch::parse("a..b").is_err());
        assert_eq!(HostMatch::parse("*.X.com").unwrap().to_string(), "*.x.com");
    }
}
