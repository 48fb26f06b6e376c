//! Why portero answered a request itself, and the one table mapping each reason to a status.

use super::ResponseBody;
use super::grpc;
use super::sanitize::Invalid;
use crate::body::ClientBodyError;
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
    /// The method is in `security.deny_methods`.
    #[error("method denied by security.deny_methods")]
    MethodDenied {
        /// The `Allow` value: the common methods that are not denied.
        allow: HeaderValue,
    },
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
    /// The gRPC call's own deadline (`grpc-timeout`) passed before the backend's response
    /// head: the client's bound, so not counted against the backend.
    #[error("the call's grpc-timeout passed before the backend answered")]
    DeadlineExceeded,
    /// The backend answered 101 to a request that asked for no upgrade, or the upgrade failed.
    #[error("invalid upgrade from upstream")]
    BadUpgrade,
}

impl ProxyError {
    /// The HTTP status sent to a client, and the gRPC status sent to a gRPC client instead:
    /// the one place this mapping lives.
    ///
    /// The gRPC column starts from what a gRPC client would conclude from the HTTP status
    /// alone (grpc/grpc doc/http-grpc-status-mapping.md: 400 INTERNAL, 403 PERMISSION_DENIED,
    /// 404 UNIMPLEMENTED, 502/503 UNAVAILABLE) and says more where portero knows more: a
    /// backend that was sent the call and did not answer in time is DEADLINE_EXCEEDED, not
    /// UNAVAILABLE, which would tell the client the call was not processed and may be retried
    /// (a connect timeout, where nothing was sent, stays UNAVAILABLE), and so is a client body
    /// that stalled (408); a rate limit is a quota, RESOURCE_EXHAUSTED, as are size limits
    /// (413, 414, 431), which is what gRPC's own implementations answer for a message or
    /// metadata over their limits. (A head over `limits.max_header_bytes`, and HTTP/1's field
    /// count, are answered 431 by hyper and h2 before a handler; HTTP/2's field count is here.)
    pub fn statuses(&self) -> (StatusCode, grpc::Code) {
        use grpc::Code;
        match self {
            ProxyError::Invalid(invalid) => match invalid {
                Invalid::Framing
                | Invalid::Host
                | Invalid::HostMismatch
                | Invalid::Header
                | Invalid::Target => (StatusCode::BAD_REQUEST, Code::Internal),
                Invalid::UriTooLong => (StatusCode::URI_TOO_LONG, Code::ResourceExhausted),
                Invalid::TooManyHeaders => (
                    StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
                    Code::ResourceExhausted,
                ),
                Invalid::BodyTooLarge => (StatusCode::PAYLOAD_TOO_LARGE, Code::ResourceExhausted),
                Invalid::Expectation => (StatusCode::EXPECTATION_FAILED, Code::Internal),
                Invalid::Method => (StatusCode::METHOD_NOT_ALLOWED, Code::Unimplemented),
            },
            ProxyError::ClientBody(body)
            | ProxyError::Upstream(UpstreamError::ClientBody(body)) => match body {
                ClientBodyError::Read => (StatusCode::BAD_REQUEST, Code::Internal),
                ClientBodyError::TooLarge => {
                    (StatusCode::PAYLOAD_TOO_LARGE, Code::ResourceExhausted)
                }
                ClientBodyError::Timeout => (StatusCode::REQUEST_TIMEOUT, Code::DeadlineExceeded),
            },
            ProxyError::Forbidden => (StatusCode::FORBIDDEN, Code::PermissionDenied),
            ProxyError::MethodDenied { .. } => {
                (StatusCode::METHOD_NOT_ALLOWED, Code::Unimplemented)
            }
            ProxyError::Overloaded => (StatusCode::SERVICE_UNAVAILABLE, Code::Unavailable),
            ProxyError::RateLimited { .. } => {
                (StatusCode::TOO_MANY_REQUESTS, Code::ResourceExhausted)
            }
            ProxyError::Misdirected => (StatusCode::MISDIRECTED_REQUEST, Code::Unavailable),
            ProxyError::NoRoute => (StatusCode::NOT_FOUND, Code::Unimplemented),
            ProxyError::NoHealthyBackend => (StatusCode::SERVICE_UNAVAILABLE, Code::Unavailable),
            ProxyError::Upstream(UpstreamError::Connect(_)) => {
                (StatusCode::BAD_GATEWAY, Code::Unavailable)
            }
            ProxyError::Upstream(UpstreamError::ConnectTimeout) => {
                (StatusCode::GATEWAY_TIMEOUT, Code::Unavailable)
            }
            ProxyError::Upstream(UpstreamError::Request(_)) => {
                (StatusCode::BAD_GATEWAY, Code::Unavailable)
            }
            ProxyError::UpstreamTimeout => (StatusCode::GATEWAY_TIMEOUT, Code::DeadlineExceeded),
            ProxyError::DeadlineExceeded => (StatusCode::GATEWAY_TIMEOUT, Code::DeadlineExceeded),
            ProxyError::BadUpgrade => (StatusCode::BAD_GATEWAY, Code::Unavailable),
        }
    }

