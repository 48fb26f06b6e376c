//! What the daemon's own log shows at each level. portero's lines are written for the
//! operator: events of the daemon, its backends, feeds and stores, never one per connection or
//! request (that is the access log's job). The libraries on the wire (rustls, h2, hyper,
//! tokio-rustls) log what a peer sent them, some of it at WARN or ERROR (rustls warns about
//! every ClientHello that names an IP address as SNI, which every client connecting by address
//! sends): anything a client can trigger is DEBUG at most, so below `debug` they are silenced,
//! and what they report is counted in metrics instead (`portero_tls_handshakes_total`...).

/// Libraries whose events a client can trigger.
const WIRE_LIBRARIES: &[&str] = &["rustls", "tokio_rustls", "h2", "hyper", "hyper_util"];

/// The tracing filter for `log.level`: the level as written, plus `LIBRARY=off` for each wire
/// library when the level shows less than DEBUG and does not name the library itself (an
/// operator who writes `"info,rustls=debug"` gets what they asked for).
pub fn directives(level: &str) -> String {
    let base = level
        .split(',')
        .find(|d| !d.contains('='))
        .unwrap_or("info")
        .trim()
        .to_ascii_lowercase();
    let mut out = level.to_string();
    if matches!(base.as_str(), "debug" | "trace") {
        return out;
    }
    for library in WIRE_LIBRARIES {
        let named = level
            .split(',')
            .any(|d| d.split('=').next().is_some_and(|t| t.trim() == *library));
        if !named {
            out.push_str(&format!(",{library}=off"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wire_libraries_are_silent_below_debug() {
        assert_eq!(
            directives("info"),
            "info,rustls=off,tokio_rustls=off,h2=off,hyper=off,hyper_util=off"
        );
        assert!(directives("warn").contains("rustls=off"));
        assert!(directives("WARN,portero=info").contains("h2=off"));
    }

    #[test]
    fn debug_shows_them_and_a_named_library_keeps_its_level() {
        assert_eq!(directives("debug"), "debug");
        assert_eq!(directives("trace,h2=info"), "trace,h2=info");
        let named = directives("info,rustls=debug");
        let directives: Vec<&str> = named.split(',').collect();
        assert!(directives.contains(&"rustls=debug"), "{named}");
        assert!(!directives.contains(&"rustls=off"), "{named}");
        assert!(named.contains("h2=off"), "{named}");
    }
}
