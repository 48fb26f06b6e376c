//! `[[listener]] protocols`: which HTTP versions a listener speaks. A plain listener tells
//! HTTP/1 from HTTP/2 (h2c with prior knowledge) by a connection's first bytes unless told to
//! speak only one; a TLS listener offers the ALPN protocols listed (both by default).

use super::Problem;
use std::ops::Range;

/// What a listener speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ListenerProtocols {
    /// HTTP/1.1 (`"http1"` on a plain listener, `"http/1.1"` on a TLS one).
    pub http1: bool,
    /// HTTP/2 (`"h2c"` on a plain listener, `"h2"` on a TLS one).
    pub http2: bool,
}

impl Default for ListenerProtocols {
    fn default() -> Self {
        Self {
            http1: true,
            http2: true,
        }
    }
}

impl ListenerProtocols {
    /// Only HTTP/2: every connection is HTTP/2 from its first byte.
    pub fn http2_only(&self) -> bool {
        self.http2 && !self.http1
    }

    /// Only HTTP/1.
    pub fn http1_only(&self) -> bool {
        self.http1 && !self.http2
    }
}

/// The names a listener may list: ALPN identifiers on TLS, plain names otherwise.
fn names(tls: bool) -> [&'static str; 2] {
    if tls {
        ["http/1.1", "h2"]
    } else {
        ["http1", "h2c"]
    }
}

/// Checks `listener`'s `protocols = [...]` at `span`.
pub fn listener_protocols(
    listener: &str,
    tls: bool,
    listed: &[String],
    span: Range<usize>,
    problems: &mut Vec<Problem>,
) -> ListenerProtocols {
    let [http1, http2] = names(tls);
    let kind = if tls { "a TLS" } else { "a plain" };
    let mut problem = |text: String| {
        problems.push(Problem::at(
            span.clone(),
            format!("listener `{listener}`: {text}"),
        ))
    };
    if listed.is_empty() {
        problem(format!(
            "protocols is empty; list \"{http1}\", \"{http2}\" or both (both is the default)"
        ));
        return ListenerProtocols::default();
    }
    let mut out = ListenerProtocols {
        http1: false,
        http2: false,
    };
    for name in listed {
        let seen = if name == http1 {
            &mut out.http1
        } else if name == http2 {
            &mut out.http2
        } else {
            let hint = match (tls, name.as_str()) {
                (false, "h2" | "http/1.1") => " (that is an ALPN name, for TLS listeners)",
                (true, "h2c" | "http1") => {
                    " (that is for plain listeners; TLS ones name ALPN protocols)"
                }
                _ => "",
            };
            problem(format!(
                "protocols: {kind} listener speaks \"{http1}\" and \"{http2}\", not \"{name}\"{hint}"
            ));
            continue;
        };
        if *seen {
            problem(format!("protocols names \"{name}\" twice"));
        }
        *seen = true;
    }
    if !out.http1 && !out.http2 {
        return ListenerProtocols::default();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(tls: bool, listed: &[&str]) -> (ListenerProtocols, Vec<String>) {
        let listed: Vec<String> = listed.iter().map(|s| s.to_string()).collect();
        let mut problems = Vec::new();
        let protocols = listener_protocols("web", tls, &listed, 0..1, &mut problems);
        (protocols, problems.into_iter().map(|p| p.message).collect())
    }

    #[test]
    fn plain_listeners_name_http1_and_h2c() {
        let (only_h2, problems) = check(false, &["h2c"]);
        assert!(problems.is_empty() && only_h2.http2_only(), "{problems:?}");
        let (only_h1, _) = check(false, &["http1"]);
        assert!(only_h1.http1_only());
        let (both, _) = check(false, &["h2c", "http1"]);
        assert_eq!(both, ListenerProtocols::default());
        let (_, problems) = check(false, &["h2"]);
        assert!(
            problems[0].contains("ALPN name, for TLS listeners"),
            "{problems:?}"
        );
    }

    #[test]
    fn tls_listeners_name_alpn_protocols() {
        let (only_h2, problems) = check(true, &["h2"]);
        assert!(problems.is_empty() && only_h2.http2_only(), "{problems:?}");
        let (only_h1, _) = check(true, &["http/1.1"]);
        assert!(only_h1.http1_only());
        let (_, problems) = check(true, &["h2c"]);
        assert!(problems[0].contains("for plain listeners"), "{problems:?}");
    }

    #[test]
    fn empty_repeated_and_unknown_lists_are_problems() {
        assert!(check(false, &[]).1[0].contains("protocols is empty"));
        assert!(check(false, &["h2c", "h2c"]).1[0].contains("twice"));
        let (fallback, problems) = check(false, &["h3"]);
        assert!(problems[0].contains("not \"h3\""), "{problems:?}");
        assert_eq!(fallback, ListenerProtocols::default());
    }
}