    /// The HTTP status sent to the client.
    pub fn status(&self) -> StatusCode {
        self.statuses().0
    }

    /// A short stable name for logs and metric labels.
    pub fn kind(&self) -> &'static str {
        match self {
            ProxyError::Invalid(invalid) => match invalid {
                Invalid::Framing => "bad_framing",
                Invalid::Host => "bad_host",
                Invalid::HostMismatch => "host_mismatch",
                Invalid::UriTooLong => "uri_too_long",
                Invalid::TooManyHeaders => "too_many_headers",
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
            ProxyError::MethodDenied { .. } => "method_denied",
            ProxyError::Overloaded => "overloaded",
            ProxyError::RateLimited { .. } => "rate_limited",
            ProxyError::Misdirected => "misdirected",
            ProxyError::NoRoute => "no_route",
            ProxyError::NoHealthyBackend => "no_healthy_backend",
            ProxyError::Upstream(UpstreamError::Connect(_)) => "connect_failed",
            ProxyError::Upstream(UpstreamError::ConnectTimeout) => "connect_timeout",
            ProxyError::Upstream(UpstreamError::Request(_)) => "upstream_failed",
            ProxyError::UpstreamTimeout => "upstream_timeout",
            ProxyError::DeadlineExceeded => "deadline_exceeded",
            ProxyError::BadUpgrade => "bad_upgrade",
        }
    }

