//! `[pool.NAME.health_check]`: validation of the active check's file entry into a
//! [`HealthCheckConfig`], and the status ranges a check accepts.

use super::Problem;
use super::file::HealthCheckFile;
pub use super::file::{CheckKindName, Role};
use super::tls::UpstreamTls;
use crate::route::is_valid_authority;
use std::ops::{Range, RangeInclusive};
use std::time::Duration;

/// Active health checks of a pool.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HealthCheckConfig {
    /// What one check does.
    pub kind: CheckKind,
    /// Time between checks of one backend (with ±10% jitter).
    pub interval: Duration,
    /// One check's deadline.
    pub timeout: Duration,
    /// Passes in a row to become healthy.
    pub rise: u32,
    /// Failures in a row to become unhealthy.
    pub fall: u32,
}

/// What one check does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CheckKind {
    /// A TCP connect.
    Tcp,
    /// An HTTP GET.
    Http(HttpCheck),
    /// A Redis login, then `INFO replication` for the node's role.
    Redis(StoreCheck),
    /// A MySQL/MariaDB login, then `@@read_only` and the replica status for its role.
    Mysql(StoreCheck),
}

impl CheckKind {
    /// The role a backend must have, for the kinds that ask.
    pub fn role(&self) -> Role {
        match self {
            CheckKind::Redis(store) | CheckKind::Mysql(store) => store.role,
            CheckKind::Tcp | CheckKind::Http(_) => Role::Any,
        }
    }
}

/// An HTTP check: `GET path` passes on an expected status and, if asked, body text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpCheck {
    /// The origin-form target.
    pub path: String,
    /// Host header (`:authority` on HTTP/2); `None` = the backend's address.
    pub host: Option<String>,
    /// Statuses that pass.
    pub expect_status: StatusRanges,
    /// Text the response body must contain, if any.
    pub expect_body: Option<String>,
}

/// A data store's check: log in, then ask the node for its role.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoreCheck {
    /// The role that passes.
    pub role: Role,
    /// Who logs in (Redis: an ACL user, or none for `AUTH password` alone; MySQL: required).
    pub user: Option<String>,
    /// The password, read from `password_env` when the config loaded.
    pub password: Option<Secret>,
    /// `Replica`: the most replication lag that passes.
    pub max_lag: Option<Duration>,
    /// Redis: TLS to the node, its certificate checked (`None` = plain TCP).
    pub tls: Option<UpstreamTls>,
}

/// A password: kept out of `Debug` output, so it never reaches a log line.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(pub String);

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(..)")
    }
}

/// A set of HTTP statuses, as ranges (`"200-399"`, `"200,204"`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatusRanges(Vec<RangeInclusive<u16>>);

impl Default for StatusRanges {
    /// 2xx and 3xx: what HAProxy and Envoy count as a passing check unless told otherwise.
    fn default() -> Self {
        StatusRanges(vec![200..=399])
    }
}

impl StatusRanges {
    /// Parses comma-separated statuses and `LOW-HIGH` ranges, each within 100-599.
    pub fn parse(text: &str) -> Result<StatusRanges, String> {
        let invalid = || {
            format!(
                "invalid expect_status `{text}`: use statuses and ranges such as \"200\" or \"200-299,304\""
            )
        };
        let status = |s: &str| {
            s.trim()
                .parse::<u16>()
                .ok()
                .filter(|n| (100..=599).contains(n))
        };
        let mut ranges = Vec::new();
        for part in text.split(',') {
            let range = match part.split_once('-') {
                Some((low, high)) => status(low).zip(status(high)).map(|(l, h)| l..=h),
                None => status(part).map(|s| s..=s),
            };
            match range {
                Some(range) if !range.is_empty() => ranges.push(range),
                _ => return Err(invalid()),
            }
        }
        Ok(StatusRanges(ranges))
    }

    /// Whether `status` is in the set.
    pub fn contains(&self, status: u16) -> bool {
        self.0.iter().any(|range| range.contains(&status))
    }
}

