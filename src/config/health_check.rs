//! `[pool.NAME.health_check]`: validation of the active check's file entry into a
//! [`HealthCheckConfig`], and the status ranges a check accepts.

use super::Problem;
use super::file::HealthCheckFile;
use crate::route::is_valid_authority;
use std::ops::{Range, RangeInclusive};
use std::time::Duration;

/// Active health checks of a pool.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HealthCheckConfig {
    /// HTTP GET this path (origin-form); `None` = TCP connect.
    pub path: Option<String>,
    /// Host header (`:authority` on HTTP/2) of HTTP checks; `None` = the backend's address.
    pub host: Option<String>,
    /// Statuses that pass.
    pub expect_status: StatusRanges,
    /// Text the response body must contain, if any.
    pub expect_body: Option<String>,
    /// Time between checks of one backend (with ±10% jitter).
    pub interval: Duration,
    /// One check's deadline.
    pub timeout: Duration,
    /// Passes in a row to become healthy.
    pub rise: u32,
    /// Failures in a row to become unhealthy.
    pub fall: u32,
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
    let http_only = [
        file.host.as_ref(),
        file.expect_status.as_ref(),
        file.expect_body.as_ref(),
    ];
    if file.path.is_none()
        && let Some(key) = http_only.into_iter().flatten().next()
    {
        problems.push(Problem::at(
            key.span(),
            "health_check.host, expect_status and expect_body need `path` (without it the check is a TCP connect)",
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
    (problems.len() == before).then(|| HealthCheckConfig {
        path: file.path.as_ref().map(|p| p.get_ref().clone()),
        host: file.host.as_ref().map(|h| h.get_ref().clone()),
        expect_status,
        expect_body: file.expect_body.as_ref().map(|b| b.get_ref().clone()),
        interval: file.interval,
        timeout: file.timeout,
        rise: file.rise,
        fall: file.fall,
    })
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
