//! Why portero answered a request itself, and the one table mapping each reason to a status.

use super::sanitize::Invalid;
use crate::body::{ClientBodyError, ResponseBody};
use crate::upstream::UpstreamError;
use http::{HeaderValue, Response, StatusCode, header};
use std::time::Duration;

/// A request portero could not (or would not) pass to a backend.
#[derive(Debug, thiserror::Error)]
pub enum ProxyError {
    /// A request head portero refuses to pass on (framing, Host, limits, Expect...).
    #[error("{0}")]
    Invalid(#[from] Invalid),
    /// The request body failed: malformed, over the limit, or too slow.
    #[error("{0}")]
    ClientBody(#[from] ClientBodyError),
    /// The client's address is not allowed by the route's allow/deny lists.
    #[error("forbidden by the route's access rules")]
    Forbidden,
    /// The daemon is past 98% of `limits.max_memory`.
    #[error("overloaded")]
    Overloaded,
    /// The client's request rate is over its budget.
    #[error("rate limited")]
    RateLimited {
        /// When a request would be allowed again.
        retry_after: Duration,
    },
    /// The connection's TLS certificate does not cover the Host asked for.
    #[error("misdirected: the certificate does not cover this host")]
    Misdirected,
    /// No route matches the host and path.
    #[error("no route for this host and path")]
    NoRoute,
    /// The pool has no backend that can take the request.
    #[error("no healthy backend in pool")]
    NoHealthyBackend,
    /// The backend could not be connected to.
    #[error("{0}")]
    Upstream(#[from] UpstreamError),
    /// The backend did not send a response head within `timeouts.upstream_response`.
    #[error("upstream response timed out")]
    UpstreamTimeout,
    /// The backend answered 101 to a request that asked for no upgrade, or the upgrade failed.
    #[error("invalid upgrade from upstream")]
    BadUpgrade,
}

impl ProxyError {
    /// The status sent to the client: the one place this mapping lives.
    pub fn status(&self) -> StatusCode {
        match self {
            ProxyError::Invalid(invalid) => match invalid {
                Invalid::Framing
                | Invalid::Host
                | Invalid::HostMismatch
                | Invalid::Header
                | Invalid::Target => StatusCode::BAD_REQUEST,
                Invalid::UriTooLong => StatusCode::URI_TOO_LONG,
                Invalid::BodyTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
                Invalid::Expectation => StatusCode::EXPECTATION_FAILED,
                Invalid::Method => StatusCode::METHOD_NOT_ALLOWED,
            },
            ProxyError::ClientBody(body)
            | ProxyError::Upstream(UpstreamError::ClientBody(body)) => match body {
                ClientBodyError::Read => StatusCode::BAD_REQUEST,
                ClientBodyError::TooLarge => StatusCode::PAYLOAD_TOO_LARGE,
                ClientBodyError::Timeout => StatusCode::REQUEST_TIMEOUT,
            },
            ProxyError::Forbidden => StatusCode::FORBIDDEN,
            ProxyError::Overloaded => StatusCode::SERVICE_UNAVAILABLE,
            ProxyError::RateLimited { .. } => StatusCode::TOO_MANY_REQUESTS,
            ProxyError::Misdirected => StatusCode::MISDIRECTED_REQUEST,
            ProxyError::NoRoute => StatusCode::NOT_FOUND,
            ProxyError::NoHealthyBackend => StatusCode::SERVICE_UNAVAILABLE,
            ProxyError::Upstream(UpstreamError::Connect(_)) => StatusCode::BAD_GATEWAY,
            ProxyError::Upstream(UpstreamError::ConnectTimeout) => StatusCode::GATEWAY_TIMEOUT,
            ProxyError::Upstream(UpstreamError::Request(_)) => StatusCode::BAD_GATEWAY,
            ProxyError::UpstreamTimeout => StatusCode::GATEWAY_TIMEOUT,
            ProxyError::BadUpgrade => StatusCode::BAD_GATEWAY,
        }
    }

    /// A short stable name for logs and metric labels.
    pub fn kind(&self) -> &'static str {
        match self {
            ProxyError::Invalid(invalid) => match invalid {
                Invalid::Framing => "bad_framing",
                Invalid::Host => "bad_host",
                Invalid::HostMismatch => "host_mismatch",
                Invalid::UriTooLong => "uri_too_long",
                Invalid::Header => "bad_header",
                Invalid::BodyTooLarge => "body_too_large",
                Invalid::Expectation => "expectation_failed",
                Invalid::Method => "method_not_allowed",
                Invalid::Target => "bad_target",
            },
            ProxyError::ClientBody(body)
            | ProxyError::Upstream(UpstreamError::ClientBody(body)) => match body {
                ClientBodyError::Read => "bad_request_body",
                ClientBodyError::TooLarge => "body_too_large",
                ClientBodyError::Timeout => "request_body_timeout",
            },
            ProxyError::Forbidden => "forbidden",
            ProxyError::Overloaded => "overloaded",
            ProxyError::RateLimited { .. } => "rate_limited",
            ProxyError::Misdirected => "misdirected",
            ProxyError::NoRoute => "no_route",
            ProxyError::NoHealthyBackend => "no_healthy_backend",
            ProxyError::Upstream(UpstreamError::Connect(_)) => "connect_failed",
            ProxyError::Upstream(UpstreamError::ConnectTimeout) => "connect_timeout",
            ProxyError::Upstream(UpstreamError::Request(_)) => "upstream_failed",
            ProxyError::UpstreamTimeout => "upstream_timeout",
            ProxyError::BadUpgrade => "bad_upgrade",
        }
    }

    /// The response: a short plain-text body; 503 says when to retry; a bad request closes.
    pub fn into_response(&self) -> Response<ResponseBody> {
        let status = self.status();
        let text = format!(
            "{} {}\n",
            status.as_u16(),
            status.canonical_reason().unwrap_or("Error")
        );
        let mut response = Response::new(ResponseBody::full(text));
        *response.status_mut() = status;
        let headers = response.headers_mut();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/plain; charset=utf-8"),
        );
        match self {
            ProxyError::NoHealthyBackend => {
                headers.insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
            }
            ProxyError::Overloaded => {
                headers.insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
                headers.insert(header::CONNECTION, HeaderValue::from_static("close"));
            }
            ProxyError::RateLimited { retry_after } => {
                let seconds = retry_after.as_secs_f64().ceil().max(1.0) as u64;
                headers.insert(header::RETRY_AFTER, HeaderValue::from(seconds));
            }
            // The request's body may be unread, or its framing doubtful: nothing more is
            // read from this connection.
            ProxyError::Invalid(invalid) => {
                headers.insert(header::CONNECTION, HeaderValue::from_static("close"));
                if *invalid == Invalid::Method {
                    headers.insert(
                        header::ALLOW,
                        HeaderValue::from_static("GET, HEAD, POST, PUT, DELETE, PATCH, OPTIONS"),
                    );
                }
            }
            ProxyError::ClientBody(_) | ProxyError::Upstream(UpstreamError::ClientBody(_)) => {
                headers.insert(header::CONNECTION, HeaderValue::from_static("close"));
            }
            _ => {}
        }
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_arm_maps_to_its_status() {
        let cases = [
            (ProxyError::Invalid(Invalid::Framing), 400),
            (ProxyError::Invalid(Invalid::Host), 400),
            (ProxyError::Invalid(Invalid::HostMismatch), 400),
            (ProxyError::Invalid(Invalid::Header), 400),
            (ProxyError::Invalid(Invalid::UriTooLong), 414),
            (ProxyError::Invalid(Invalid::BodyTooLarge), 413),
            (ProxyError::Invalid(Invalid::Expectation), 417),
            (ProxyError::Invalid(Invalid::Method), 405),
            (ProxyError::Invalid(Invalid::Target), 400),
            (ProxyError::ClientBody(ClientBodyError::Read), 400),
            (ProxyError::ClientBody(ClientBodyError::TooLarge), 413),
            (ProxyError::ClientBody(ClientBodyError::Timeout), 408),
            (
                ProxyError::Upstream(UpstreamError::ClientBody(ClientBodyError::Timeout)),
                408,
            ),
            (ProxyError::Forbidden, 403),
            (ProxyError::Overloaded, 503),
            (
                ProxyError::RateLimited {
                    retry_after: Duration::from_millis(1500),
                },
                429,
            ),
            (ProxyError::Misdirected, 421),
            (ProxyError::NoRoute, 404),
            (ProxyError::NoHealthyBackend, 503),
            (
                ProxyError::Upstream(UpstreamError::Connect("refused".into())),
                502,
            ),
            (ProxyError::Upstream(UpstreamError::ConnectTimeout), 504),
            (
                ProxyError::Upstream(UpstreamError::Request("reset".into())),
                502,
            ),
            (ProxyError::UpstreamTimeout, 504),
            (ProxyError::BadUpgrade, 502),
        ];
        for (error, status) in cases {
            let response = error.into_response();
            assert_eq!(response.status().as_u16(), status, "{error:?}");
            assert_eq!(error.status().as_u16(), status);
        }
        let busy = ProxyError::NoHealthyBackend.into_response();
        assert_eq!(busy.headers()[header::RETRY_AFTER], "1");
        let limited = ProxyError::RateLimited {
            retry_after: Duration::from_millis(1500),
        }
        .into_response();
        assert_eq!(limited.headers()[header::RETRY_AFTER], "2");
        let refused = ProxyError::Invalid(Invalid::Framing).into_response();
        assert_eq!(refused.headers()[header::CONNECTION], "close");
    }
}