/// Validates one `[pool.NAME.health_check]` table; problems go to `problems`.
pub(super) fn health_check(
    file: &HealthCheckFile,
    span: Range<usize>,
    problems: &mut Vec<Problem>,
) -> Option<HealthCheckConfig> {
    let before = problems.len();
    let kind = match file.kind.as_ref().map(|k| (*k.get_ref(), k.span())) {
        None if file.path.is_some() => http_check(file, problems),
        Some((CheckKindName::Http, span)) => {
            if file.path.is_none() {
                problems.push(Problem::at(
                    span,
                    "health_check kind = \"http\" needs `path`",
                ));
            }
            http_check(file, problems)
        }
        Some((CheckKindName::Tcp, _)) => {
            not_for(file, HTTP_KEYS, problems, |key| {
                format!("health_check.{key} is for HTTP checks, not kind = \"tcp\"")
            });
            not_for(file, STORE_KEYS, problems, |key| {
                format!("health_check.{key} is for kind = \"redis\" or \"mysql\"")
            });
            CheckKind::Tcp
        }
        None => {
            not_for(file, HTTP_KEYS, problems, |key| {
                format!("health_check.{key} needs `path` (without it the check is a TCP connect)")
            });
            not_for(file, STORE_KEYS, problems, |key| {
                format!("health_check.{key} is for kind = \"redis\" or \"mysql\"")
            });
            CheckKind::Tcp
        }
        Some((CheckKindName::Redis, _)) => CheckKind::Redis(store_check(file, problems)),
        Some((CheckKindName::Mysql, span)) => {
            if file.user.is_none() {
                problems.push(Problem::at(
                    span,
                    "health_check kind = \"mysql\" needs `user` (and `password_env`): the account the check logs in as",
                ));
            }
            CheckKind::Mysql(store_check(file, problems))
        }
    };
    if let Some(tls) = &file.tls
        && !matches!(kind, CheckKind::Redis(_))
    {
        problems.push(Problem::at(
            tls.span(),
            "health_check.tls is for kind = \"redis\" (an HTTP check speaks the pool's [pool.NAME.tls]; a mysql check logs in over plain TCP)",
        ));
    }
    if file.rise == 0 || file.fall == 0 {
        problems.push(Problem::at(
            span.clone(),
            "health_check.rise and fall must be at least 1",
        ));
    }
    if file.interval < Duration::from_millis(10) || file.timeout.is_zero() {
        problems.push(Problem::at(
            span,
            "health_check.interval must be at least 10ms and timeout more than 0",
        ));
    }
    (problems.len() == before).then_some(HealthCheckConfig {
        kind,
        interval: file.interval,
        timeout: file.timeout,
        rise: file.rise,
        fall: file.fall,
    })
}

/// The keys only an HTTP check reads, and those only a data store's check reads.
const HTTP_KEYS: &[&str] = &["path", "host", "expect_status", "expect_body"];
const STORE_KEYS: &[&str] = &["role", "user", "password_env", "max_lag"];

