//! Why portero answered a request itself, and the one table mapping each reason to a status.

use crate::body::ResponseBody;
use crate::upstream::UpstreamError;
use http::{HeaderValue, Response, StatusCode, header};

/// A request portero could not (or would not) pass to a backend.
#[derive(Debug, thiserror::Error)]
pub enum ProxyError {
    /// HTTP/1.1 request without a Host, or with a malformed one.
    #[error("missing or invalid Host")]
    BadHost,
    /// The request body could not be read (the client aborted or sent a malformed body).
    #[error("request body could not be read")]
    BadRequestBody,
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
            ProxyError::BadHost | ProxyError::BadRequestBody => StatusCode::BAD_REQUEST,
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
            ProxyError::BadHost => "bad_host",
            ProxyError::BadRequestBody => "bad_request_body",
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
            ProxyError::BadHost | ProxyError::BadRequestBody => {
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
            (ProxyError::BadHost, 400),
            (ProxyError::BadRequestBody, 400),
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
    }
}