    /// The response: a short plain-text body, or to a gRPC call (`grpc`, see
    /// [`grpc::is_grpc`]) HTTP 200 with the gRPC status in a trailers-only response, which is
    /// how gRPC clients expect a call to end; 503 says when to retry; a bad request closes.
    pub fn into_response(&self, grpc: bool) -> Response<ResponseBody> {
        let (status, code) = self.statuses();
        let reason = status.canonical_reason().unwrap_or("Error");
        let mut response = if grpc {
            let mut response = Response::new(ResponseBody::empty());
            let message = format!("portero: {} {reason} ({})", status.as_u16(), self.kind());
            grpc::trailers_only(response.headers_mut(), code, &message);
            response
        } else {
            let text = format!("{} {reason}\n", status.as_u16());
            let mut response = Response::new(ResponseBody::full(text));
            *response.status_mut() = status;
            response.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/plain; charset=utf-8"),
            );
            response
        };
        let headers = response.headers_mut();
        match self {
            ProxyError::NoHealthyBackend => {
                headers.insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
            }
            ProxyError::Overloaded => {
                headers.insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
                headers.insert(header::CONNECTION, HeaderValue::from_static("close"));
            }
            ProxyError::MethodDenied { allow } => {
                headers.insert(header::ALLOW, allow.clone());
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

    /// Every arm: the error, its HTTP status, its gRPC status.
    fn cases() -> Vec<(ProxyError, u16, u8)> {
        vec![
            (ProxyError::Invalid(Invalid::Framing), 400, 13),
            (ProxyError::Invalid(Invalid::Host), 400, 13),
            (ProxyError::Invalid(Invalid::HostMismatch), 400, 13),
            (ProxyError::Invalid(Invalid::Header), 400, 13),
            (ProxyError::Invalid(Invalid::UriTooLong), 414, 8),
            (ProxyError::Invalid(Invalid::TooManyHeaders), 431, 8),
            (ProxyError::Invalid(Invalid::BodyTooLarge), 413, 8),
            (ProxyError::Invalid(Invalid::Expectation), 417, 13),
            (ProxyError::Invalid(Invalid::Method), 405, 12),
            (ProxyError::Invalid(Invalid::Target), 400, 13),
            (ProxyError::ClientBody(ClientBodyError::Read), 400, 13),
            (ProxyError::ClientBody(ClientBodyError::TooLarge), 413, 8),
            (ProxyError::ClientBody(ClientBodyError::Timeout), 408, 4),
            (
                ProxyError::Upstream(UpstreamError::ClientBody(ClientBodyError::Timeout)),
                408,
                4,
            ),
            (ProxyError::Forbidden, 403, 7),
            (
                ProxyError::MethodDenied {
                    allow: HeaderValue::from_static("GET"),
                },
                405,
                12,
            ),
            (ProxyError::Overloaded, 503, 14),
            (
                ProxyError::RateLimited {
                    retry_after: Duration::from_millis(1500),
                },
                429,
                8,
            ),
            (ProxyError::Misdirected, 421, 14),
            (ProxyError::NoRoute, 404, 12),
            (ProxyError::NoHealthyBackend, 503, 14),
            (
                ProxyError::Upstream(UpstreamError::Connect("refused".into())),
                502,
                14,
            ),
            (ProxyError::Upstream(UpstreamError::ConnectTimeout), 504, 14),
            (
                ProxyError::Upstream(UpstreamError::Request("reset".into())),
                502,
                14,
            ),
            (ProxyError::UpstreamTimeout, 504, 4),
            (ProxyError::DeadlineExceeded, 504, 4),
            (ProxyError::BadUpgrade, 502, 14),
        ]
    }

    #[test]
    fn every_arm_maps_to_its_status() {
        for (error, status, _) in cases() {
            let response = error.into_response(false);
            assert_eq!(response.status().as_u16(), status, "{error:?}");
            assert_eq!(error.status().as_u16(), status);
            assert_eq!(
                response.headers()[header::CONTENT_TYPE],
                "text/plain; charset=utf-8"
            );
        }
        let busy = ProxyError::NoHealthyBackend.into_response(false);
        assert_eq!(busy.headers()[header::RETRY_AFTER], "1");
        let limited = ProxyError::RateLimited {
            retry_after: Duration::from_millis(1500),
        }
        .into_response(false);
        assert_eq!(limited.headers()[header::RETRY_AFTER], "2");
        let refused = ProxyError::Invalid(Invalid::Framing).into_response(false);
        assert_eq!(refused.headers()[header::CONNECTION], "close");
    }

    #[test]
    fn a_grpc_call_gets_http_200_and_its_grpc_status_in_a_trailers_only_response() {
        use http_body::Body as _;
        for (error, status, code) in cases() {
            let response = error.into_response(true);
            assert_eq!(response.status(), StatusCode::OK, "{error:?}");
            let headers = response.headers();
            assert_eq!(headers[header::CONTENT_TYPE], "application/grpc");
            assert_eq!(
                headers["grpc-status"],
                code.to_string().as_str(),
                "{error:?}"
            );
            let message = headers["grpc-message"].to_str().unwrap();
            assert!(
                message.starts_with(&format!("portero: {status} ")),
                "{message}"
            );
            assert!(
                message.ends_with(&format!("({})", error.kind())),
                "{message}"
            );
            assert!(response.body().is_end_stream(), "trailers-only: no body");
        }
        let busy = ProxyError::NoHealthyBackend.into_response(true);
        assert_eq!(busy.headers()[header::RETRY_AFTER], "1");
    }
}