/// The span of each of `keys` that `file` sets.
fn set_keys(file: &HealthCheckFile, keys: &[&'static str]) -> Vec<(&'static str, Range<usize>)> {
    let span = |key: &str| match key {
        "path" => file.path.as_ref().map(toml::Spanned::span),
        "host" => file.host.as_ref().map(toml::Spanned::span),
        "expect_status" => file.expect_status.as_ref().map(toml::Spanned::span),
        "expect_body" => file.expect_body.as_ref().map(toml::Spanned::span),
        "role" => file.role.as_ref().map(toml::Spanned::span),
        "user" => file.user.as_ref().map(toml::Spanned::span),
        "password_env" => file.password_env.as_ref().map(toml::Spanned::span),
        // A plain duration carries no span: the message names the key.
        "max_lag" => file.max_lag.map(|_| 0..0),
        _ => None,
    };
    keys.iter()
        .filter_map(|&key| span(key).map(|s| (key, s)))
        .collect()
}

/// A problem, worded by `message`, for every key of `keys` set on a check that does not
/// read it.
fn not_for(
    file: &HealthCheckFile,
    keys: &[&'static str],
    problems: &mut Vec<Problem>,
    message: impl Fn(&str) -> String,
) {
    for (key, span) in set_keys(file, keys) {
        let text = message(key);
        problems.push(if span.is_empty() {
            Problem::message(text)
        } else {
            Problem::at(span, text)
        });
    }
}

fn http_check(file: &HealthCheckFile, problems: &mut Vec<Problem>) -> CheckKind {
    not_for(file, STORE_KEYS, problems, |key| {
        format!("health_check.{key} is for kind = \"redis\" or \"mysql\", not an HTTP check")
    });
    if let Some(path) = &file.path
        && !is_origin_form(path.get_ref())
    {
        problems.push(Problem::at(
            path.span(),
            "health_check.path must start with `/`: an origin-form target, a path and an optional `?query`",
        ));
    }
    if let Some(host) = &file.host
        && !is_valid_authority(host.get_ref())
    {
        problems.push(Problem::at(
            host.span(),
            format!(
                "invalid health_check.host `{}`: use a host name or address, with an optional :port",
                host.get_ref()
            ),
        ));
    }
    let expect_status = match &file.expect_status {
        None => StatusRanges::default(),
        Some(text) => StatusRanges::parse(text.get_ref()).unwrap_or_else(|e| {
            problems.push(Problem::at(text.span(), e));
            StatusRanges::default()
        }),
    };
    CheckKind::Http(HttpCheck {
        path: file
            .path
            .as_ref()
            .map_or_else(|| "/".to_string(), |p| p.get_ref().clone()),
        host: file.host.as_ref().map(|h| h.get_ref().clone()),
        expect_status,
        expect_body: file.expect_body.as_ref().map(|b| b.get_ref().clone()),
    })
}

fn store_check(file: &HealthCheckFile, problems: &mut Vec<Problem>) -> StoreCheck {
    not_for(file, HTTP_KEYS, problems, |key| {
        format!("health_check.{key} is for HTTP checks; this one logs in to a data store")
    });
    let role = file.role.as_ref().map_or(Role::Any, |r| *r.get_ref());
    if file.max_lag.is_some() && role != Role::Replica {
        problems.push(Problem::message(
            "health_check.max_lag applies to role = \"replica\" only",
        ));
    }
    let password = file.password_env.as_ref().and_then(|name| {
        match std::env::var(name.get_ref()) {
            Ok(password) => Some(Secret(password)),
            Err(_) => {
                problems.push(Problem::at(
                    name.span(),
                    format!(
                        "health_check.password_env names `{}`, which is not set in portero's environment",
                        name.get_ref()
                    ),
                ));
                None
            }
        }
    });
    let tls = file.tls.as_ref().and_then(|tls| {
        super::tls::tls_to("health_check.tls", tls.get_ref(), tls.span(), problems)
    });
    StoreCheck {
        role,
        user: file.user.as_ref().map(|u| u.get_ref().clone()),
        password,
        max_lag: file.max_lag,
        tls,
    }
}

/// `/path?query` that parses as a request target, with no scheme or authority.
fn is_origin_form(path: &str) -> bool {
    path.starts_with('/')
        && path
            .parse::<http::uri::PathAndQuery>()
            .is_ok_and(|p| p.as_str() == path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_ranges_parse_single_statuses_and_ranges() {
        let ranges = StatusRanges::parse("200, 204,300-399").unwrap();
        assert!(ranges.contains(200) && ranges.contains(204) && ranges.contains(302));
        assert!(!ranges.contains(201) && !ranges.contains(400) && !ranges.contains(503));
    }

    #[test]
    fn default_status_ranges_are_2xx_and_3xx() {
        let ranges = StatusRanges::default();
        assert!(ranges.contains(200) && ranges.contains(399));
        assert!(!ranges.contains(199) && !ranges.contains(400));
    }

    #[test]
    fn invalid_status_ranges_are_refused() {
        for text in ["", "abc", "200-", "399-200", "99", "600", "200,,300", "2xx"] {
            assert!(StatusRanges::parse(text).is_err(), "{text:?} accepted");
        }
    }

    /// The problems `text`, a `[pool.x.health_check]` table's body, has.
    fn problems(text: &str) -> String {
        let file: HealthCheckFile = toml::from_str(text).unwrap();
        let mut problems = Vec::new();
        health_check(&file, 0..0, &mut problems);
        problems
            .iter()
            .map(|p| p.message.clone())
            .collect::<Vec<_>>()
            .join("; ")
    }

    #[test]
    fn each_kind_refuses_the_keys_of_the_others() {
        let cases = [
            ("kind = \"mysql\"\nrole = \"primary\"\n", "needs `user`"),
            (
                "kind = \"redis\"\nrole = \"primary\"\nmax_lag = \"5s\"\n",
                "max_lag applies to role = \"replica\"",
            ),
            (
                "kind = \"redis\"\npath = \"/healthz\"\n",
                "health_check.path is for HTTP checks",
            ),
            (
                "kind = \"tcp\"\npath = \"/healthz\"\n",
                "health_check.path is for HTTP checks, not kind = \"tcp\"",
            ),
            (
                "role = \"primary\"\n",
                "health_check.role is for kind = \"redis\" or \"mysql\"",
            ),
            (
                "path = \"/healthz\"\nuser = \"u\"\n",
                "health_check.user is for kind = \"redis\" or \"mysql\", not an HTTP check",
            ),
            ("kind = \"http\"\n", "needs `path`"),
            (
                "kind = \"redis\"\npassword_env = \"PORTERO_TEST_SURELY_UNSET\"\n",
                "which is not set",
            ),
            (
                "kind = \"mysql\"\nuser = \"check\"\ntls = {}\n",
                "health_check.tls is for kind = \"redis\" (",
            ),
            (
                "path = \"/healthz\"\ntls = {}\n",
                "an HTTP check speaks the pool's [pool.NAME.tls]",
            ),
            (
                "kind = \"redis\"\ntls = { ca_file = \"/nonexistent/ca.pem\" }\n",
                "health_check.tls: ",
            ),
            (
                "kind = \"redis\"\ntls = { server_name = \"bad name!\" }\n",
                "health_check.tls: invalid server_name",
            ),
        ];
        for (text, expected) in cases {
            let shown = problems(text);
            assert!(shown.contains(expected), "{text:?}: {shown}");
        }
        assert_eq!(
            problems("kind = \"redis\"\nrole = \"replica\"\nmax_lag = \"5s\"\n"),
            ""
        );
        assert_eq!(
            problems("kind = \"mysql\"\nuser = \"check\"\nrole = \"replica\"\n"),
            ""
        );
    }

    #[test]
    fn only_origin_form_paths_and_plain_authorities_pass() {
        assert!(is_origin_form("/healthz") && is_origin_form("/health?full=1"));
        assert!(!is_origin_form("healthz") && !is_origin_form("/a b"));
        assert!(is_valid_authority("api.internal") && is_valid_authority("10.0.0.5:8080"));
        assert!(is_valid_authority("[::1]:80"));
        for bad in ["", "user@host", "host/path", "host:99999", "a b"] {
            assert!(!is_valid_authority(bad), "{bad:?} accepted");
        }
    }
}
