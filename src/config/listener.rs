//! `[[listener]] protocol`, `pool` and `sni`: what a listener does with its connections
//! (HTTP through the proxy, or TCP to a pool, chosen by SNI on a passthrough listener), for
//! `server::tcp`; and which pools serve tcp listeners, so routes and pool defaults can tell.

use super::Problem;
use super::file::{ListenerFile, ProtocolName};
use super::load::FileConfig;
use crate::route::HostMatch;
use std::collections::BTreeSet;
use toml::Spanned;

/// What a listener does with its connections.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ListenerMode {
    /// HTTP/1.1 and HTTP/2 through the proxy, routed by `[[route]]`.
    Http,
    /// Each connection joined to one backend of `pool`, bytes copied both ways.
    Tcp {
        /// The pool's name.
        pool: String,
    },
    /// As `Tcp`, with the pool chosen by the server name of the client's TLS ClientHello,
    /// which is read but not answered: the backend terminates TLS.
    TlsPassthrough {
        /// Pools by server name, first match wins.
        sni: Vec<SniRoute>,
        /// The pool for a name no rule matches, or a ClientHello without one.
        default: Option<String>,
    },
}

/// One `sni` rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SniRoute {
    /// The names it matches.
    pub name: HostMatch,
    /// Its pool.
    pub pool: String,
}

impl ListenerMode {
    /// The pool a session goes to: a tcp listener's one pool; a passthrough listener's by
    /// the ClientHello's `server_name`. `None`: an HTTP listener, or no rule and no default.
    pub fn pool_for(&self, server_name: Option<&str>) -> Option<&str> {
        match self {
            ListenerMode::Http => None,
            ListenerMode::Tcp { pool } => Some(pool),
            ListenerMode::TlsPassthrough { sni, default } => server_name
                .and_then(|name| sni.iter().find(|rule| rule.name.matches(name)))
                .map(|rule| rule.pool.as_str())
                .or(default.as_deref()),
        }
    }
}

/// What `listener` does: HTTP, or TCP to its pool. The keys of the other mode are refused,
/// so a file never says two things about one listener.
pub(super) fn listener_mode(
    name: &str,
    listener: &ListenerFile,
    file: &FileConfig,
    problems: &mut Vec<Problem>,
) -> ListenerMode {
    let protocol = listener.protocol.as_ref();
    match protocol.map(|p| *p.get_ref()) {
        None | Some(ProtocolName::Http) => {
            let keys = [
                listener.pool.as_ref().map(|p| ("pool", p.span())),
                listener.sni.as_ref().map(|s| ("sni", s.span())),
            ];
            for (key, span) in keys.into_iter().flatten() {
                problems.push(Problem::at(
                    span,
                    format!("listener `{name}`: `{key}` is for protocol = \"tcp\" or \"tls-passthrough\"; HTTP listeners route with [[route]]"),
                ));
            }
            ListenerMode::Http
        }
        Some(kind @ (ProtocolName::Tcp | ProtocolName::TlsPassthrough)) => {
            let named = if kind == ProtocolName::Tcp {
                "tcp"
            } else {
                "tls-passthrough"
            };
            let http_only = [
                (listener.tls.is_some(), "tls"),
                (listener.http_redirect, "http_redirect"),
                (listener.protocols.is_some(), "protocols"),
            ];
            for (_, key) in http_only.iter().filter(|(set, _)| *set) {
                problems.push(Problem::message(format!(
                    "listener `{name}`: `{key}` is for HTTP listeners, not protocol = \"{named}\""
                )));
            }
            let mut pool_exists = |pool: &Spanned<String>| {
                if !file.pools.contains_key(pool.get_ref()) {
                    problems.push(Problem::at(
                        pool.span(),
                        format!(
                            "listener `{name}` names pool `{}`, which does not exist",
                            pool.get_ref()
                        ),
                    ));
                }
            };
            listener.pool.iter().for_each(&mut pool_exists);
            let rules = listener
                .sni
                .as_ref()
                .map_or(&[][..], |s| s.get_ref().as_slice());
            rules.iter().for_each(|rule| pool_exists(&rule.pool));
            if kind == ProtocolName::Tcp {
                if let Some(sni) = &listener.sni {
                    problems.push(Problem::at(
                        sni.span(),
                        format!("listener `{name}`: `sni` is for protocol = \"tls-passthrough\""),
                    ));
                }
                let Some(pool) = &listener.pool else {
                    problems.push(Problem::message(format!(
                        "listener `{name}`: protocol = \"tcp\" needs `pool`, the pool its connections go to"
                    )));
                    return ListenerMode::Http;
                };
                return ListenerMode::Tcp {
                    pool: pool.get_ref().clone(),
                };
            }
            if listener.pool.is_none() && rules.is_empty() {
                problems.push(Problem::message(format!(
                    "listener `{name}`: protocol = \"tls-passthrough\" needs `sni` rules, a default `pool`, or both"
                )));
            }
            let sni = rules
                .iter()
                .filter_map(|rule| match HostMatch::parse(rule.name.get_ref()) {
                    Ok(HostMatch::Any) | Err(_) => {
                        problems.push(Problem::at(
                            rule.name.span(),
                            format!("invalid sni name `{}`: use a name like \"db.example.com\" or \"*.example.com\"", rule.name.get_ref()),
                        ));
                        None
                    }
                    Ok(name) => Some(SniRoute {
                        name,
                        pool: rule.pool.get_ref().clone(),
                    }),
                })
                .collect();
            ListenerMode::TlsPassthrough {
                sni,
                default: listener.pool.as_ref().map(|p| p.get_ref().clone()),
            }
        }
    }
}

/// The pools `tcp` and `tls-passthrough` listeners name.
pub(super) fn tcp_pools(file: &FileConfig) -> BTreeSet<&str> {
    file.listeners
        .iter()
        .filter(|l| !serves_http(l))
        .flat_map(|l| {
            let rules = l.sni.as_ref().map_or(&[][..], |s| s.get_ref().as_slice());
            l.pool
                .iter()
                .chain(rules.iter().map(|rule| &rule.pool))
                .map(|pool| pool.get_ref().as_str())
        })
        .collect()
}

/// Whether a listener serves HTTP (the default protocol).
pub(super) fn serves_http(listener: &ListenerFile) -> bool {
    listener
        .protocol
        .as_ref()
        .is_none_or(|p| *p.get_ref() == ProtocolName::Http)
}
